/**
 * One training step: the loss of a batch, its gradients (stacked, micro-batched or image by image)
 * and the SGD update (sgd.ts). Two losses: the paper's soft-margin triplets (Zhao et al., BMVC
 * 2018, §2.3), mean over the batch of [d(a,c) − d(a,f) + margin]₊ with Euclidean d on
 * L2-normalised outputs; and a contrastive (InfoNCE) loss on anchor–positive pairs.
 */
import { isTensor, tensorsOf, tf, type TensorData } from '../backend/tfjs.js';
import { l2Normalize } from '../model/head.js';
import { TRAIN_DEFAULTS, type Loss } from './options.js';
import { applySgd, trainableVariables, type SgdSettings } from './sgd.js';

/** A step's inputs: tensors, or their data (TrainInputs.raw) when the step runs on workers. */
export type StepInputs = tf.Tensor | readonly tf.Tensor[] | TensorData | readonly TensorData[];

/** What one step comes to: the batch loss, its active hinges, the gradients' global norm. */
export interface StepResult {
  readonly loss: number;
  readonly active: number;
  readonly gradNorm: number;
}

/**
 * Steps computed elsewhere (data-parallel workers), which keep their own copy of the weights and
 * momentum from the first step they take until `pull` hands them back to this thread's model.
 */
export interface ParallelSteps {
  /** One step with learning rate `lr` (options `o`: those of sgdStep). */
  step(weights: readonly tf.Variable[], momentum: readonly tf.Variable[], x: StepInputs, margins: Float32Array, lr: number, o: StepOptions): Promise<StepResult>;
  /** The weights and momentum back into `weights` and `momentum` (at the end of each epoch). */
  pull(weights: readonly tf.Variable[], momentum: readonly tf.Variable[]): Promise<void>;
}

/**
 * The triplet loss of a batch: rows [0, B) are anchors, [B, 2B) closer, [2B, 3B) farther.
 * Returns the mean hinge and the per-triplet hinges.
 */
export function tripletLoss(embeddings: tf.Tensor2D, margins: tf.Tensor1D): { loss: tf.Scalar; hinges: tf.Tensor1D } {
  return tf.tidy(() => {
    const unit = l2Normalize(embeddings);
    const [a, c, f] = tf.split(unit, 3, 0) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    // sqrt(· + ε): the gradient of √ at 0 is infinite (a = c happens: duplicates).
    const dc = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, c)), 1), 1e-12));
    const df = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, f)), 1), 1e-12));
    const hinges = tf.relu(tf.add(tf.sub(dc, df), margins)) as tf.Tensor1D;
    return { loss: tf.mean(hinges) as tf.Scalar, hinges };
  });
}

/**
 * The contrastive (InfoNCE) loss of a batch of pairs: rows [0, B) are anchors, [B, 2B) their
 * positives (drawn from the teacher's top of each anchor). With unit embeddings a and p, anchor i
 * scores every positive of the batch, s_ij = a_i·p_j / τ, and the loss is the mean over i of
 * −log softmax_j(s_ij) at j = i: the other anchors' positives are its negatives, except those
 * `related` marks (related_ij = 1: the teacher ranks positive j among anchor i's positives too, so
 * it is left out of i's softmax rather than pushed away). Returns the loss and, per anchor, 1
 * where a negative outscores its own positive (the share reported as active).
 */
export function contrastiveLoss(embeddings: tf.Tensor2D, temperature: number, related?: tf.Tensor2D): { loss: tf.Scalar; misses: tf.Tensor1D } {
  return tf.tidy(() => {
    const unit = l2Normalize(embeddings);
    const [a, p] = tf.split(unit, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
    const raw = tf.div(tf.matMul(a, p, false, true), temperature) as tf.Tensor2D;
    const scores = related ? (tf.sub(raw, tf.mul(related, 1e9)) as tf.Tensor2D) : raw;
    const b = scores.shape[0];
    const own = tf.sum(tf.mul(a, p), 1).div(temperature) as tf.Tensor1D;
    const loss = tf.mean(tf.sub(tf.logSumExp(scores, 1), own)) as tf.Scalar;
    const misses = tf.cast(tf.greater(tf.max(tf.sub(scores, tf.mul(tf.eye(b), 1e9)), 1), own), 'float32') as tf.Tensor1D;
    return { loss, misses };
  });
}

/** The model's outputs for `x`, stacked inputs or one tensor per item, as one 2-d tensor. */
function forward(model: tf.LayersModel, x: tf.Tensor | readonly tf.Tensor[], training: boolean): tf.Tensor2D {
  if (Array.isArray(x)) return tf.concat((x as tf.Tensor[]).map((t) => model.apply(t, { training }) as tf.Tensor2D));
  return model.apply(x as tf.Tensor, { training }) as tf.Tensor2D;
}

/** The number of active hinges (kept out of the surrounding scope, for reading afterwards). */
const keptActiveCount = (hinges: tf.Tensor1D): tf.Tensor => tf.keep(tf.sum(tf.cast(tf.greater(hinges, 0), 'float32')));

/** Rows [start, start + count) of each third of `x` (anchors, closers, farthers). */
function tripletSlice(x: tf.Tensor | readonly tf.Tensor[], b: number, start: number, count: number): tf.Tensor | tf.Tensor[] {
  if (Array.isArray(x)) return [0, 1, 2].flatMap((p) => x.slice(p * b + start, p * b + start + count));
  const t = x as tf.Tensor;
  const rest = t.shape.slice(1);
  return tf.concat([0, 1, 2].map((p) => tf.slice(t, [p * b + start, ...rest.map(() => 0)], [count, ...rest.map(() => -1)])));
}

/**
 * The loss, active hinges and weight gradients of a batch, image by image (`imageWise`): the
 * gradient is Σᵢ (∂eᵢ/∂θ)ᵀ gᵢ with gᵢ = ∂L/∂eᵢ, each term from one image's own backward pass.
 */
function imageWiseGrads(
  model: tf.LayersModel,
  weights: tf.Variable[],
  x: tf.Tensor | readonly tf.Tensor[],
  margins: tf.Tensor1D,
  training: boolean,
): { loss: number; active: number; grads: tf.NamedTensorMap } {
  const images = Array.isArray(x) ? (x as tf.Tensor[]) : (tf.split(x as tf.Tensor, (x as tf.Tensor).shape[0]!) as tf.Tensor[]);
  // 1. Embeddings without a tape; batch-norm moving statistics are put back (they update once, in 3).
  const stats = training ? model.nonTrainableWeights.map((w) => tf.clone(w.read())) : [];
  const embeddings = tf.tidy(() => forward(model, images, training));
  model.nonTrainableWeights.forEach((w, i) => stats[i] && w.write(stats[i]!));
  tf.dispose(stats);
  // 2. The loss and its gradient with respect to each embedding.
  const kept: { active?: tf.Tensor; loss?: tf.Tensor } = {};
  const [dE] = tf.grads((e: tf.Tensor) => {
    const { loss, hinges } = tripletLoss(e as tf.Tensor2D, margins);
    kept.active = keptActiveCount(hinges);
    kept.loss = tf.keep(loss.clone());
    hinges.dispose();
    return loss;
  })([embeddings]) as [tf.Tensor2D];
  embeddings.dispose();
  // 3. Each image's backward pass, accumulated.
  let total: tf.NamedTensorMap | null = null;
  images.forEach((t, i) => {
    const g = tf.slice(dE!, [i, 0], [1, -1]);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.apply(t, { training }) as tf.Tensor, g)) as tf.Scalar, weights);
    tf.dispose([g, value]);
    total = accumulate(total, grads);
  });
  if (!Array.isArray(x)) tf.dispose(images);
  dE!.dispose();
  const loss = kept.loss!.dataSync()[0]!;
  const active = kept.active!.dataSync()[0]!;
  tf.dispose([kept.loss!, kept.active!]);
  return { loss, active, grads: total! };
}

/** `total` + `grads` (both consumed); `grads` when there is no total yet. */
function accumulate(total: tf.NamedTensorMap | null, grads: tf.NamedTensorMap): tf.NamedTensorMap {
  if (total === null) return grads;
  const sum = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.add(total[k]!, g)]));
  tf.dispose([...Object.values(total), ...Object.values(grads)]);
  return sum;
}

/** How a step computes its gradients (the parts of TrainOptions a gradient worker needs). */
export type GradientOptions = { microBatch?: number | null; batchNorm?: 'train' | 'frozen'; imageWise?: boolean; loss?: Loss; contrastive?: { readonly temperature: number } };

/** What a step needs: how to compute the gradients, and the optimiser's settings. */
export type StepOptions = GradientOptions & SgdSettings;

/**
 * The loss, active hinges and weight gradients of a batch of triplets: `x` holds the 3b inputs
 * (anchors, closers, farthers), stacked or one tensor per item, and `margins` their b margins.
 * For the contrastive loss `x` holds 2b inputs (anchors, positives) and `margins` the b × b
 * related mask, row-major (contrastiveLoss). `share` scales the loss and the
 * gradients: a shard of b triplets out of a batch of B passes b / B, so that the shards'
 * gradients add up to the batch's (data-parallel training, src/train/dataParallel.ts).
 */
export function batchGradients(
  model: tf.LayersModel,
  weights: tf.Variable[],
  x: tf.Tensor | readonly tf.Tensor[],
  margins: tf.Tensor1D,
  o: GradientOptions,
  share = 1,
): { loss: number; active: number; grads: tf.NamedTensorMap } {
  if (o.loss === 'contrastive') return contrastiveGradients(model, weights, x, margins, o.contrastive?.temperature ?? TRAIN_DEFAULTS.contrastive.temperature, o.batchNorm !== 'frozen');
  if (o.imageWise) {
    const r = imageWiseGrads(model, weights, x, margins, o.batchNorm !== 'frozen');
    if (share === 1) return r;
    const grads = Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, tf.mul(g, share)]));
    tf.dispose(Object.values(r.grads));
    return { loss: r.loss * share, active: r.active, grads };
  }
  const b = margins.shape[0];
  const micro = Math.min(b, o.microBatch ?? b);
  // Gradient accumulation: the mean loss over b triplets is the (count-weighted) mean of the
  // micro-batches' mean losses, so their gradients add with weights count / b.
  let loss = 0;
  let active = 0;
  let total: tf.NamedTensorMap | null = null;
  for (let start = 0; start < b; start += micro) {
    const count = Math.min(micro, b - start);
    const part =
      count === b
        ? { x, m: margins }
        : { x: tf.tidy(() => tripletSlice(x, b, start, count)), m: tf.slice(margins, [start], [count]) as tf.Tensor1D };
    const kept: { active?: tf.Tensor } = {};
    const { value, grads } = tf.variableGrads(() => {
      const { loss: l, hinges } = tripletLoss(forward(model, part.x, o.batchNorm !== 'frozen'), part.m);
      kept.active = keptActiveCount(hinges);
      hinges.dispose();
      return tf.mul(l, (share * count) / b) as tf.Scalar;
    }, weights);
    if (count !== b) {
      // Sliced tensors are new; the items of a list are the caller's.
      if (!Array.isArray(part.x)) tf.dispose(part.x as tf.Tensor);
      part.m.dispose();
    }
    // Read back outside any tidy scope: on wasm a dataSync inside a scope is several times slower.
    active += kept.active!.dataSync()[0]!;
    kept.active!.dispose();
    loss += value.dataSync()[0]!;
    value.dispose();
    total = accumulate(total, grads);
  }
  return { loss, active, grads: total! };
}

/**
 * The contrastive loss, the anchors a negative outscores and the weight gradients of a batch of
 * pairs (`x`: the 2b inputs, anchors then positives). The loss couples every pair of the batch, so
 * it is computed whole: no micro-batches, no image-wise backward, no shards (train() checks).
 */
function contrastiveGradients(model: tf.LayersModel, weights: tf.Variable[], x: tf.Tensor | readonly tf.Tensor[], mask: tf.Tensor1D, temperature: number, training: boolean): { loss: number; active: number; grads: tf.NamedTensorMap } {
  const kept: { active?: tf.Tensor } = {};
  const b = Math.round(Math.sqrt(mask.size));
  if (b * b !== mask.size) throw new Error(`contrastiveGradients: a related mask of ${mask.size} values is not square`);
  const related = mask.reshape([b, b]) as tf.Tensor2D;
  const { value, grads } = tf.variableGrads(() => {
    const { loss, misses } = contrastiveLoss(forward(model, x, training), temperature, related);
    kept.active = tf.keep(tf.sum(misses));
    misses.dispose();
    return loss;
  }, weights);
  related.dispose();
  // Read back outside any tidy scope (see batchGradients).
  const active = kept.active!.dataSync()[0]!;
  kept.active!.dispose();
  const loss = value.dataSync()[0]!;
  value.dispose();
  return { loss, active, grads };
}

/**
 * One SGD step, PyTorch's rule: g ← ∇ + wd·w; v ← μ·v + g; w ← w − lr·v.
 * `x` holds the 3b inputs (anchors, closers, farthers), stacked or one tensor per item.
 * Returns the batch loss and the number of active hinges.
 */
export function sgdStep(
  model: tf.LayersModel,
  momentum: readonly tf.Variable[],
  x: tf.Tensor | readonly tf.Tensor[],
  margins: tf.Tensor1D,
  o: StepOptions,
  lr: number,
): { loss: number; active: number; gradNorm: number } {
  const weights = trainableVariables(model);
  const r = batchGradients(model, weights, x, margins, o);
  const gradNorm = applySgd(weights, momentum, r.grads, o, lr);
  return { loss: r.loss, active: r.active, gradNorm };
}

/** The tensors among step inputs, disposed. */
export function disposeInputs(x: StepInputs): void {
  for (const t of Array.isArray(x) ? x : [x]) if (isTensor(t as tf.Tensor | TensorData)) (t as tf.Tensor).dispose();
}

/** sgdStep on this thread, with the margins as an array (and inputs given as data made tensors). */
export function localStep(model: tf.LayersModel, momentum: readonly tf.Variable[], x: StepInputs, margins: Float32Array, o: StepOptions, lr: number): StepResult {
  const first = (Array.isArray(x) ? x[0] : x) as tf.Tensor | TensorData;
  const tensors = isTensor(first) ? (x as tf.Tensor | tf.Tensor[]) : tensorsOf(x as TensorData | TensorData[]);
  const mt = tf.tensor1d(margins);
  try {
    return sgdStep(model, momentum, tensors, mt, o, lr);
  } finally {
    mt.dispose();
    if (tensors !== x) tf.dispose(tensors);
  }
}
