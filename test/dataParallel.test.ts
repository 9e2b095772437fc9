import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/backend/tfjs.js';
import type { Matrix } from '../src/matrix.js';
import { buildHead } from '../src/model/head.js';
import { buildResNet } from '../src/model/resnet.js';
import { defaultWorkers, GradientWorkers, PARALLEL_ABOVE_TRIPLETS, parallelTraining, whyOneWorker } from '../src/train/dataParallel.js';
import { train, type TrainInputs } from '../src/train/loop.js';
import { TRAIN_DEFAULTS, type TrainOptions } from '../src/train/options.js';
import { gaussian, rng } from './helpers.js';

await initBackend('wasm');

function randomRows(seed: number, rows: number, cols: number): Matrix {
  const g = gaussian(rng(seed));
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, () => g()) };
}

/** A self-ranking of n items: each item's next items, cyclically (the content does not matter here). */
const cyclicRanking = (n: number, length: number) => Int32Array.from({ length: n * length }, (_, q) => (Math.floor(q / length) + (q % length) + 1) % n);

/** The largest absolute difference between two models' weights. */
function maxDifference(a: tf.LayersModel, b: tf.LayersModel): number {
  let max = 0;
  a.getWeights().forEach((w, i) => {
    const x = w.dataSync();
    const y = b.getWeights()[i]!.dataSync();
    for (let j = 0; j < x.length; j++) max = Math.max(max, Math.abs(x[j]! - y[j]!));
  });
  return max;
}

/** The largest absolute change of a model's weights from `before`. */
function maxChange(model: tf.LayersModel, before: Float32Array[]): number {
  let max = 0;
  model.getWeights().forEach((w, i) => {
    const x = w.dataSync();
    for (let j = 0; j < x.length; j++) max = Math.max(max, Math.abs(x[j]! - before[i]![j]!));
  });
  return max;
}

/** Trains `make()` for `o.steps` steps on one thread and on `workers` workers; returns both models. */
async function oneAndMany(make: () => tf.LayersModel, inputs: Matrix | TrainInputs, ranking: Int32Array, o: TrainOptions, workers: number) {
  const one = make();
  const many = make();
  const before = one.getWeights().map((w) => w.dataSync().slice() as Float32Array);
  const atStart = tf.memory().numTensors;
  await train(one, inputs, ranking, o);
  const oneThreadLeft = tf.memory().numTensors - atStart;
  const parallel = parallelTraining(many, { workers, triplets: o.steps! * o.batch, options: o })!;
  const tensors = tf.memory().numTensors;
  try {
    await train(many, inputs, ranking, o, { parallel });
  } finally {
    await parallel.close();
  }
  // Taking the weights and momentum back each epoch leaves no tensor behind beyond what one thread leaves.
  expect(tf.memory().numTensors - tensors).toBe(oneThreadLeft);
  return { one, many, before };
}

describe('data-parallel training on worker threads', () => {
  it('one step of a residual head on 2 workers equals the one-thread step (≤ 1e-5), and so does a short run', async () => {
    const x = randomRows(1, 120, 32);
    const ranking = cyclicRanking(120, 20);
    const make = () => buildHead({ kind: 'residual', inputDim: 32, outputDim: 8, hidden: 24, init: 'random', seed: 4 });
    const step: TrainOptions = { ...TRAIN_DEFAULTS, batch: 37, lr: 0.5, steps: 1, triplets: { k: 20, m0: 0.1, perAnchor: 2 } };
    const single = await oneAndMany(make, x, ranking, step, 2);
    // The step moved the weights (so equality is not that of two untouched models) ...
    expect(maxChange(single.one, single.before)).toBeGreaterThan(1e-3);
    // ... and both ways to the same place.
    expect(maxDifference(single.one, single.many)).toBeLessThanOrEqual(1e-5);
    // 3 workers on a batch of 37: uneven shards (12, 13, 12); 12 steps across an epoch boundary.
    const run = await oneAndMany(make, x, ranking, { ...step, steps: 12 }, 3);
    expect(maxDifference(run.one, run.many)).toBeLessThanOrEqual(1e-4);
    tf.dispose([single.one, single.many, run.one, run.many].flatMap((m) => m.getWeights()));
  }, 60_000);

  it('an image network (conv layers, frozen batch normalisation, GeM) trains the same on 2 workers, images one tensor each', async () => {
    const size = 12;
    const images = Array.from({ length: 30 }, (_, i) => tf.randomUniform([1, size, size, 1], 0, 1, 'float32', i + 1));
    const inputs: TrainInputs = { rows: images.length, gather: async (items) => items.map((i) => images[i]!.clone()) };
    const make = () => buildResNet({ arch: 'small', size: null, channels: 1, widths: [4, 8], whiten: 6, seed: 2 });
    const o: TrainOptions = { ...TRAIN_DEFAULTS, batch: 10, lr: 0.1, steps: 1, batchNorm: 'frozen', triplets: { k: 8, m0: 0.1, perAnchor: 1 } };
    expect(whyOneWorker(make(), o, 'wasm')).toBeNull();
    expect(whyOneWorker(make(), { ...o, batchNorm: 'train' }, 'wasm')).toMatch(/batch normalisation computes its statistics over the whole batch; --batch-norm frozen/);
    const r = await oneAndMany(make, inputs, cyclicRanking(30, 8), o, 2);
    expect(maxChange(r.one, r.before)).toBeGreaterThan(1e-4);
    expect(maxDifference(r.one, r.many)).toBeLessThanOrEqual(1e-5);
    tf.dispose(images);
  }, 60_000);

  it('left to the default, a run trains on every core from PARALLEL_ABOVE_TRIPLETS triplets on, whatever its timing', async () => {
    const model = buildHead({ kind: 'linear', inputDim: 16, outputDim: 4, hidden: 0, init: 'random', seed: 1 });
    const messages: string[] = [];
    const plan = { options: TRAIN_DEFAULTS, onStage: (m: string) => messages.push(m) };
    expect(parallelTraining(model, { ...plan, triplets: PARALLEL_ABOVE_TRIPLETS - 1 })).toBeNull();
    const long = parallelTraining(model, { ...plan, triplets: PARALLEL_ABOVE_TRIPLETS });
    expect(long !== null).toBe(defaultWorkers() > 1);
    await long?.close();
    expect(parallelTraining(model, { ...plan, triplets: PARALLEL_ABOVE_TRIPLETS, workers: 1 })).toBeNull();
    // Native TensorFlow spreads over the cores itself: one thread, and the log says why.
    expect(whyOneWorker(model, TRAIN_DEFAULTS, 'tensorflow')).toBe('the tensorflow backend uses every core itself');
    expect(messages).toEqual([]);
  });

  it("a worker's crash fails the step with an error naming the worker, and so does a failure inside one", async () => {
    const model = buildHead({ kind: 'linear', inputDim: 16, outputDim: 4, hidden: 0, init: 'random', seed: 1 });
    const o: TrainOptions = { ...TRAIN_DEFAULTS, batch: 8, steps: 3, triplets: { k: 10, m0: 0.1, perAnchor: 1 } };
    const pool = await GradientWorkers.start(model, 2, 'wasm', o);
    try {
      const x = randomRows(2, 40, 16);
      await pool.crash(1);
      await expect(train(model, x, cyclicRanking(40, 10), o, { parallel: pool })).rejects.toThrow(/gradient worker 2 stopped \(exit code 1\)/);
    } finally {
      await pool.close();
    }
    // Inputs the replica cannot take (24 columns for a 16-d head): the worker's own error, reported.
    const other = await GradientWorkers.start(model, 2, 'wasm', o);
    try {
      await expect(train(model, randomRows(3, 40, 24), cyclicRanking(40, 10), o, { parallel: other })).rejects.toThrow(/gradient worker [12] failed: .*expected axis -1 of input shape to have value 16 but got shape 12,24/);
    } finally {
      await other.close();
    }
  }, 60_000);
});
