/**
 * Data-parallel training on worker threads (docs/design.md, "Training on every core"): each
 * worker (gradientWorker.ts) holds its own tfjs backend and a replica of the model. The weights
 * and momentum live in shared memory. A step splits the batch's triplets into one shard per
 * worker; each worker computes its shard's gradients, scaled by its share of the batch, into
 * shared memory; then each worker updates its own range of the weights and momentum, adding the
 * shards' gradients in worker order (flatSgd.ts), so the step equals the one-thread step up to the
 * order of floating-point additions. The main thread's model receives the weights and momentum at
 * the end of each epoch (pull), for validation, selection and the checkpoint.
 *
 * The wasm backend runs on one thread, so N workers on N cores train up to N times as fast; what
 * travels per step is the shard's inputs, and each worker reads the others' gradients.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { assignFlat, isTensor, tf, writeFlat, type TensorData } from '../backend/tfjs.js';
import { evenBounds } from '../backend/parallel.js';
import { moduleWorker, siblingModule } from '../backend/workers.js';
import { trainableVariables, type SgdSettings } from './sgd.js';
import type { GradientOptions, ParallelSteps, StepInputs, StepOptions, StepResult } from './step.js';

/** What a worker is started with (workerData). */
export interface WorkerSetup {
  readonly index: number;
  readonly backend: string;
  readonly artifacts: tf.io.ModelArtifacts;
  /** The trainable weights' shapes, in order (checked against the replica). */
  readonly shapes: number[][];
  readonly options: GradientOptions;
  readonly sgd: SgdSettings;
  /** The weights, then the momentum buffers, concatenated in order: the state every step updates. */
  readonly state: SharedArrayBuffer;
  /** Each worker's gradients, the weights' layout (worker i writes grads[i], all read all). */
  readonly grads: SharedArrayBuffer[];
}

/** One request to a worker. */
export type WorkerMessage =
  /** Compute the gradients of these triplets (anchors, closers, farthers), scaled by `share` (the shard's triplets over the batch's). */
  | { readonly kind: 'shard'; readonly x: TensorData | TensorData[]; readonly margins: Float32Array; readonly share: number }
  /** Add the first `shards` workers' gradients and apply the update to elements [start, end) of the state; answers their squared gradients' sum. */
  | { readonly kind: 'apply'; readonly lr: number; readonly shards: number; readonly start: number; readonly end: number };

/** The default number of workers: the machine's cores (at most 8). */
export const defaultWorkers = (): number => Math.max(1, Math.min(availableParallelism(), 8));

/** Whether `model` (or a model nested in it) has batch normalisation layers. */
function hasBatchNorm(model: tf.LayersModel): boolean {
  return model.layers.some((l) => l.getClassName() === 'BatchNormalization' || ('layers' in l && hasBatchNorm(l as unknown as tf.LayersModel)));
}

/**
 * Why `model` trains on one thread although more workers were asked for, or null when it can
 * train on several: native TensorFlow uses every core itself, and batch statistics computed over
 * shards would not be the batch's.
 */
export function whyOneWorker(model: tf.LayersModel, options: GradientOptions, backend: string): string | null {
  if (backend !== 'wasm' && backend !== 'cpu') return `the ${backend} backend uses every core itself`;
  if (options.loss === 'contrastive') return 'the contrastive loss compares every pair of the batch, which shards cannot';
  if (options.batchNorm !== 'frozen' && hasBatchNorm(model)) {
    const what = options.imageWise ? 'updates its moving statistics image by image' : 'computes its statistics over the whole batch';
    return `batch normalisation ${what}; --batch-norm frozen trains on every core`;
  }
  return null;
}

/** The model's architecture and weights in memory, as a worker loads them. */
async function artifactsOf(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(a.weightData);
      artifacts = { modelTopology: a.modelTopology, weightSpecs: a.weightSpecs, weightData: data, format: a.format };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return artifacts!;
}

/** One worker thread and its one request in flight. */
class GradientWorker {
  private waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(
    readonly index: number,
    readonly thread: Worker,
  ) {
    thread.on('message', (m: { error?: string }) => {
      const w = this.waiting;
      this.waiting = null;
      if (m.error !== undefined) w?.reject(new Error(`gradient worker ${index + 1} failed: ${m.error}`));
      else w?.resolve(m);
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.waiting?.reject(this.failure);
      this.waiting = null;
    };
    thread.on('error', (err) => fail(new Error(`gradient worker ${index + 1} crashed: ${err.message}`)));
    thread.on('exit', (code) => fail(new Error(`gradient worker ${index + 1} stopped (exit code ${code})`)));
  }

  /** The worker's next message (its answer to `message`, or its start-up report when none). */
  request<T>(message?: WorkerMessage, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.waiting = { resolve: resolve as (v: unknown) => void, reject };
      if (message) this.thread.postMessage(message, transfer);
    });
  }
}

/** Worker threads that train replicas of one model together. */
export class GradientWorkers {
  /** Whether the shared state holds the weights and momentum (written from the main thread's at the first step). */
  private loaded = false;

  /** Worker i updates elements [ranges[i], ranges[i + 1]) of the weights and momentum. */
  private readonly ranges: number[];

  private constructor(
    private readonly workers: GradientWorker[],
    private readonly state: Float32Array,
  ) {
    this.ranges = evenBounds(0, state.length / 2, workers.length);
  }

  /** Starts `count` workers, each with a replica of `model` on `backend`. */
  static async start(model: tf.LayersModel, count: number, backend: string, options: GradientOptions & SgdSettings): Promise<GradientWorkers> {
    const artifacts = await artifactsOf(model);
    const trainable = trainableVariables(model);
    const total = trainable.reduce((s, w) => s + w.size, 0);
    const state = new SharedArrayBuffer(2 * 4 * total);
    const grads = Array.from({ length: count }, () => new SharedArrayBuffer(4 * total));
    const setupOf = (index: number): WorkerSetup => ({
      index,
      backend,
      artifacts,
      shapes: trainable.map((w) => [...w.shape]),
      options: { microBatch: options.microBatch ?? null, batchNorm: options.batchNorm, imageWise: options.imageWise },
      sgd: { momentum: options.momentum, weightDecay: options.weightDecay, ...(options.groups ? { groups: options.groups } : {}) },
      state,
      grads,
    });
    const workers = Array.from({ length: count }, (_, i) => new GradientWorker(i, moduleWorker(siblingModule(import.meta.url, 'gradientWorker'), { workerData: setupOf(i) })));
    const pool = new GradientWorkers(workers, new Float32Array(state));
    try {
      await Promise.all(workers.map((w) => w.request()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * One SGD step on the batch `x` (its 3b inputs: anchors, closers, farthers, stacked or one
   * tensor per item) with learning rate `lr`. The first step hands the workers `weights` and
   * `momentum` (the main thread's model); until `pull`, those are left as they were.
   */
  async step(weights: readonly tf.Variable[], momentum: readonly tf.Variable[], x: StepInputs, margins: Float32Array, lr: number): Promise<StepResult> {
    if (!this.loaded) {
      // The replicas take the weights from the shared state at their first shard.
      writeFlat([...weights, ...momentum], this.state);
      this.loaded = true;
    }
    const b = margins.length;
    const shards = Math.min(this.workers.length, b);
    const bounds = evenBounds(0, b, shards);
    const inputs = shardInputs(x, bounds);
    const parts = await Promise.all(
      inputs.map((data, i) => {
        const [start, end] = [bounds[i]!, bounds[i + 1]!];
        // A stacked shard is a fresh copy: its memory moves to the worker instead of being copied again.
        const transfer = Array.isArray(data) ? [] : [data.data.buffer as ArrayBuffer];
        return this.workers[i]!.request<{ loss: number; active: number }>({ kind: 'shard', x: data, margins: margins.slice(start, end), share: (end - start) / b }, transfer);
      }),
    );
    const applied = await Promise.all(this.workers.map((w, i) => w.request<{ squares: number }>({ kind: 'apply', lr, shards, start: this.ranges[i]!, end: this.ranges[i + 1]! })));
    return { loss: parts.reduce((s, a) => s + a.loss, 0), active: parts.reduce((s, a) => s + a.active, 0), gradNorm: Math.sqrt(applied.reduce((s, a) => s + a.squares, 0)) };
  }

  /** The workers' weights and momentum into the main thread's `weights` and `momentum`. */
  async pull(weights: readonly tf.Variable[], momentum: readonly tf.Variable[]): Promise<void> {
    if (this.loaded) assignFlat([...weights, ...momentum], this.state);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
  }

  /** Stops worker `i` as a crash would (for tests). */
  async crash(i: number): Promise<void> {
    await this.workers[i]!.thread.terminate();
  }
}

/**
 * The batch `x` (3b inputs: anchors, closers, farthers; tensors or their data) as data for
 * `bounds.length − 1` workers: triplets [bounds[i], bounds[i + 1]) for worker i. A stacked batch
 * is cut with plain copies (wasm's slice kernels are slow on large 4-d tensors).
 */
function shardInputs(x: StepInputs, bounds: readonly number[]): (TensorData | TensorData[])[] {
  const b = bounds.at(-1)!;
  const shards = bounds.slice(0, -1).map((start, i) => ({ start, count: bounds[i + 1]! - start }));
  const dataOf = (t: tf.Tensor | TensorData): TensorData => (isTensor(t) ? { shape: [...t.shape], data: t.dataSync() as Float32Array } : t);
  if (Array.isArray(x)) {
    const items = (x as (tf.Tensor | TensorData)[]).map(dataOf);
    return shards.map(({ start, count }) => [0, 1, 2].flatMap((p) => items.slice(p * b + start, p * b + start + count)));
  }
  const all = dataOf(x as tf.Tensor | TensorData);
  const row = all.data.length / all.shape[0]!;
  return shards.map(({ start, count }) => {
    const data = new Float32Array(3 * count * row);
    for (let p = 0; p < 3; p++) data.set(all.data.subarray((p * b + start) * row, (p * b + start + count) * row), p * count * row);
    return { shape: [3 * count, ...all.shape.slice(1)], data };
  });
}

/**
 * With the worker count left to the default, a run trains on every core when it has at least
 * this many triplets in all (steps × batch): starting a worker takes about a second, which a short
 * run does not win back. The rule reads the whole run's size, not a timing, so that the same
 * command (and a resumed run) always takes the same decision and so gives the same model.
 */
export const PARALLEL_ABOVE_TRIPLETS = 50_000;

export interface ParallelPlan {
  /** Workers asked for; undefined: defaultWorkers() when the run has PARALLEL_ABOVE_TRIPLETS triplets. */
  readonly workers?: number;
  /** The whole run's triplets (steps × batch, resumed steps included). */
  readonly triplets: number;
  readonly options: GradientOptions;
  readonly onStage?: (message: string) => void;
}

/** Steps on worker threads for train() (TrainHooks.parallel), and how to stop them. */
export interface ParallelTraining extends ParallelSteps {
  close(): Promise<void>;
}

/**
 * Data-parallel steps for training `model` as `plan` says, or null for one thread (one worker
 * asked for or left to the default on a short run, or a model or backend that cannot: the reason
 * goes to `onStage`). The workers start at the first step.
 */
export function parallelTraining(model: tf.LayersModel, plan: ParallelPlan): ParallelTraining | null {
  const count = plan.workers ?? (plan.triplets >= PARALLEL_ABOVE_TRIPLETS ? defaultWorkers() : 1);
  if (count <= 1) return null;
  const why = whyOneWorker(model, plan.options, tf.getBackend());
  if (why) {
    plan.onStage?.(`training on one thread: ${why}`);
    return null;
  }
  let pool: Promise<GradientWorkers> | null = null;
  const workers = (o: StepOptions): Promise<GradientWorkers> => {
    if (!pool) {
      plan.onStage?.(`training on ${count} worker threads`);
      pool = GradientWorkers.start(model, count, tf.getBackend(), o);
      pool.catch(() => undefined); // a failed start is reported by the step that awaits it
    }
    return pool;
  };
  return {
    async step(weights, momentum, x, margins, lr, o) {
      return (await workers(o)).step(weights, momentum, x, margins, lr);
    },
    async pull(weights, momentum) {
      if (pool) await (await pool).pull(weights, momentum);
    },
    async close() {
      if (pool) await (await pool.catch(() => null))?.close();
    },
  };
}
