/**
 * The SGD update of loop.ts's applySgd on flat float32 arrays: the trainable weights concatenated
 * in order, their momentum buffers after them, and each worker's gradients in the weights' layout
 * (data-parallel training, dataParallel.ts). A call updates one range of elements, so that N
 * workers share the update instead of each repeating it. Every operation is rounded to float32
 * as the backend's tensors are, and the shards' gradients are added in worker order.
 */
import type { ParameterGroups, SgdSettings } from './sgd.js';

/** Where each trainable weight lies in the flat layout, and its group (learning-rate factor, weight decay). */
export interface FlatLayout {
  /** offsets[i]: weight i's first element; offsets[count]: the total. */
  readonly offsets: readonly number[];
  readonly groups?: ParameterGroups;
}

/** The layout of weights with these shapes, in order. */
export function flatLayout(shapes: readonly (readonly number[])[], groups?: ParameterGroups): FlatLayout {
  const offsets = [0];
  for (const shape of shapes) offsets.push(offsets.at(-1)! + shape.reduce((p, d) => p * d, 1));
  return { offsets, ...(groups ? { groups } : {}) };
}

/**
 * PyTorch's rule on elements [start, end) of `state` (weights, then momentum): g ← Σ shards' ∇
 * (+ wd·w); v ← μ·v + g; w ← w − lr·v. Returns the sum of the squared gradients (before weight
 * decay) over the range, the range's part of the global gradient norm. With more than two shards,
 * the first buffer's range is overwritten by the running sum.
 */
export function sgdRange(state: Float32Array, grads: readonly Float32Array[], layout: FlatLayout, o: SgdSettings, lr: number, start: number, end: number): number {
  const total = layout.offsets.at(-1)!;
  const [weights, momentum] = [state.subarray(0, total), state.subarray(total, 2 * total)];
  const { sum, last } = pairOfShards(grads, start, end);
  const f = Math.fround;
  const [mu, wd] = [f(o.momentum), f(o.weightDecay)];
  let squares = 0;
  for (let i = 0; i + 1 < layout.offsets.length; i++) {
    const from = Math.max(start, layout.offsets[i]!);
    const to = Math.min(end, layout.offsets[i + 1]!);
    if (from >= to) continue;
    const decay = o.weightDecay > 0 && (layout.groups?.decay[i] ?? true) ? wd : 0;
    const step = f(lr * (layout.groups?.lrScale[i] ?? 1));
    for (let j = from; j < to; j++) {
      let g = f(sum[j]! + last[j]!);
      squares += g * g;
      const w = weights[j]!;
      // Without decay, g + 0·w is g exactly.
      g = f(g + f(w * decay));
      const v = f(f(momentum[j]! * mu) + g);
      momentum[j] = v;
      weights[j] = w - f(v * step);
    }
  }
  return squares;
}

/**
 * The shards' gradients as two buffers whose sum over [start, end) is theirs in worker order: all
 * but the last added into the first (in place), and the last (zeros when there is one shard).
 */
function pairOfShards(grads: readonly Float32Array[], start: number, end: number): { sum: Float32Array; last: Float32Array } {
  const sum = grads[0]!;
  if (grads.length === 1) return { sum, last: new Float32Array(sum.length) };
  for (let s = 1; s + 1 < grads.length; s++) {
    const g = grads[s]!;
    for (let j = start; j < end; j++) sum[j] = sum[j]! + g[j]!;
  }
  return { sum, last: grads.at(-1)! };
}
