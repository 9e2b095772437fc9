import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { classMap } from '../src/eval/classLevel.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { l2NormalizeRows, type Matrix } from '../src/matrix.js';
import { buildHead, embedRows } from '../src/model/head.js';
import { fileHandler, loadModelFolder } from '../src/model/io.js';
import { embedFiles, exportModel } from '../src/model/run.js';
import { learnPca, pcaProjection } from '../src/model/pca.js';
import { fullRanking } from '../src/eval/fullRanking.js';
import { trainFiles } from '../src/train/descriptors.js';
import { relatedMask, train } from '../src/train/loop.js';
import { TRAIN_DEFAULTS, type TrainOptions } from '../src/train/options.js';
import { learningRate, zeroMomentum } from '../src/train/sgd.js';
import { contrastiveLoss, sgdStep, tripletLoss } from '../src/train/step.js';
import { minePairs } from '../src/triplets/mining.js';
import { bruteClassMap, gaussian, HAS_SHARED, rng, SHARED, withTempDir } from './helpers.js';
import { diffuseFiles } from '../src/diffusion/run.js';
import { evaluateFiles } from '../src/eval/run.js';

/**
 * Labelled toy data: the class is written in the first `signal` dimensions, weakly, and drowned
 * by strong noise in the others, so Euclidean search on the raw vectors is poor, while a
 * projection onto the signal dimensions is near perfect.
 */
function toy(seed: number, perClass: number, classes = 4, dim = 24, signal = 4): { x: Matrix; labels: Int32Array } {
  const g = gaussian(rng(seed));
  const centres = Array.from({ length: classes }, (_, c) => Array.from({ length: signal }, (_, j) => ((c >> j) & 1 ? 1 : -1) * (j < 2 ? 1 : 0)));
  const rows = classes * perClass;
  const data = new Float32Array(rows * dim);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let j = 0; j < dim; j++) data[i * dim + j] = j < signal ? centres[c]![j]! + 0.3 * g() : 1.5 * g();
  }
  return { x: { rows, cols: dim, data }, labels };
}

/** A "diffusion" self-ranking that knows the classes: same class first, each part shuffled. */
function oracleRanking(labels: Int32Array, seed: number): Int32Array {
  const n = labels.length;
  const r = rng(seed);
  const out = new Int32Array(n * (n - 1));
  for (let a = 0; a < n; a++) {
    const same: number[] = [];
    const other: number[] = [];
    for (let b = 0; b < n; b++) if (b !== a) (labels[b] === labels[a] ? same : other).push(b);
    for (const part of [same, other]) {
      for (let i = part.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [part[i], part[j]] = [part[j]!, part[i]!];
      }
    }
    out.set([...same, ...other], a * (n - 1));
  }
  return out;
}

const mapOf = async (db: Matrix, q: Matrix, dbLabels: Int32Array, qLabels: Int32Array) =>
  classMap(await fullRanking(db, q, 'euclidean', 'js'), qLabels, dbLabels).mAP;

describe('PCA', () => {
  it('finds eigenpairs of the covariance: C·v = λ·v, orthonormal, decreasing, λ sum ≤ trace', async () => {
    const { x } = toy(1, 60, 4, 12, 4);
    const pca = await learnPca(x, 5, { method: 'exact', engine: 'js' });
    // Covariance in float64 by brute force.
    const { rows: n, cols: d } = x;
    const C = new Float64Array(d * d);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) C[a * d + b]! += (x.data[i * d + a]! - pca.mean[a]!) * (x.data[i * d + b]! - pca.mean[b]!);
    }
    for (let i = 0; i < C.length; i++) C[i]! /= n - 1;
    let trace = 0;
    for (let a = 0; a < d; a++) trace += C[a * d + a]!;
    for (let k = 0; k < 5; k++) {
      const v = pca.components.subarray(k * d, (k + 1) * d);
      let norm = 0;
      for (let a = 0; a < d; a++) {
        let cv = 0;
        for (let b = 0; b < d; b++) cv += C[a * d + b]! * v[b]!;
        expect(Math.abs(cv - pca.eigenvalues[k]! * v[a]!)).toBeLessThan(1e-4 * pca.eigenvalues[0]!);
        norm += v[a]! ** 2;
      }
      expect(norm).toBeCloseTo(1, 5);
      if (k > 0) expect(pca.eigenvalues[k]!).toBeLessThanOrEqual(pca.eigenvalues[k - 1]!);
      for (let p = 0; p < k; p++) {
        let dot = 0;
        for (let a = 0; a < d; a++) dot += v[a]! * pca.components[p * d + a]!;
        expect(Math.abs(dot)).toBeLessThan(1e-5);
      }
    }
    expect(pca.eigenvalues.reduce((s, v) => s + v, 0)).toBeLessThanOrEqual(trace * (1 + 1e-6));
    expect(pca.totalVariance).toBeCloseTo(trace, 4);
  });

  it('the subspace iteration agrees with the exact eigenvectors on a decaying spectrum', async () => {
    const g = gaussian(rng(3));
    const d = 120;
    const n = 600;
    const data = new Float32Array(n * d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = g() * 0.93 ** j;
    // A random rotation, so the axes are not the eigenvectors.
    const x = { rows: n, cols: d, data };
    const exact = await learnPca(x, 10, { method: 'exact', engine: 'js' });
    const sub = await learnPca(x, 10, { method: 'subspace', engine: 'js' });
    expect(sub.method).toBe('subspace');
    for (let k = 0; k < 10; k++) {
      expect(Math.abs(sub.eigenvalues[k]! - exact.eigenvalues[k]!) / exact.eigenvalues[k]!).toBeLessThan(1e-3);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += sub.components[k * d + j]! * exact.components[k * d + j]!;
      expect(Math.abs(dot)).toBeGreaterThan(0.99);
    }
  });

  it('refuses more dimensions than the descriptors have', async () => {
    const { x } = toy(1, 10, 4, 8);
    await expect(learnPca(x, 9)).rejects.toThrow(/\[1, 8\]/);
  });
});

describe('descriptor-mode heads', async () => {
  await initBackend('wasm');
  const { x } = toy(5, 40, 4, 16);

  it('the untrained residual head is exactly the PCA projection W·(x − mean)', async () => {
    const pca = await learnPca(x, 6, { engine: 'js' });
    const model = buildHead({ kind: 'residual', inputDim: 16, outputDim: 6, hidden: 32, init: 'pca', seed: 0 }, pcaProjection(pca, false));
    const y = tf.tidy(() => (model.predict(tf.tensor2d(x.data, [x.rows, 16])) as tf.Tensor).dataSync());
    for (let i = 0; i < x.rows; i++) {
      for (let k = 0; k < 6; k++) {
        let want = 0;
        for (let j = 0; j < 16; j++) want += pca.components[k * 16 + j]! * (x.data[i * 16 + j]! - pca.mean[j]!);
        expect(y[i * 6 + k]).toBeCloseTo(want, 4);
      }
    }
    model.dispose();
  });

  it('whitening gives unit variance on the leading components', async () => {
    const pca = await learnPca(x, 4, { engine: 'js' });
    const model = buildHead({ kind: 'linear', inputDim: 16, outputDim: 4, hidden: 1, init: 'whiten', seed: 0 }, pcaProjection(pca, true, 0));
    const y = tf.tidy(() => (model.predict(tf.tensor2d(x.data, [x.rows, 16])) as tf.Tensor).dataSync());
    for (let k = 0; k < 4; k++) {
      let s = 0;
      for (let i = 0; i < x.rows; i++) s += y[i * 4 + k]! ** 2;
      expect(s / (x.rows - 1)).toBeCloseTo(1, 3);
    }
    model.dispose();
  });

  it('refuses a PCA head wider than its input', () => {
    expect(() => buildHead({ kind: 'residual', inputDim: 8, outputDim: 9, hidden: 4, init: 'pca', seed: 0 })).toThrow(/--init random/);
  });
});

describe('triplet loss and SGD', async () => {
  await initBackend('wasm');

  it('mean of [d(a,c) − d(a,f) + margin]₊ on L2-normalised rows (hand-worked)', () => {
    // Triplet 1: a=(3,0) c=(0,1) f=(−1,0): √2 − 2 + 0.1 < 0 → 0.
    // Triplet 2: a=(1,0) c=(−2,0) f=(0,5): 2 − √2 + 0.2 = 0.785786…
    const e = tf.tensor2d([3, 0, 1, 0, 0, 1, -2, 0, -1, 0, 0, 5], [6, 2]);
    const m = tf.tensor1d([0.1, 0.2]);
    const { loss, hinges } = tripletLoss(e, m);
    expect(Array.from(hinges.dataSync())).toEqual([0, expect.closeTo(2 - Math.SQRT2 + 0.2, 6)]);
    expect(loss.dataSync()[0]).toBeCloseTo((2 - Math.SQRT2 + 0.2) / 2, 6);
    tf.dispose([e, m, loss, hinges]);
  });

  it('the learning-rate schedules start at lr and decay as documented', () => {
    const o = { lr: 0.1 };
    expect(learningRate({ ...o, schedule: 'cosine' }, 0, 100)).toBeCloseTo(0.1, 12);
    expect(learningRate({ ...o, schedule: 'cosine' }, 50, 100)).toBeCloseTo(0.05, 12);
    expect(learningRate({ ...o, schedule: 'linear' }, 75, 100)).toBeCloseTo(0.025, 12);
    expect(learningRate({ ...o, schedule: 'step' }, 70, 100)).toBeCloseTo(0.001, 12);
    expect(learningRate({ ...o, schedule: 'constant' }, 99, 100)).toBe(0.1);
  });

  it('two steps follow PyTorch SGD: v ← μv + ∇ + wd·w; w ← w − lr·v', () => {
    const model = buildHead({ kind: 'mlp', inputDim: 5, outputDim: 3, hidden: 4, init: 'random', seed: 2 });
    const momentum = zeroMomentum(model);
    const r = rng(4);
    const xs = tf.tensor2d(Array.from({ length: 6 * 5 }, () => r() - 0.5), [6, 5]);
    const ms = tf.tensor1d([0.5, 0.5]);
    const o = { momentum: 0.9, weightDecay: 0.01 };
    const weights = () => model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
    const gradients = () => {
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => tripletLoss(model.apply(xs) as tf.Tensor2D, ms).loss, vars);
      const out = vars.map((v) => Array.from(grads[v.name]!.dataSync()));
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    let w = weights();
    let v = w.map((a) => a.map(() => 0));
    for (const lr of [0.3, 0.2]) {
      const g = gradients();
      expect(g.some((a) => a.some((x) => x !== 0))).toBe(true);
      v = v.map((a, i) => a.map((vi, j) => 0.9 * vi + g[i]![j]! + 0.01 * w[i]![j]!));
      w = w.map((a, i) => a.map((wi, j) => wi - lr * v[i]![j]!));
      sgdStep(model, momentum, xs, ms, o, lr);
      weights().forEach((a, i) => a.forEach((x, j) => expect(x).toBeCloseTo(w[i]![j]!, 5)));
    }
    tf.dispose([xs, ms, ...momentum]);
    model.dispose();
  });

  it('gradient accumulation over micro-batches gives the whole batch\'s step', () => {
    const r = rng(6);
    const xs = tf.tensor2d(Array.from({ length: 15 * 5 }, () => r() - 0.5), [15, 5]);
    const ms = tf.tensor1d([0.5, 0.1, 0.3, 0.2, 0.4]);
    const run = (microBatch: number | null) => {
      const model = buildHead({ kind: 'mlp', inputDim: 5, outputDim: 3, hidden: 4, init: 'random', seed: 2 });
      const momentum = zeroMomentum(model);
      const before = tf.memory().numTensors;
      const results = [0.3, 0.2].map((lr) => sgdStep(model, momentum, xs, ms, { momentum: 0.9, weightDecay: 0.01, microBatch }, lr));
      expect(tf.memory().numTensors).toBe(before);
      const w = model.getWeights().flatMap((t) => Array.from(t.dataSync()));
      tf.dispose(momentum);
      model.dispose();
      return { results, w };
    };
    const whole = run(null);
    const micro = run(2);
    // Float32 sums in another order: equal to a few ulps (relative 1e-6).
    micro.w.forEach((v, i) => expect(Math.abs(v - whole.w[i]!) / Math.max(1, Math.abs(whole.w[i]!))).toBeLessThan(1e-6));
    micro.results.forEach((m, i) => {
      expect(m.loss).toBeCloseTo(whole.results[i]!.loss, 6);
      expect(m.active).toBe(whole.results[i]!.active);
    });
    tf.dispose([xs, ms]);
  });

  it('learns a projection that transfers to unseen queries, without leaking tensors', async () => {
    const db = toy(11, 50);
    const q = toy(12, 10);
    const baseline = await mapOf(db.x, q.x, db.labels, q.labels);
    const model = buildHead({ kind: 'linear', inputDim: 24, outputDim: 8, hidden: 1, init: 'random', seed: 1 });
    const before = await mapOf(embedRows(model, db.x), embedRows(model, q.x), db.labels, q.labels);
    const o: TrainOptions = { ...TRAIN_DEFAULTS, batch: 32, lr: 0.2, epochs: 6, triplets: { k: 199, m0: 0.5, perAnchor: 10 } };
    const counts: number[] = [];
    const state = await train(model, db.x, oracleRanking(db.labels, 3), o, { onStep: () => counts.push(tf.memory().numTensors) });
    const after = await mapOf(embedRows(model, db.x), embedRows(model, q.x), db.labels, q.labels);
    // Euclidean on the raw vectors and on the random projection are poor; the trained one is not.
    expect(baseline).toBeLessThan(0.5);
    expect(before).toBeLessThan(0.5);
    expect(after).toBeGreaterThan(0.9);
    expect(state.history).toHaveLength(6);
    expect(state.history.at(-1)!.loss).toBeLessThan(state.history[0]!.loss);
    expect(new Set(counts.slice(1)).size).toBe(1);
    model.dispose();
  });
});

/** Toy data and its oracle ranking written as a run's inputs. */
function writeToyInputs(dir: string): { db: string; ranks: string; queries: string; labels: string; queryLabels: string } {
  const db = toy(21, 30);
  const q = toy(22, 5);
  const paths = { db: join(dir, 'db.npy'), ranks: join(dir, 'teacher'), queries: join(dir, 'q.npy'), labels: join(dir, 'labels.txt'), queryLabels: join(dir, 'qlabels.txt') };
  writeNpy(paths.db, { dtype: 'float32', shape: [db.x.rows, db.x.cols], data: db.x.data });
  writeNpy(paths.queries, { dtype: 'float32', shape: [q.x.rows, q.x.cols], data: q.x.data });
  writeNpy(join(paths.ranks, 'indices.npy'), { dtype: 'int32', shape: [db.x.rows, db.x.rows - 1], data: oracleRanking(db.labels, 5) });
  writeFileSync(paths.labels, Array.from(db.labels).join('\n'));
  writeFileSync(paths.queryLabels, Array.from(q.labels).join('\n'));
  return paths;
}

describe('contrastive (InfoNCE) loss', async () => {
  await initBackend('wasm');

  it('mean over anchors of −log softmax_j(a_i·p_j / τ) at j = i, on L2-normalised rows (hand-worked)', () => {
    // Anchors (2, 0) and (0, 3) normalise to e1 and e2. Matched positives: s = [[2, 0], [0, 2]] at τ 0.5,
    // each loss log(e² + 1) − 2 = log(1 + e⁻²); swapped positives: log(1 + e²) each, and both anchors missed.
    const tau = 0.5;
    const matched = tf.tensor2d([[2, 0], [0, 3], [5, 0], [0, 0.5]]);
    const swapped = tf.tensor2d([[2, 0], [0, 3], [0, 0.5], [5, 0]]);
    const m = contrastiveLoss(matched, tau);
    const s = contrastiveLoss(swapped, tau);
    expect(m.loss.dataSync()[0]).toBeCloseTo(Math.log(1 + Math.exp(-2)), 5);
    expect(Array.from(m.misses.dataSync())).toEqual([0, 0]);
    expect(s.loss.dataSync()[0]).toBeCloseTo(Math.log(1 + Math.exp(2)), 5);
    expect(Array.from(s.misses.dataSync())).toEqual([1, 1]);
    tf.dispose([matched, swapped, m.loss, m.misses, s.loss, s.misses]);
  });

  it('leaves the positives the teacher relates to an anchor out of its negatives (hand-worked)', () => {
    // Matched pairs at τ 0.5 (s = [[2, 0], [0, 2]]): with positive 1 related to anchor 0, anchor 0's
    // softmax holds its own positive alone (loss 0) and anchor 1's is as before: log(1 + e⁻²) / 2 in all.
    const x = tf.tensor2d([[2, 0], [0, 3], [5, 0], [0, 0.5]]);
    const related = tf.tensor2d([[0, 1], [0, 0]]);
    const r = contrastiveLoss(x, 0.5, related);
    expect(r.loss.dataSync()[0]).toBeCloseTo(Math.log(1 + Math.exp(-2)) / 2, 5);
    // Swapped positives, both related: each anchor's own (wrong) positive is all it sees, no miss counted.
    const swapped = tf.tensor2d([[2, 0], [0, 3], [0, 0.5], [5, 0]]);
    const both = tf.tensor2d([[0, 1], [1, 0]]);
    const s = contrastiveLoss(swapped, 0.5, both);
    expect(s.loss.dataSync()[0]).toBeCloseTo(0, 5);
    expect(Array.from(s.misses.dataSync())).toEqual([0, 0]);
    tf.dispose([x, related, r.loss, r.misses, swapped, both, s.loss, s.misses]);
  });

  it('a step\'s related mask: positive j is anchor i itself or among its teacher positives', () => {
    // Pairs (anchor, positive): (0, 5), (1, 0), (2, 6), (3, 1); teacher positives 0: [5, 1], 1: [0, 7], 2: [6, 9], 3: [1, 2].
    const lists: Record<number, number[]> = { 0: [5, 1], 1: [0, 7], 2: [6, 9], 3: [1, 2] };
    const e = { items: Int32Array.from([0, 5, 1, 0, 2, 6, 3, 1]), margins: new Float32Array(4), parts: 2 as const, positivesOf: (a: number) => Int32Array.from(lists[a]!) };
    // Anchor 0: positive of pair 1 is item 0 (itself), of pair 3 item 1 (its list). Anchor 1: pair 0's 5? no; pair 3's 1 (itself).
    // Anchor 2: none. Anchor 3: pair 1's 0? no; its list [1, 2] holds no other positive (5, 0, 6).
    expect(Array.from(relatedMask(e, 0, 4))).toEqual([0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // A step over pairs [1, 3): anchors 1 and 2 with positives 0 and 6.
    expect(Array.from(relatedMask(e, 1, 2))).toEqual([0, 0, 0, 0]);
  });

  it('pairs draw each positive from the anchor\'s top `positives`, every anchor perAnchor times', () => {
    const rows = 6;
    const length = 5;
    const neighbours = Int32Array.from({ length: rows * length }, (_, i) => 100 * Math.floor(i / length) + (i % length));
    const p = minePairs(neighbours, rows, { positives: 2, perAnchor: 50, seed: 3 });
    expect(p.count).toBe(rows * 50);
    const drawn = new Set<number>();
    for (let t = 0; t < p.count; t++) {
      const a = p.items[2 * t]!;
      const pos = p.items[2 * t + 1]!;
      expect(Math.floor(pos / 100)).toBe(a);
      expect(pos % 100).toBeLessThan(2);
      drawn.add(pos);
    }
    expect(drawn.size).toBe(rows * 2);
  });

  it('learns a projection that transfers to unseen queries, and refuses micro-batches', async () => {
    const db = toy(11, 50);
    const q = toy(12, 10);
    const model = buildHead({ kind: 'linear', inputDim: 24, outputDim: 8, hidden: 1, init: 'random', seed: 1 });
    const before = await mapOf(embedRows(model, db.x), embedRows(model, q.x), db.labels, q.labels);
    const o: TrainOptions = { ...TRAIN_DEFAULTS, batch: 32, lr: 0.2, epochs: 6, loss: 'contrastive', contrastive: { positives: 10, temperature: 0.1 }, triplets: { k: 199, m0: 0.5, perAnchor: 4 } };
    await expect(train(model, db.x, oracleRanking(db.labels, 3), { ...o, microBatch: 8 })).rejects.toThrow(/contrastive loss compares every pair/);
    const state = await train(model, db.x, oracleRanking(db.labels, 3), o);
    const after = await mapOf(embedRows(model, db.x), embedRows(model, q.x), db.labels, q.labels);
    expect(before).toBeLessThan(0.5);
    expect(after).toBeGreaterThan(0.9);
    expect(state.history.at(-1)!.loss).toBeLessThan(state.history[0]!.loss);
    model.dispose();
  });
});

describe('train, resume, embed and export on files', async () => {
  const head = { kind: 'residual', dim: 6, hidden: 16 } as const;
  const opts = { batch: 16, lr: 0.05, epochs: 3, triplets: { k: 100, m0: 0.3, perAnchor: 4 } };

  it('a run resumed after a crash ends with the same weights as an uninterrupted run', async () => {
    await withTempDir(async (dir) => {
      const p = writeToyInputs(dir);
      const straight = await trainFiles({ db: p.db, ranks: p.ranks, out: join(dir, 'a'), head, train: opts, backend: 'wasm', engine: 'js' });
      expect(straight.history).toHaveLength(3);
      // Crash in the second epoch (the first epoch's checkpoint is on disk).
      await expect(
        trainFiles({
          db: p.db, ranks: p.ranks, out: join(dir, 'b'), head, train: opts, backend: 'wasm', engine: 'js',
          onStep: (s) => {
            if (s.epoch === 1) throw new Error('simulated crash');
          },
        }),
      ).rejects.toThrow('simulated crash');
      await expect(trainFiles({ db: p.db, ranks: p.ranks, out: join(dir, 'b'), head, train: opts, backend: 'wasm', engine: 'js' })).rejects.toThrow(/--resume/);
      const resumed = await trainFiles({ db: p.db, ranks: p.ranks, out: join(dir, 'b'), head, train: opts, backend: 'wasm', engine: 'js', resume: true });
      expect(resumed.resumedFrom).toBe(1);
      expect(resumed.history.map((h) => h.loss)).toEqual(straight.history.map((h) => h.loss));
      expect(readFileSync(join(dir, 'b', 'model', 'weights.bin'))).toEqual(readFileSync(join(dir, 'a', 'model', 'weights.bin')));
      // Other options do not resume this checkpoint.
      await expect(
        trainFiles({ db: p.db, ranks: p.ranks, out: join(dir, 'b'), head, train: { ...opts, lr: 0.1 }, backend: 'wasm', engine: 'js', resume: true }),
      ).rejects.toThrow(/other data or options/);
    });
  });

  it('exported models load with tf.loadLayersModel and reproduce `embed` exactly', async () => {
    await withTempDir(async (dir) => {
      const p = writeToyInputs(dir);
      const run = await trainFiles({
        db: p.db, ranks: p.ranks, out: join(dir, 'run'), head, train: { ...opts, epochs: 2 }, backend: 'wasm', engine: 'js',
        validation: { queries: p.queries, labels: p.labels, queryLabels: p.queryLabels },
      });
      await embedFiles({ model: join(dir, 'run'), db: p.db, queries: p.queries, out: join(dir, 'emb'), backend: 'wasm' });
      // The last epoch's validation is Euclidean search on the saved model's embeddings (brute force).
      const npy = (f: string) => {
        const a = readNpy(join(dir, 'emb', f));
        return { rows: a.shape[0]!, cols: a.shape[1]!, data: a.data as Float32Array };
      };
      const labelsOf = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map(Number);
      expect(Math.abs(run.history[1]!.validation!.mAP! - bruteClassMap(npy('db.npy'), npy('queries.npy'), labelsOf(p.labels), labelsOf(p.queryLabels)))).toBeLessThan(0.006);
      await exportModel({ model: join(dir, 'run'), out: join(dir, 'exported'), backend: 'wasm' });
      const json = JSON.parse(readFileSync(join(dir, 'exported', 'model.json'), 'utf8'));
      expect(json.format).toBe('layers-model');
      expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
      const classes = new Set(json.modelTopology.config.layers.map((l: { class_name: string }) => l.class_name));
      expect([...classes].sort()).toEqual(['Add', 'Dense', 'InputLayer']);
      // Plain tfjs: load, predict, normalise as the manifest says.
      const model = await tf.loadLayersModel(fileHandler(join(dir, 'exported', 'model.json')));
      const manifest = JSON.parse(readFileSync(join(dir, 'exported', 'manifest.json'), 'utf8'));
      expect(manifest).toMatchObject({ inputKind: 'descriptors', inputDim: 24, embeddingDim: 6, preprocess: { normalize: 'l2' }, postprocess: { normalize: 'l2' } });
      expect(manifest.provenance).toMatchObject({ databaseSize: 120, steps: 2 * Math.ceil((120 * 4) / 16) });
      const { readMatrix } = await import('../src/matrix.js');
      for (const [input, output] of [[p.db, 'db.npy'], [p.queries, 'queries.npy']] as const) {
        const x = l2NormalizeRows(readMatrix(input));
        const y = tf.tidy(() => {
          const out = model.predict(tf.tensor2d(x.data, [x.rows, x.cols])) as tf.Tensor2D;
          return tf.div(out, tf.norm(out, 'euclidean', 1, true)).dataSync();
        });
        expect(Array.from(y)).toEqual(Array.from(readMatrix(join(dir, 'emb', output)).data));
      }
      model.dispose();
      const loaded = await loadModelFolder(join(dir, 'run'));
      expect(loaded.manifest.embeddingDim).toBe(6);
      loaded.model.dispose();
    });
  });

  it('refuses a ranking of another database and descriptors of another dimension', async () => {
    await withTempDir(async (dir) => {
      const p = writeToyInputs(dir);
      writeNpy(join(dir, 'small.npy'), { dtype: 'float32', shape: [10, 24], data: new Float32Array(240).fill(1) });
      await expect(trainFiles({ db: join(dir, 'small.npy'), ranks: p.ranks, out: join(dir, 'x'), backend: 'wasm' })).rejects.toThrow(/ranks 120 items but .*small\.npy has 10 rows/);
      await trainFiles({ db: p.db, ranks: p.ranks, out: join(dir, 'run'), head, train: { ...opts, epochs: 1 }, backend: 'wasm', engine: 'js' });
      writeNpy(join(dir, 'wide.npy'), { dtype: 'float32', shape: [3, 25], data: new Float32Array(75).fill(1) });
      await expect(embedFiles({ model: join(dir, 'run'), db: join(dir, 'wide.npy'), out: join(dir, 'e'), backend: 'wasm' })).rejects.toThrow(/25 dimensions but the model expects 24/);
      await expect(embedFiles({ model: dir, db: p.db, out: join(dir, 'e'), backend: 'wasm' })).rejects.toThrow(/no model\.json/);
    });
  });
});

describe.skipIf(!HAS_SHARED)('distillation on revisited Oxford, CaffeNet/PCA-128 descriptors (shared data)', () => {
  it('a head trained with the paper\'s defaults on the database alone beats the baseline on the 70 unseen queries (Medium > 21.13)', async () => {
    const rox = join(SHARED, 'data', 'roxford5k');
    const db = join(rox, 'lopq-caffenet-pca128.db.npy');
    await withTempDir(async (dir) => {
      await diffuseFiles({ method: 'cas', db, out: join(dir, 'teacher'), topK: 1000 });
      const run = await trainFiles({ db, ranks: join(dir, 'teacher'), out: join(dir, 'run'), backend: 'wasm' });
      expect(run.options).toMatchObject({ batch: 40, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, triplets: { k: 300, m0: 0.1 } });
      await embedFiles({ model: join(dir, 'run'), db, queries: join(rox, 'lopq-caffenet-pca128.query.npy'), out: join(dir, 'emb'), backend: 'wasm' });
      const rep = await evaluateFiles({ db: join(dir, 'emb', 'db.npy'), query: join(dir, 'emb', 'queries.npy'), metric: 'euclidean', gnd: join(rox, 'gnd_roxford5k.pkl') });
      if (rep.protocol !== 'revisited') throw new Error('expected a revisited report');
      console.log(`ROxford distilled: E ${rep.mAP.easy} / M ${rep.mAP.medium} / H ${rep.mAP.hard} (baseline 28.89 / 21.13 / 4.60)`);
      expect(rep.mAP.medium).toBeGreaterThan(21.13);
    });
  }, 600_000);
});
