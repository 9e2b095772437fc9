/**
 * The optimiser: SGD with momentum and weight decay, PyTorch's rule, with per-weight groups (no
 * decay on biases, batch-norm and GeM's p; a learning-rate factor for pretrained layers), and the
 * learning-rate schedule. The same rule on flat arrays, for data-parallel workers, is flatSgd.ts.
 */
import { tf } from '../backend/tfjs.js';
import type { TrainOptions } from './options.js';

/** What the update needs besides the learning rate: one type for this thread and the workers. */
export interface SgdSettings {
  readonly momentum: number;
  readonly weightDecay: number;
  readonly groups?: ParameterGroups;
}

/** The learning rate at `step` of `total`. */
export function learningRate(o: Pick<TrainOptions, 'lr' | 'schedule'>, step: number, total: number): number {
  const t = total > 0 ? step / total : 0;
  switch (o.schedule) {
    case 'cosine':
      return o.lr * 0.5 * (1 + Math.cos(Math.PI * t));
    case 'linear':
      return o.lr * (1 - t);
    case 'step':
      return o.lr * 0.1 ** Math.floor(t * 3);
    case 'constant':
      return o.lr;
  }
}

/** Momentum buffers, one per trainable weight, zero-initialised. */
export function zeroMomentum(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => tf.variable(tf.zerosLike(w.read()), false));
}

/** The model's trainable weights as variables, in the model's order. */
export const trainableVariables = (model: tf.LayersModel): tf.Variable[] => model.trainableWeights.map((w) => w.read() as tf.Variable);

/** Per trainable weight: its learning-rate factor and whether weight decay applies. */
export interface ParameterGroups {
  readonly lrScale: readonly number[];
  readonly decay: readonly boolean[];
}

/** Weights of layers the project adds to a backbone (GeM, whitening, descriptor head): never "pretrained". */
const NEW_LAYER = /^(gem|whiten|descriptor_head)\b/;
/** Weights that take no weight decay, as in cirtorch: biases, batch-norm scales and shifts, GeM's p. */
const NO_DECAY = /(\/(bias|gamma|beta)(_\d+)?$)|(^gem[^/]*\/p(_\d+)?$)/;

/**
 * The parameter groups of `model`'s trainable weights: no weight decay on biases, batch-norm and
 * GeM's p; pretrained layers (all but GeM, whitening and a descriptor head) at `pretrainedLr`
 * times the learning rate when it is given.
 */
export function parameterGroups(model: tf.LayersModel, pretrainedLr?: number): ParameterGroups {
  const names = model.trainableWeights.map((w) => (w.read() as tf.Variable).name);
  return {
    lrScale: names.map((n) => (pretrainedLr !== undefined && !NEW_LAYER.test(n) ? pretrainedLr : 1)),
    decay: names.map((n) => !NO_DECAY.test(n)),
  };
}

/** The momentum update of `weights` with `grads` (consumed); returns the gradients' global norm. */
export function applySgd(
  weights: readonly tf.Variable[],
  momentum: readonly tf.Variable[],
  grads: tf.NamedTensorMap,
  o: SgdSettings,
  lr: number,
): number {
  const norm = tf.tidy(() => tf.sqrt(tf.addN(weights.map((w) => tf.sum(tf.square(grads[w.name]!))))));
  tf.tidy(() => {
    weights.forEach((w, i) => {
      let g = grads[w.name]!;
      if (o.weightDecay > 0 && (o.groups?.decay[i] ?? true)) g = tf.add(g, tf.mul(w, o.weightDecay));
      const v = momentum[i]!;
      v.assign(tf.add(tf.mul(v, o.momentum), g));
      w.assign(tf.sub(w, tf.mul(v, lr * (o.groups?.lrScale[i] ?? 1))));
    });
  });
  tf.dispose(Object.values(grads));
  const value = norm.dataSync()[0]!;
  norm.dispose();
  return value;
}
