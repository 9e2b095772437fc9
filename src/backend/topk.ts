/**
 * Top-k selection in typed arrays. Order: larger value first; on equal values the lower index
 * first (so results are deterministic and match a stable sort).
 */

import { PairHeap } from './heap.js';

/** True when (va, ia) ranks after (vb, ib): the smaller value, or the same value and the higher index. */
const worse = (va: number, ia: number, vb: number, ib: number) => va < vb || (va === vb && ia > ib);

/**
 * Selects the k best of `values` (indices offset by `indexOffset`) into outVals/outIdx starting at
 * `outOffset`, sorted best first: the project's heap (src/backend/heap.ts) bounded to k, on the
 * negated values, so that "larger first, then lower index" is its (value, id) order. O(n log k).
 * `heap` may be passed to reuse its arrays across calls.
 */
export function selectTopK(
  values: Float32Array | Float64Array,
  k: number,
  outVals: Float32Array | Float64Array,
  outIdx: Int32Array,
  outOffset = 0,
  indexOffset = 0,
  heap = new PairHeap(Math.min(k, values.length), 'max'),
): void {
  const m = Math.min(k, values.length);
  heap.clear();
  for (let j = 0; j < values.length; j++) heap.offer(-values[j]!, j + indexOffset, m);
  heap.drain(outVals, outIdx, outOffset, -1);
}

/**
 * Merges two best-first lists (a then b; on equal values a's entries win, which is right when a's
 * indices are all lower) into the k best, written to out.
 */
export function mergeTopK(
  aVals: Float32Array, aIdx: Int32Array,
  bVals: Float32Array, bIdx: Int32Array,
  k: number,
  outVals: Float32Array, outIdx: Int32Array,
): number {
  let i = 0, j = 0, o = 0;
  while (o < k && (i < aVals.length || j < bVals.length)) {
    if (j >= bVals.length || (i < aVals.length && !worse(aVals[i]!, aIdx[i]!, bVals[j]!, bIdx[j]!))) {
      outVals[o] = aVals[i]!; outIdx[o++] = aIdx[i++]!;
    } else {
      outVals[o] = bVals[j]!; outIdx[o++] = bIdx[j++]!;
    }
  }
  return o;
}
