/**
 * The distillation training loop (Zhao et al., BMVC 2018, §2.3; docs/algorithms.md §4): soft-margin
 * triplets mined afresh each epoch from a diffusion self-ranking, one SGD step per batch
 * (step.ts), and at each epoch's end the watch, keep-best and patience (callbacks.ts).
 *
 * Deterministic: epoch e mines with seed (seed, e) and shuffles with it, so a run resumed from the
 * checkpoint at the end of an epoch ends exactly where an uninterrupted run ends.
 */
import { UserError } from '../errors.js';
import { tensorsOf, tf, type TensorData } from '../backend/tfjs.js';
import type { Matrix } from '../matrix.js';
import { minePairs, mineTriplets, seededRandom } from '../triplets/mining.js';
import { bestLabel, KeepBest, patienceVerdict, watchVerdict } from './callbacks.js';
import type { TrainOptions } from './options.js';
import type { EpochRecord, StepProgress, TrainState } from './records.js';
import { learningRate, parameterGroups, trainableVariables, zeroMomentum } from './sgd.js';
import { disposeInputs, localStep, type ParallelSteps, type StepInputs, type StepOptions, type StepResult } from './step.js';

/** How training decides what to keep and when to stop (docs/algorithms.md §4, "Keeping the best model"). */
export interface Selection {
  /** Label-free score of the model (higher is better), after each epoch and before training. */
  score(model: tf.LayersModel): Promise<number>;
  /** Stop after this many epochs without a better score. */
  readonly patience: number;
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

/** Steps in one epoch and in the whole run. */
export function stepCounts(o: TrainOptions, anchors: number): { perEpoch: number; total: number; epochs: number } {
  const perEpoch = Math.ceil((anchors * o.triplets.perAnchor) / o.batch);
  const total = o.steps ?? perEpoch * o.epochs;
  return { perEpoch, total, epochs: Math.ceil(total / perEpoch) };
}

/**
 * The examples of one epoch, in shuffled order: triplets (anchor, closer, farther) with their
 * margins, or, for the contrastive loss, pairs (anchor, positive) with zero margins (the margins
 * array counts the examples either way) and each anchor's positives in the teacher's list.
 */
export interface EpochExamples {
  /** count × parts item indices. */
  readonly items: Int32Array;
  readonly margins: Float32Array;
  /** Items per example: 3 (triplets) or 2 (pairs). */
  readonly parts: 2 | 3;
  /** Pairs: the teacher's positives of an anchor item (what its positive was drawn from). */
  readonly positivesOf?: (anchor: number) => Int32Array;
}

/** The teacher's top `positives` of each anchor item, as views of its lists. */
function teacherPositives(neighbours: Int32Array, rows: number, positives: number, anchors?: Int32Array): (anchor: number) => Int32Array {
  const length = neighbours.length / rows;
  const top = Math.min(positives, length);
  const rowOf = new Map<number, number>();
  for (let r = 0; r < rows; r++) rowOf.set(anchors ? anchors[r]! : r, r);
  return (anchor) => {
    const r = rowOf.get(anchor);
    if (r === undefined) throw new Error(`teacherPositives: item ${anchor} is no anchor`);
    return neighbours.subarray(r * length, r * length + top);
  };
}

/**
 * A step's related mask for pairs [start, start + b): 1 at (i, j), j ≠ i, where positive j is
 * anchor i itself or among its teacher positives, so that it is no negative of i (contrastiveLoss).
 */
export function relatedMask(e: EpochExamples, start: number, b: number): Float32Array {
  const mask = new Float32Array(b * b);
  for (let i = 0; i < b; i++) {
    const anchor = e.items[2 * (start + i)]!;
    const related = new Set(e.positivesOf!(anchor));
    related.add(anchor);
    for (let j = 0; j < b; j++) if (j !== i && related.has(e.items[2 * (start + j) + 1]!)) mask[i * b + j] = 1;
  }
  return mask;
}

/** The examples of epoch `epoch` (mined with seed (seed, epoch)), shuffled. */
export function epochExamples(neighbours: Int32Array, rows: number, o: TrainOptions, epoch: number, anchors?: Int32Array): EpochExamples {
  const seed = (Math.imul(o.seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
  let mined: { count: number; items: Int32Array; margins: Float32Array; parts: 2 | 3 };
  let positivesOf: EpochExamples['positivesOf'];
  if (o.loss === 'contrastive') {
    const positives = o.contrastive.positives;
    if (positives === 'auto') throw new Error('epochExamples: the positives must be resolved before training (trainingPlan)');
    const p = minePairs(neighbours, rows, { positives, perAnchor: o.triplets.perAnchor, seed, anchors });
    mined = { ...p, margins: new Float32Array(p.count), parts: 2 };
    positivesOf = teacherPositives(neighbours, rows, positives, anchors);
  } else {
    const k = o.triplets.k;
    if (k === 'auto') throw new Error('epochExamples: the triplet range must be resolved before training (tripletRange)');
    mined = { ...mineTriplets(neighbours, rows, { ...o.triplets, k, seed, anchors }), parts: 3 };
  }
  const { count, parts } = mined;
  const order = Int32Array.from({ length: count }, (_, i) => i);
  const rand = seededRandom(seed ^ 0x5bd1e995);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const s = order[i]!;
    order[i] = order[j]!;
    order[j] = s;
  }
  const items = new Int32Array(count * parts);
  const margins = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const s = order[i]!;
    items.set(mined.items.subarray(parts * s, parts * s + parts), parts * i);
    margins[i] = mined.margins[s]!;
  }
  return { items, margins, parts, positivesOf };
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

/** The items of examples [start, start + b): anchors, then closers (positives), then farthers. */
function stepItems(e: EpochExamples, start: number, b: number): number[] {
  const out = new Array<number>(e.parts * b);
  for (let part = 0; part < e.parts; part++) for (let i = 0; i < b; i++) out[part * b + i] = e.items[e.parts * (start + i) + part]!;
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

/** What one epoch's steps came to, before the epoch's end. */
interface EpochSteps {
  readonly record: EpochRecord;
  /** Steps taken so far in the run. */
  readonly step: number;
}

/**
 * One epoch: its mined examples in batches, each batch one step (on this thread or the workers),
 * the next batch gathered while this one trains when the inputs ask for it. A non-finite loss or
 * gradient ends the epoch at once (the watch then rolls back).
 */
async function runEpoch(
  model: tf.LayersModel,
  inputs: TrainInputs,
  examples: EpochExamples,
  o: TrainOptions,
  at: { epoch: number; step: number; total: number },
  momentum: readonly tf.Variable[],
  stepOptions: StepOptions,
  hooks: TrainHooks,
): Promise<EpochSteps> {
  const { margins } = examples;
  const count = margins.length;
  const started = performance.now();
  let step = at.step;
  let lossSum = 0;
  let activeSum = 0;
  let gradSum = 0;
  let stepsThisEpoch = 0;
  let seen = 0;
  let lr = o.lr;
  const gatherStep = (start: number) => {
    const stepList = stepItems(examples, start, Math.min(o.batch, count - start));
    const p: Promise<StepInputs> = hooks.parallel && inputs.raw ? inputs.raw(stepList) : inputs.gather(stepList);
    // A failed prefetch surfaces when awaited, not as an unhandled rejection.
    p.catch(() => undefined);
    return p;
  };
  let next: Promise<StepInputs> | null = null;
  for (let start = 0; start < count && step < at.total; start += o.batch, step++, stepsThisEpoch++) {
    const b = Math.min(o.batch, count - start);
    const xt = await (next ?? gatherStep(start));
    next = inputs.prefetch && start + o.batch < count && step + 1 < at.total ? gatherStep(start + o.batch) : null;
    lr = learningRate(o, step, at.total);
    let r: StepResult;
    try {
      const m = examples.parts === 2 ? relatedMask(examples, start, b) : margins.subarray(start, start + b);
      r = hooks.parallel ? await hooks.parallel.step(trainableVariables(model), momentum, xt, m, lr, stepOptions) : localStep(model, momentum, xt, m, stepOptions, lr);
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
      break; // the watch rolls back
    }
    hooks.onStep?.({ step: step + 1, totalSteps: at.total, epoch: at.epoch, loss: lossSum / (stepsThisEpoch + 1), tripletsPerSecond: seen / ((performance.now() - started) / 1000) });
  }
  await next?.catch(() => undefined).then((t) => t && disposeInputs(t));
  await hooks.parallel?.pull(trainableVariables(model), momentum);
  const seconds = (performance.now() - started) / 1000;
  const steps = Math.max(stepsThisEpoch, 1);
  return {
    step,
    record: { epoch: at.epoch, steps: stepsThisEpoch, loss: lossSum / steps, active: activeSum / Math.max(seen, 1), lr, seconds, tripletsPerSecond: seen / seconds, gradNorm: gradSum / steps },
  };
}

/**
 * Trains `model` on triplets from a teacher's self-ranking (rows × length; the rows of `x`, the
 * model's preprocessed inputs, or of other inputs such as images). Starts from `resume`
 * (weights already loaded into the model, momentum buffers given) when set. After every epoch the
 * watch (callbacks.ts) checks the loss, active hinges and gradient norm, and `hooks.select` scores
 * the model; the best epoch's weights are what the model holds at the end (the starting weights
 * when no epoch beat them). Returns the final state; the caller owns the model.
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
  if (o.loss === 'contrastive') {
    if (!(o.contrastive.temperature > 0)) throw new UserError(`the contrastive loss's temperature must be positive, got ${o.contrastive.temperature}`);
    if (o.imageWise || (o.microBatch != null && o.microBatch < o.batch)) throw new UserError('the contrastive loss compares every pair of a batch, so it computes the batch whole: drop --micro-batch and --image-wise, or use --loss triplet');
  }
  const counts = stepCounts(o, rows);
  const momentum = resume?.momentum ?? zeroMomentum(model);
  const stepOptions: StepOptions = { ...o, groups: parameterGroups(model, hooks.pretrainedLr) };
  const history = [...(resume?.state.history ?? [])];
  let step = resume?.state.stepsDone ?? 0;
  let initialAgreement = resume?.state.initialAgreement;
  const keep = KeepBest.start(model, { best: resume?.state.best, weights: resume?.best });
  if (hooks.select && initialAgreement === undefined) {
    initialAgreement = await hooks.select.score(model);
    keep.startingScore(initialAgreement);
  }
  let stopped: string | undefined = resume?.state.stopped;
  const state = (epochsDone: number): TrainState => ({ epochsDone, stepsDone: step, history, ...(initialAgreement !== undefined ? { initialAgreement } : {}), best: keep.best, ...(stopped ? { stopped } : {}) });
  try {
    for (let epoch = resume?.state.epochsDone ?? 0; !stopped && epoch < counts.epochs && step < counts.total; epoch++) {
      const ran = await runEpoch(model, inputs, epochExamples(neighbours, rows, o, epoch, anchors), o, { epoch, step, total: counts.total }, momentum, stepOptions, hooks);
      step = ran.step;
      history.push(ran.record);
      const runaway = watchVerdict(history);
      if (runaway) {
        stopped = `${runaway}; rolled back to ${bestLabel(keep.best.epoch)}`;
      } else {
        const validation = hooks.validate ? await hooks.validate(model) : undefined;
        const agreement = hooks.select ? await hooks.select.score(model) : undefined;
        history[history.length - 1] = { ...ran.record, ...(validation ? { validation } : {}), ...(agreement !== undefined ? { agreement } : {}) };
        if (!keep.offer(model, epoch, agreement) && hooks.select) stopped = patienceVerdict(epoch, keep.best, hooks.select.patience) ?? undefined;
      }
      await hooks.onEpoch?.(state(epoch + 1), momentum, keep.kept);
    }
    // The model ends with the best weights (the last epoch's unless the watch or selection says otherwise).
    keep.restore(model);
    return state(stopped ? history.length : counts.epochs);
  } finally {
    keep.dispose();
    if (!resume) tf.dispose(momentum);
  }
}
