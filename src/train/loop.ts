/**
 * The distillation training loop (Zhao et al., BMVC 2018, §2.3; docs/algorithms.md §4): soft-margin
 * triplets mined afresh each epoch from a diffusion self-ranking, loss
 * mean over the batch of [d(a,c) − d(a,f) + margin]₊ with Euclidean d on L2-normalised outputs,
 * SGD with momentum and weight decay (PyTorch's semantics), a decaying learning rate.
 *
 * Deterministic: epoch e mines with seed (seed, e) and shuffles with it, so a run resumed from the
 * checkpoint at the end of an epoch ends exactly where an uninterrupted run ends.
 */
import { UserError } from '../errors.js';
import { isTensor, tensorsOf, tf, type TensorData } from '../backend/tfjs.js';
import type { Matrix } from '../matrix.js';
import { l2Normalize } from '../model/head.js';
import { mineTriplets, seededRandom, TRIPLET_DEFAULTS, type TripletOptions } from '../triplets/mining.js';

export type Schedule = 'cosine' | 'linear' | 'step' | 'constant';
export const SCHEDULES: readonly Schedule[] = ['cosine', 'linear', 'step', 'constant'];

export interface TrainOptions {
  /** Triplets per step (paper: 40). */
  readonly batch: number;
  /** Initial learning rate (paper: 0.01). */
  readonly lr: number;
  /** How it decays to the end of training (paper: "gradually attenuates"). */
  readonly schedule: Schedule;
  readonly momentum: number;
  readonly weightDecay: number;
  /** Passes over the mined triplets (n anchors × perAnchor each). */
  readonly epochs: number;
  /** If set, the total number of steps instead (epochs then count whole passes only). */
  readonly steps: number | null;
  readonly seed: number;
  /** Triplets per forward pass (gradient accumulation up to `batch`); null: the whole batch. */
  readonly microBatch?: number | null;
  /**
   * Batch normalisation during training: 'train' uses batch statistics and updates the moving
   * averages; 'frozen' keeps the stored statistics (fine-tuning a pretrained backbone on small
   * batches). Layers without batch normalisation are unaffected.
   */
  readonly batchNorm?: 'train' | 'frozen';
  /**
   * Image-wise backward: the step's embeddings are computed first without keeping activations,
   * then each image's backward pass runs alone with its embedding's loss gradient — the same
   * gradient (per-image batch-norm statistics) with one image's activations in memory, for one
   * extra forward pass. What lets the paper's 600-px images train in the wasm heap.
   */
  readonly imageWise?: boolean;
  /**
   * Triplet mining: k, m0 and triplets per anchor per epoch (its seed is ignored: see `seed`).
   * k 'auto' is resolved from the teacher's distances before training (src/triplets/range.ts).
   */
  readonly triplets: Omit<TripletOptions, 'seed' | 'k' | 'anchors'> & { readonly k: number | 'auto' };
}

export const TRAIN_DEFAULTS: TrainOptions = Object.freeze({
  batch: 40,
  lr: 0.01,
  schedule: 'cosine',
  momentum: 0.9,
  weightDecay: 1e-4,
  epochs: 10,
  steps: null,
  seed: 0,
  triplets: { k: TRIPLET_DEFAULTS.k, m0: TRIPLET_DEFAULTS.m0, perAnchor: TRIPLET_DEFAULTS.perAnchor },
});

export interface EpochRecord {
  readonly epoch: number;
  readonly steps: number;
  /** Mean triplet loss over the epoch's steps. */
  readonly loss: number;
  /** Fraction of triplets whose hinge was active (loss > 0). */
  readonly active: number;
  readonly lr: number;
  readonly seconds: number;
  readonly tripletsPerSecond: number;
  /** Validation figure (mAP %, or N-S), when validation is configured. */
  readonly validation?: Record<string, number>;
  /** Label-free agreement with the teacher on the held-out items, when selection is configured. */
  readonly agreement?: number;
  /** Mean global gradient norm over the epoch's steps. */
  readonly gradNorm?: number;
}

/** What a checkpoint restores: the finished epochs, the weights and the momentum buffers. */
export interface TrainState {
  readonly epochsDone: number;
  readonly stepsDone: number;
  readonly history: readonly EpochRecord[];
  /** The agreement of the model before training (selection only). */
  readonly initialAgreement?: number;
  /** The epoch whose weights are kept (−1: the weights training started from), and its agreement. */
  readonly best?: { readonly epoch: number; readonly agreement: number | null };
  /** Why training ended before its last step: early stop, runaway or divergence (rolled back). */
  readonly stopped?: string;
}

/** How training decides what to keep and when to stop (docs/algorithms.md §4, "Keeping the best model"). */
export interface Selection {
  /** Label-free score of the model (higher is better), after each epoch and before training. */
  score(model: tf.LayersModel): Promise<number>;
  /** Stop after this many epochs without a better score. */
  readonly patience: number;
}

/**
 * The watch on a run that goes wrong: an epoch whose mean loss exceeds the lowest epoch loss so
 * far by `lossRise` (relative), whose active-hinge share exceeds the lowest so far by
 * `activeRise` while its loss rises by half of `lossRise` (re-mined triplets make either figure
 * wander a little alone), or whose mean gradient norm exceeds the first epoch's by `gradRise` (a
 * factor), stops training and rolls back to the best epoch. A non-finite loss or gradient does too.
 */
export const WATCH = Object.freeze({ lossRise: 0.25, activeRise: 0.05, gradRise: 10 });

export interface StepProgress {
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly loss: number;
  readonly tripletsPerSecond: number;
}

export interface TrainHooks {
  onStep?(p: StepProgress): void;
  /** Validation after each epoch: figures to record (e.g. { mAP: 61.2 }). */
  validate?(model: tf.LayersModel): Promise<Record<string, number>>;
  /** Called after each epoch (after validation) with the state to checkpoint and the best weights kept. */
  onEpoch?(state: TrainState, momentum: readonly tf.Variable[], best: readonly tf.Tensor[]): Promise<void>;
  /** Keep the best epoch by a label-free score and stop early (otherwise: the last epoch the watch passed). */
  select?: Selection;
  /** Learning-rate factor for pretrained layers (weights not of GeM, whitening or a descriptor head). */
  pretrainedLr?: number;
  /** Runs the steps on worker threads (src/train/dataParallel.ts) instead of this thread. */
  parallel?: ParallelSteps;
}

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
 * Training inputs other than a descriptor matrix (images): the model inputs of the given items, in
 * order, as one stacked tensor or as one tensor per item (images of different sizes).
 */
export interface TrainInputs {
  readonly rows: number;
  gather(items: readonly number[]): Promise<tf.Tensor | tf.Tensor[]>;
  /** The same inputs as plain arrays, which worker threads take without a copy out of a backend. */
  raw?(items: readonly number[]): Promise<TensorData | TensorData[]>;
  /** Start gathering the next step's items while this one trains (inputs decoded from disk). */
  readonly prefetch?: boolean;
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

/** Steps in one epoch and in the whole run. */
export function stepCounts(o: TrainOptions, anchors: number): { perEpoch: number; total: number; epochs: number } {
  const perEpoch = Math.ceil((anchors * o.triplets.perAnchor) / o.batch);
  const total = o.steps ?? perEpoch * o.epochs;
  return { perEpoch, total, epochs: Math.ceil(total / perEpoch) };
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

/** Momentum buffers, one per trainable weight, zero-initialised. */
export function zeroMomentum(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => tf.variable(tf.zerosLike(w.read()), false));
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
export type GradientOptions = { microBatch?: number | null; batchNorm?: 'train' | 'frozen'; imageWise?: boolean };

/**
 * The loss, active hinges and weight gradients of a batch of triplets: `x` holds the 3b inputs
 * (anchors, closers, farthers), stacked or one tensor per item. `share` scales the loss and the
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
 * One SGD step, PyTorch's rule: g ← ∇ + wd·w; v ← μ·v + g; w ← w − lr·v.
 * `x` holds the 3b inputs (anchors, closers, farthers), stacked or one tensor per item.
 * Returns the batch loss and the number of active hinges.
 */
export function sgdStep(
  model: tf.LayersModel,
  momentum: readonly tf.Variable[],
  x: tf.Tensor | readonly tf.Tensor[],
  margins: tf.Tensor1D,
  o: Pick<TrainOptions, 'momentum' | 'weightDecay'> & GradientOptions & { groups?: ParameterGroups },
  lr: number,
): { loss: number; active: number; gradNorm: number } {
  const weights = trainableVariables(model);
  const r = batchGradients(model, weights, x, margins, o);
  const gradNorm = applySgd(weights, momentum, r.grads, o, lr);
  return { loss: r.loss, active: r.active, gradNorm };
}

export type StepOptions = Parameters<typeof sgdStep>[4];

/** The tensors among step inputs, disposed. */
function disposeInputs(x: StepInputs): void {
  for (const t of Array.isArray(x) ? x : [x]) if (isTensor(t as tf.Tensor | TensorData)) (t as tf.Tensor).dispose();
}

/** sgdStep on this thread, with the margins as an array (and inputs given as data made tensors). */
function localStep(model: tf.LayersModel, momentum: readonly tf.Variable[], x: StepInputs, margins: Float32Array, o: StepOptions, lr: number): StepResult {
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
  o: Pick<TrainOptions, 'momentum' | 'weightDecay'> & { groups?: ParameterGroups },
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

/** The items (anchor, closer, farther) of epoch `epoch`, in shuffled order, and their margins. */
export function epochTriplets(neighbours: Int32Array, rows: number, o: TrainOptions, epoch: number, anchors?: Int32Array): { items: Int32Array; margins: Float32Array } {
  const seed = (Math.imul(o.seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
  const k = o.triplets.k;
  if (k === 'auto') throw new Error('epochTriplets: the triplet range must be resolved before training (tripletRange)');
  const t = mineTriplets(neighbours, rows, { ...o.triplets, k, seed, anchors });
  const order = Int32Array.from({ length: t.count }, (_, i) => i);
  const rand = seededRandom(seed ^ 0x5bd1e995);
  for (let i = t.count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const s = order[i]!;
    order[i] = order[j]!;
    order[j] = s;
  }
  const items = new Int32Array(t.count * 3);
  const margins = new Float32Array(t.count);
  for (let i = 0; i < t.count; i++) {
    const s = order[i]!;
    items.set(t.items.subarray(3 * s, 3 * s + 3), 3 * i);
    margins[i] = t.margins[s]!;
  }
  return { items, margins };
}

/** A descriptor matrix as training inputs: the 3b rows of a step gathered on the JS side. */
export function matrixInputs(x: Matrix): TrainInputs {
  const d = x.cols;
  const raw = (items: readonly number[]): TensorData => {
    const rows = new Float32Array(items.length * d);
    items.forEach((item, i) => rows.set(x.data.subarray(item * d, (item + 1) * d), i * d));
    return { shape: [items.length, d], data: rows };
  };
  // The database never has to fit the tfjs heap: only the step's rows become a tensor.
  return { rows: x.rows, gather: async (items) => tensorsOf(raw(items)), raw: async (items) => raw(items) };
}

/** The items of triplets [start, start + b) of `items`: anchors, then closers, then farthers. */
function stepItems(items: Int32Array, start: number, b: number): number[] {
  const out = new Array<number>(3 * b);
  for (let part = 0; part < 3; part++) for (let i = 0; i < b; i++) out[part * b + i] = items[3 * (start + i) + part]!;
  return out;
}

/** A teacher's self-ranking for training: rows × length neighbour lists, and the item of each row when not 0..rows−1. */
export interface TrainingTeacher {
  readonly neighbours: Int32Array;
  /** The anchor item of each row (held-out items have none); default: row i is item i. */
  readonly anchors?: Int32Array;
}

/** What training resumes from: the checkpoint's state, momentum buffers and best weights. */
export interface Resume {
  readonly state: TrainState;
  readonly momentum: tf.Variable[];
  readonly best?: tf.Tensor[];
}

/** Why an epoch ends the run (the watch), or null when it passes. */
export function watchVerdict(history: readonly EpochRecord[]): string | null {
  const last = history.at(-1)!;
  const before = history.slice(0, -1);
  if (!Number.isFinite(last.loss) || (last.gradNorm !== undefined && !Number.isFinite(last.gradNorm))) return `diverged in epoch ${last.epoch + 1} (loss ${last.loss})`;
  if (before.length === 0) return null;
  const minLoss = Math.min(...before.map((h) => h.loss));
  const minActive = Math.min(...before.map((h) => h.active));
  const firstGrad = before[0]!.gradNorm;
  if (last.loss > minLoss * (1 + WATCH.lossRise)) return `runaway: the loss rose to ${last.loss.toFixed(4)} from ${minLoss.toFixed(4)} in epoch ${last.epoch + 1}`;
  if (last.active > minActive + WATCH.activeRise && last.loss > minLoss * (1 + WATCH.lossRise / 2)) return `runaway: active hinges rose to ${(100 * last.active).toFixed(1)} % from ${(100 * minActive).toFixed(1)} % in epoch ${last.epoch + 1}`;
  if (firstGrad !== undefined && last.gradNorm !== undefined && last.gradNorm > firstGrad * WATCH.gradRise) return `runaway: the gradient norm rose to ${last.gradNorm.toPrecision(3)} from ${firstGrad.toPrecision(3)} in epoch ${last.epoch + 1}`;
  return null;
}

const bestLabel = (epoch: number) => (epoch < 0 ? 'the starting weights' : `epoch ${epoch + 1}`);

const snapshot = (model: tf.LayersModel): tf.Tensor[] => model.getWeights().map((w) => w.clone());

/**
 * Trains `model` on triplets from a teacher's self-ranking (rows × length; the rows of `x`, the
 * model's preprocessed inputs, or of other inputs such as images). Starts from `resume`
 * (weights already loaded into the model, momentum buffers given) when set. After every epoch the
 * watch (WATCH) checks the loss, active hinges and gradient norm, and `hooks.select` scores the
 * model; the best epoch's weights are what the model holds at the end (the starting weights when
 * no epoch beat them). Returns the final state; the caller owns the model.
 */
export async function train(
  model: tf.LayersModel,
  x: Matrix | TrainInputs,
  teacher: Int32Array | TrainingTeacher,
  o: TrainOptions,
  hooks: TrainHooks = {},
  resume?: Resume,
): Promise<TrainState> {
  const inputs = 'gather' in x ? x : matrixInputs(x);
  const { neighbours, anchors } = teacher instanceof Int32Array ? { neighbours: teacher, anchors: undefined } : teacher;
  const rows = anchors?.length ?? inputs.rows;
  if (neighbours.length % rows !== 0 || neighbours.length / rows < 2) {
    throw new UserError(`the ranking has ${neighbours.length} entries, not a multiple (≥ 2 per item) of the ${rows} database items; rank the same database`);
  }
  if (!Number.isInteger(o.batch) || o.batch < 1) throw new UserError(`batch size must be a positive integer, got ${o.batch}`);
  if (!(o.lr > 0)) throw new UserError(`learning rate must be positive, got ${o.lr}`);
  const counts = stepCounts(o, rows);
  const momentum = resume?.momentum ?? zeroMomentum(model);
  const groups = parameterGroups(model, hooks.pretrainedLr);
  const step$ = { ...o, groups };
  const history = [...(resume?.state.history ?? [])];
  let step = resume?.state.stepsDone ?? 0;
  let initialAgreement = resume?.state.initialAgreement;
  let best = resume?.state.best ?? { epoch: -1, agreement: null as number | null };
  let bestWeights: tf.Tensor[] = resume?.best ?? snapshot(model);
  if (hooks.select && initialAgreement === undefined) {
    initialAgreement = await hooks.select.score(model);
    best = { epoch: -1, agreement: initialAgreement };
  }
  let stopped: string | undefined = resume?.state.stopped;
  const state = (epochsDone: number): TrainState => ({ epochsDone, stepsDone: step, history, ...(initialAgreement !== undefined ? { initialAgreement } : {}), best, ...(stopped ? { stopped } : {}) });
  try {
    for (let epoch = resume?.state.epochsDone ?? 0; !stopped && epoch < counts.epochs && step < counts.total; epoch++) {
      const { items, margins } = epochTriplets(neighbours, rows, o, epoch, anchors);
      const count = margins.length;
      const started = performance.now();
      let lossSum = 0;
      let activeSum = 0;
      let gradSum = 0;
      let stepsThisEpoch = 0;
      let seen = 0;
      let lr = o.lr;
      const gatherStep = (start: number) => {
        const stepList = stepItems(items, start, Math.min(o.batch, count - start));
        const p: Promise<StepInputs> = hooks.parallel && inputs.raw ? inputs.raw(stepList) : inputs.gather(stepList);
        // A failed prefetch surfaces when awaited, not as an unhandled rejection.
        p.catch(() => undefined);
        return p;
      };
      let next: Promise<StepInputs> | null = null;
      for (let start = 0; start < count && step < counts.total; start += o.batch, step++, stepsThisEpoch++) {
        const b = Math.min(o.batch, count - start);
        const xt = await (next ?? gatherStep(start));
        next = inputs.prefetch && start + o.batch < count && step + 1 < counts.total ? gatherStep(start + o.batch) : null;
        lr = learningRate(o, step, counts.total);
        let r: { loss: number; active: number; gradNorm: number };
        try {
          const m = margins.subarray(start, start + b);
          r = hooks.parallel ? await hooks.parallel.step(trainableVariables(model), momentum, xt, m, lr, step$) : localStep(model, momentum, xt, m, step$, lr);
        } finally {
          disposeInputs(xt);
        }
        lossSum += r.loss;
        activeSum += r.active;
        gradSum += r.gradNorm;
        seen += b;
        if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) {
          stepsThisEpoch++;
          step++;
          break; // the watch below rolls back
        }
        hooks.onStep?.({
          step: step + 1,
          totalSteps: counts.total,
          epoch,
          loss: lossSum / (stepsThisEpoch + 1),
          tripletsPerSecond: seen / ((performance.now() - started) / 1000),
        });
      }
      await next?.catch(() => undefined).then((t) => t && disposeInputs(t));
      await hooks.parallel?.pull(trainableVariables(model), momentum);
      const seconds = (performance.now() - started) / 1000;
      const steps = Math.max(stepsThisEpoch, 1);
      const record: EpochRecord = {
        epoch,
        steps: stepsThisEpoch,
        loss: lossSum / steps,
        active: activeSum / Math.max(seen, 1),
        lr,
        seconds,
        tripletsPerSecond: seen / seconds,
        gradNorm: gradSum / steps,
      };
      history.push(record);
      const verdict = watchVerdict(history);
      if (verdict) {
        stopped = `${verdict}; rolled back to ${bestLabel(best.epoch)}`;
      } else {
        const validation = hooks.validate ? await hooks.validate(model) : undefined;
        const agreement = hooks.select ? await hooks.select.score(model) : undefined;
        history[history.length - 1] = { ...record, ...(validation ? { validation } : {}), ...(agreement !== undefined ? { agreement } : {}) };
        if (agreement === undefined || agreement > (best.agreement ?? -Infinity)) {
          best = { epoch, agreement: agreement ?? null };
          tf.dispose(bestWeights);
          bestWeights = snapshot(model);
        } else if (hooks.select && epoch - best.epoch >= hooks.select.patience) {
          stopped = `early stop: no better agreement with the teacher for ${hooks.select.patience} epochs; kept ${bestLabel(best.epoch)}`;
        }
      }
      await hooks.onEpoch?.(state(epoch + 1), momentum, bestWeights);
    }
    // The model ends with the best weights (the last epoch's unless the watch or selection says otherwise).
    model.setWeights(bestWeights);
    return state(stopped ? history.length : counts.epochs);
  } finally {
    tf.dispose(bestWeights);
    if (!resume) tf.dispose(momentum);
  }
}
