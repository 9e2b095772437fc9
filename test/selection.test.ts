/**
 * Distillation that never makes retrieval worse: the triplet range from the teacher's distances,
 * the held-out agreement with the teacher, the verdict against the input, and the watch that
 * rolls a runaway fine-tuning back.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { writeNpy } from '../src/io/npy.js';
import type { Matrix } from '../src/matrix.js';
import { SHIPPED_BACKBONES } from '../src/model/backbones.js';
import { buildImageModel } from '../src/model/image.js';
import { GeM } from '../src/model/resnet.js';
import { embedImageList } from '../src/model/run.js';
import { loadModelFolder, saveModelFolder } from '../src/model/io.js';
import { bootstrap } from '../src/pipeline/bootstrap.js';
import { resultFigure, mainFigure } from '../src/report/html.js';
import { holdOutItems, significantlyBetter, teacherAgreement, trainingRanking } from '../src/train/agreement.js';
import { trainImages } from '../src/train/images.js';
import { watchVerdict } from '../src/train/callbacks.js';
import { epochExamples } from '../src/train/loop.js';
import type { EpochRecord } from '../src/train/records.js';
import { TRAIN_DEFAULTS } from '../src/train/options.js';
import { trainingPlan, verdict, type TrainingPlan } from '../src/train/selection.js';
import { parameterGroups } from '../src/train/sgd.js';
import { tripletRange } from '../src/triplets/range.js';
import { colourImages, gaussian, rng, withTempDir } from './helpers.js';

describe('the triplet range from the teacher', () => {
  it('is the multiple of the median position of the largest jump in the distances', () => {
    // Three items of 40 ranked neighbours: the distances jump after 4, 4 and 9 neighbours.
    const rows = [4, 4, 9].map((at) => Array.from({ length: 40 }, (_, j) => (j < at ? 0.1 + 0.01 * j : 0.6 + 0.01 * j)));
    const r = tripletRange(Float32Array.from(rows.flat()), 3);
    expect(r.relevantSet).toBe(4);
    expect(r.k).toBe(32); // 8 × 4
    expect(r.quartiles).toEqual([4, 4]);
    // Capped by the ranking's length, and at least 10.
    const long = Array.from({ length: 12 }, (_, j) => (j < 6 ? j * 0.01 : 1 + j * 0.01));
    expect(tripletRange(Float32Array.from(long), 1).k).toBe(12);
    const one = Array.from({ length: 40 }, (_, j) => (j < 1 ? 0 : 1 + j * 0.01));
    expect(tripletRange(Float32Array.from(one), 1).k).toBe(10);
    // Similarities (descending) are read the other way round.
    expect(tripletRange(Float32Array.from(rows[0]!.map((v) => -v)), 1, 'descending').relevantSet).toBe(4);
  });
});

describe('the contrastive positives from the teacher', () => {
  /** Rows of 60 ascending distances whose largest jump comes after `at` neighbours. */
  const jumpsAt = (ats: readonly number[]) => Float32Array.from(ats.flatMap((at) => Array.from({ length: 60 }, (_, j) => (j < at ? 0.1 + 0.001 * j : 0.6 + 0.001 * j))));

  it('are 0.8 × the median set size past near-duplicates (a jump after the first or second neighbour)', () => {
    // Four near-duplicates (jump after 1 or 2) and six sets of 10, 20, 20, 30, 30, 40: the median of
    // all ten is 10, of the six past position 2 it is 20, and 0.8 × 20 = 16.
    const r = tripletRange(jumpsAt([1, 2, 1, 2, 10, 20, 20, 30, 30, 40]), 10);
    expect(r.relevantSet).toBe(10);
    expect(r.positives).toBe(16);
    // Only near-duplicates: the relevant set stands in (at least 2).
    expect(tripletRange(jumpsAt([1, 2, 2]), 3).positives).toBe(2);
  });

  it('shrink with the items held out, whose places the training lists lose; the verdict reads as deep as they are', () => {
    const n = 100;
    const scores = jumpsAt(Array.from({ length: n }, () => 25));
    const neighbours = new Int32Array(n * 60);
    for (let i = 0; i < n; i++) for (let j = 0; j < 60; j++) neighbours[i * 60 + j] = (i + j + 1) % n;
    const ranking = { file: 'mem', neighbours, rows: n, length: 60, diffusion: null, scores, order: 'ascending' as const };
    const options = { ...TRAIN_DEFAULTS, loss: 'contrastive' as const, contrastive: { positives: 'auto' as const, temperature: 0.2 } };
    expect(trainingPlan(ranking, options, { holdOut: 0 }).options.contrastive.positives).toBe(20); // 0.8 × 25
    // 20 of 100 held out (the minimum): 20 × 0.8 = 16.
    const held = trainingPlan(ranking, options, { holdOut: 0.1 });
    expect(held.options.contrastive.positives).toBe(16);
    // The verdict reads the teacher's top 20, the positives on the whole ranking's scale (not the relevant set, 25).
    expect(held.depth).toBe(20);
    // A given number is kept as given, and is the verdict's depth.
    const given = trainingPlan(ranking, { ...options, contrastive: { positives: 7, temperature: 0.2 } }, { holdOut: 0.1 });
    expect([given.options.contrastive.positives, given.depth]).toEqual([7, 7]);
    // Triplets keep the relevant set as the depth.
    expect(trainingPlan(ranking, { ...TRAIN_DEFAULTS, triplets: { ...TRAIN_DEFAULTS.triplets, k: 'auto' } }, { holdOut: 0.1 }).depth).toBe(25);
  });
});

describe('held-out items', () => {
  it('are a seeded tenth (at least 20, at most a quarter), and training never sees them', () => {
    const a = holdOutItems(500, 3);
    expect(a.length).toBe(50);
    expect(holdOutItems(500, 3)).toEqual(a);
    expect(holdOutItems(500, 4)).not.toEqual(a);
    expect(holdOutItems(100, 0).length).toBe(20);
    expect(holdOutItems(40, 0).length).toBe(10);
    expect(holdOutItems(100, 0, 0).length).toBe(0);
    // A ranking of 60 items: every other item of the database, in order.
    const n = 60;
    const neighbours = new Int32Array(n * (n - 1));
    for (let i = 0; i < n; i++) neighbours.set(Array.from({ length: n }, (_, j) => j).filter((j) => j !== i), i * (n - 1));
    const out = holdOutItems(n, 1);
    const t = trainingRanking(neighbours, n, out);
    expect(t.anchors.length).toBe(n - out.length);
    expect(t.length).toBe(n - 1 - out.length);
    const o = { ...TRAIN_DEFAULTS, triplets: { ...TRAIN_DEFAULTS.triplets, k: t.length } };
    const { items } = epochExamples(t.neighbours, t.anchors.length, o, 0, t.anchors);
    const held = new Set(out);
    expect(items.some((i) => held.has(i))).toBe(false);
    expect(new Set(items).size).toBe(n - out.length);
  });
});

describe('agreement with the teacher', () => {
  it('is the average precision of the Euclidean ranking with the teacher top-m as relevant (hand-worked)', () => {
    // Five 1-d items; item 0 is held out; the teacher ranks 1, 3, 2, 4 for it.
    const x: Matrix = { rows: 5, cols: 1, data: Float32Array.from([0, 1, 2, 10, 11]) };
    const neighbours = new Int32Array(5 * 4);
    neighbours.set([1, 3, 2, 4], 0);
    for (let i = 1; i < 5; i++) neighbours.set([0, 1, 2, 3, 4].filter((j) => j !== i), i * 4);
    // Euclidean order for 0: 1, 2, 3, 4. Relevant {1, 3} at ranks 1 and 3: AP = (1/1 + 2/3) / 2.
    const a = teacherAgreement(x, Int32Array.from([0]), neighbours, 5, 2);
    expect(a.score).toBeCloseTo((1 + 2 / 3) / 2, 10);
    expect(teacherAgreement(x, Int32Array.from([0]), neighbours, 5, 1).score).toBe(1);
  });

  it('equals a brute-force count of the items ahead of each relevant item, with many tied distances', () => {
    const rand = rng(11);
    const [rows, cols, length] = [300, 3, 40];
    // Coordinates from {0, 1, 2}: a few distinct distances, so most comparisons are ties.
    const x: Matrix = { rows, cols, data: Float32Array.from({ length: rows * cols }, () => Math.floor(rand() * 3)) };
    const neighbours = new Int32Array(rows * length);
    for (let i = 0; i < rows; i++) for (let j = 0; j < length; j++) neighbours[i * length + j] = (i + 1 + j * 7) % rows;
    const heldOut = Int32Array.from([0, 5, 17, 123, 299]);
    const brute = (h: number, top: number): number => {
      const dist = Array.from({ length: rows }, (_, j) => (j === h ? Infinity : [0, 1, 2].reduce((s, c) => s + (x.data[h * cols + c]! - x.data[j * cols + c]!) ** 2, 0)));
      const ranks = Array.from(neighbours.subarray(h * length, h * length + top), (p) => dist.filter((dj, j) => dj < dist[p]! || (dj === dist[p] && j < p)).length);
      ranks.sort((a, b) => a - b);
      return ranks.reduce((s, r, i) => s + (i + 1) / (r + 1), 0) / top;
    };
    for (const top of [1, 7, 40]) {
      const a = teacherAgreement(x, heldOut, neighbours, rows, top);
      heldOut.forEach((h, q) => expect(a.perItem[q]).toBeCloseTo(brute(h, top), 12));
    }
  });

  it('is better only when the paired gain clears two standard errors', () => {
    const per = (v: number[]) => ({ score: v.reduce((s, x) => s + x, 0) / v.length, perItem: Float64Array.from(v) });
    const input = per([0.5, 0.5, 0.5, 0.5]);
    expect(significantlyBetter(per([0.6, 0.61, 0.59, 0.6]), input).better).toBe(true);
    expect(significantlyBetter(per([0.9, 0.1, 0.9, 0.3]), input).better).toBe(false); // gain 0.05, noise 0.2
    expect(significantlyBetter(per([0.4, 0.41, 0.39, 0.4]), input).better).toBe(false);
  });
});

/**
 * A collection whose truth is known: 60 objects of 4 views, the objects grouped 6 by 6 into
 * families. The truth places families apart, objects apart within a family, views close together.
 * The teacher ranks by the truth. `scatter` moves every object to a random place of its own (the
 * families lost, the objects kept); `viewNoise` blurs the views of one object into each other.
 */
function family(o: { seed: number; scatter?: boolean; viewNoise?: number; random?: boolean }): Matrix {
  const g = gaussian(rng(o.seed));
  const gt = gaussian(rng(1)); // the truth's own draws, the same in every representation
  const d = 16;
  const familyCentre = Array.from({ length: 10 }, () => Array.from({ length: d }, () => 3 * gt()));
  const objectOffset = Array.from({ length: 60 }, () => Array.from({ length: d }, () => gt()));
  const scattered = Array.from({ length: 60 }, () => Array.from({ length: d }, () => 3 * g()));
  const data = new Float32Array(240 * d);
  for (let i = 0; i < 240; i++) {
    const obj = Math.floor(i / 4);
    for (let j = 0; j < d; j++) {
      const centre = o.scatter ? scattered[obj]![j]! : familyCentre[Math.floor(obj / 6)]![j]!;
      data[i * d + j] = o.random ? g() : centre + objectOffset[obj]![j]! + (o.viewNoise ?? 0.05) * g();
    }
  }
  return { rows: 240, cols: d, data };
}

/** The exact self-ranking of `x` (each row's items by distance, itself left out), as a teacher. */
function exactRanking(x: Matrix): Int32Array {
  const n = x.rows;
  const out = new Int32Array(n * (n - 1));
  for (let i = 0; i < n; i++) {
    const dist = (j: number) => {
      let s = 0;
      for (let c = 0; c < x.cols; c++) s += (x.data[i * x.cols + c]! - x.data[j * x.cols + c]!) ** 2;
      return s;
    };
    const others = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i).map((j) => [dist(j), j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    out.set(others.map(([, j]) => j), i * (n - 1));
  }
  return out;
}

describe('the verdict', () => {
  const truth = family({ seed: 2 });
  const neighbours = exactRanking(truth);
  const plan = {
    heldOut: Int32Array.from({ length: 60 }, (_, i) => 4 * i + (i % 4)),
    ranking: { file: 'truth', neighbours, rows: 240, length: 239, diffusion: null, scores: null, order: 'ascending' },
    depth: 3,
  } as unknown as TrainingPlan;
  const input = family({ seed: 3, scatter: true });

  it('separates a better model from its input when both agree at the relevant set (the deeper list decides)', () => {
    const better = verdict(plan, family({ seed: 4 }), input)!;
    expect(better.gain).toBeLessThan(2 * better.standardError + 1e-9); // even at the relevant set: saturated
    expect(better.input).toBeGreaterThan(0.99);
    expect(better).toMatchObject({ better: true, by: 'deeper' });
    expect(better.deeper!.depth).toBe(24);
    expect(better.deeper!.gain).toBeGreaterThan(0.3);
  });

  it('refuses the input itself, a model that only moves around, and a harmful one', () => {
    expect(verdict(plan, family({ seed: 3, scatter: true }), input)).toMatchObject({ better: false, by: 'deeper' });
    expect(verdict(plan, family({ seed: 5, scatter: true }), input)!.better).toBe(false);
    expect(verdict(plan, family({ seed: 6, random: true }), input)).toMatchObject({ better: false, by: 'relevant set' });
  });

  it('a deeper gain never outweighs a loss at the relevant set', () => {
    // The families right but the views of each object blurred together with other objects'.
    const v = verdict(plan, family({ seed: 7, viewNoise: 1.5 }), input)!;
    expect(v.gain).toBeLessThan(-2 * v.standardError);
    expect(v).toMatchObject({ better: false, by: 'relevant set' });
  });
});

describe('the optimiser', () => {
  it('takes no weight decay on biases, batch norm and GeM p, and a lower rate on pretrained layers', async () => {
    await initBackend('wasm');
    const input = tf.input({ shape: [4, 4, 3] });
    let y = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'conv_pw_13' }).apply(input) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization({ name: 'conv_pw_13_bn' }).apply(y) as tf.SymbolicTensor;
    y = new GeM({ name: 'gem' }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.dense({ units: 2, name: 'whiten' }).apply(y) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: y });
    const names = model.trainableWeights.map((w) => w.originalName);
    const g = parameterGroups(model, 0.1);
    const by = Object.fromEntries(names.map((n, i) => [n, { decay: g.decay[i], lr: g.lrScale[i] }]));
    expect(by['conv_pw_13/kernel']).toEqual({ decay: true, lr: 0.1 });
    expect(by['conv_pw_13/bias']).toEqual({ decay: false, lr: 0.1 });
    expect(by['conv_pw_13_bn/gamma']).toEqual({ decay: false, lr: 0.1 });
    expect(by['conv_pw_13_bn/beta']).toEqual({ decay: false, lr: 0.1 });
    expect(by['gem/p']).toEqual({ decay: false, lr: 1 });
    expect(by['whiten/kernel']).toEqual({ decay: true, lr: 1 });
    expect(by['whiten/bias']).toEqual({ decay: false, lr: 1 });
    expect(parameterGroups(model).lrScale.every((s) => s === 1)).toBe(true);
    model.dispose();
  });

  it('watch: a rising loss, active-hinge share or gradient norm ends the run', () => {
    const e = (epoch: number, loss: number, active: number, gradNorm = 1): EpochRecord => ({ epoch, steps: 1, loss, active, lr: 0.1, seconds: 1, tripletsPerSecond: 1, gradNorm });
    expect(watchVerdict([e(0, 0.2, 0.9), e(1, 0.18, 0.88)])).toBeNull();
    expect(watchVerdict([e(0, 0.2, 0.9), e(1, 0.26, 0.9)])).toMatch(/loss rose/);
    expect(watchVerdict([e(0, 0.2, 0.9), e(1, 0.2, 0.96)])).toBeNull(); // the share alone wanders
    expect(watchVerdict([e(0, 0.2, 0.9), e(1, 0.23, 0.96)])).toMatch(/active hinges rose/);
    expect(watchVerdict([e(0, 0.2, 0.9), e(1, 0.2, 0.9, 11)])).toMatch(/gradient norm rose/);
    expect(watchVerdict([e(0, NaN, 0.9)])).toMatch(/diverged/);
  });
});

/** Labelled toy data: 4 classes written weakly in 4 dimensions and drowned in 20 noisy ones. */
function toy(seed: number, perClass: number): { x: Matrix; labels: Int32Array } {
  const g = gaussian(rng(seed));
  const rows = 4 * perClass;
  const dim = 24;
  const data = new Float32Array(rows * dim);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    labels[i] = i % 4;
    for (let j = 0; j < dim; j++) data[i * dim + j] = j < 4 ? (((i % 4) >> (j % 2)) & 1 ? 1 : -1) * (j < 2 ? 1 : 0) + 0.3 * g() : 1.5 * g();
  }
  return { x: { rows, cols: dim, data }, labels };
}

/** A self-ranking folder: `order(i)` lists item i's neighbours; distances from `distance(i, j)` (rank j). */
function writeRanking(dir: string, n: number, order: (i: number) => number[], distance: (i: number, j: number) => number): void {
  mkdirSync(dir, { recursive: true });
  const indices = new Int32Array(n * (n - 1));
  const scores = new Float32Array(n * (n - 1));
  for (let i = 0; i < n; i++) {
    indices.set(order(i), i * (n - 1));
    for (let j = 0; j < n - 1; j++) scores[i * (n - 1) + j] = distance(i, j);
  }
  writeNpy(join(dir, 'indices.npy'), { dtype: 'int32', shape: [n, n - 1], data: indices });
  writeNpy(join(dir, 'scores.npy'), { dtype: 'float32', shape: [n, n - 1], data: scores });
}

describe('bootstrap keeps what beats its input', () => {
  const db = toy(1, 40);
  const q = toy(2, 10);
  const files = (dir: string) => {
    writeNpy(join(dir, 'db.npy'), { dtype: 'float32', shape: [db.x.rows, db.x.cols], data: db.x.data });
    writeNpy(join(dir, 'q.npy'), { dtype: 'float32', shape: [q.x.rows, q.x.cols], data: q.x.data });
    writeFileSync(join(dir, 'l.txt'), Array.from(db.labels).join('\n') + '\n');
    writeFileSync(join(dir, 'ql.txt'), Array.from(q.labels).join('\n') + '\n');
  };
  const run = (dir: string, ranks: string, warnings: string[]) =>
    bootstrap({
      db: join(dir, 'db.npy'), queries: join(dir, 'q.npy'), labels: join(dir, 'l.txt'), queryLabels: join(dir, 'ql.txt'), out: join(dir, 'run'),
      ranks, iterations: 2, compare: true, params: { k1: 4, k2: 10, k3: 10, k4: 4, k5: 12 }, backend: 'wasm', engine: 'js',
      head: { dim: 8, hidden: 32 }, train: { batch: 32, lr: 0.2, epochs: 6, triplets: { k: 159, m0: 0.5 } },
      onStage: (_i, stage, message) => stage === 'result' && warnings.push(message),
    });

  it('a random teacher: the model is no better than the input, so the input is returned, with a warning', async () => {
    await withTempDir(async (dir) => {
      files(dir);
      const r = rng(9);
      const n = db.x.rows;
      const shuffled = (i: number) => {
        const list = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i);
        for (let a = list.length - 1; a > 0; a--) {
          const b = Math.floor(r() * (a + 1));
          [list[a], list[b]] = [list[b]!, list[a]!];
        }
        return list;
      };
      const noise = Array.from({ length: n }, () => Array.from({ length: n - 1 }, () => r()).sort((a, b) => a - b));
      writeRanking(join(dir, 'noise'), n, shuffled, (i, j) => noise[i]![j]!);
      const warnings: string[] = [];
      const m = await run(dir, join(dir, 'noise'), warnings);
      expect(m.iterations).toHaveLength(1); // no second iteration after a rejected one
      expect(m.iterations[0]!.kept).toBe(false);
      expect(m.result!.iteration).toBe(0);
      expect(Math.abs(resultFigure(m)! - mainFigure(m.baseline)!)).toBeLessThanOrEqual(0.5);
      expect(warnings.join('\n')).toMatch(/iteration 1's model agrees with its teacher on the 20 held-out items no better than its input .*keeping the input descriptors/);
      expect((m.iterations[0]!.selection as { verdict: { better: boolean } }).verdict.better).toBe(false);
    });
  }, 120_000);

  it('a teacher that knows the classes: the model beats the input and is kept', async () => {
    await withTempDir(async (dir) => {
      files(dir);
      const n = db.x.rows;
      const byClass = (i: number) => {
        const others = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i);
        return [...others.filter((j) => db.labels[j] === db.labels[i]), ...others.filter((j) => db.labels[j] !== db.labels[i])];
      };
      writeRanking(join(dir, 'oracle'), n, byClass, (_i, j) => (j < 39 ? 0.01 * j : 1 + 0.01 * j));
      const m = await run(dir, join(dir, 'oracle'), []);
      expect(m.iterations[0]!.kept).toBe(true);
      expect(m.result!.iteration).toBeGreaterThanOrEqual(1);
      expect(resultFigure(m)!).toBeGreaterThan(mainFigure(m.baseline)! + 10);
      const sel = m.iterations[0]!.selection as { agreementDepth: number; kChosen: string; curve: number[] };
      expect(sel.agreementDepth).toBe(20); // the scale the given k (159, the list's length) stands for: 159 / 8
      expect(sel.kChosen).toBe('given');
    });
  }, 120_000);
});

describe('fine-tuning a pretrained backbone', () => {
  it('a far too high learning rate is stopped and rolled back: the model returned is the pretrained one, not a collapsed one', async () => {
    await withTempDir(async (dir) => {
      await initBackend('wasm');
      const n = 16;
      const paths = await colourImages(join(dir, 'photos'), n);
      const byColour = (i: number) => {
        const others = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i);
        return [...others.filter((j) => j % 4 === i % 4), ...others.filter((j) => j % 4 !== i % 4)];
      };
      writeRanking(join(dir, 'teacher'), n, byColour, (_i, j) => (j < 3 ? 0.01 * j : 1 + 0.01 * j));
      const spec = { backbone: 'mobilenet_v1_0.75', size: 64 } as const;
      const r = await trainImages({
        images: join(dir, 'photos'), ...spec, freezeUntil: 'conv_pw_12_relu', ranks: join(dir, 'teacher'), out: join(dir, 'run'), backend: 'wasm',
        pretrainedLr: 1, selection: { holdOut: 0.25, patience: 1 },
        train: { lr: 1000, batch: 8, epochs: 4, batchNorm: 'frozen', triplets: { k: 15, m0: 0.5, perAnchor: 2 } },
      });
      const sel = r.selection as { best: { epoch: number }; stopped: string | null; heldOut: number };
      expect(sel.heldOut).toBe(4);
      expect(sel.best.epoch).toBe(-1);
      expect(sel.stopped).toMatch(/(diverged|runaway|early stop).*(rolled back to|kept) the starting weights/);
      // The returned network embeds the photos exactly as the pretrained one does.
      const loaded = await loadModelFolder(join(dir, 'run'));
      const trained = (await embedImageList(loaded, paths)).matrix;
      loaded.model.dispose();
      const pretrained = await buildImageModel({ ...spec, resize: 'longer', channels: 3, scale: SHIPPED_BACKBONES['mobilenet_v1_0.75']!.scale, whiten: null, seed: 0 });
      const folder = join(dir, 'pretrained');
      await saveModelFolder(pretrained, folder, { ...loaded.manifest, provenance: {} });
      pretrained.dispose();
      const again = await loadModelFolder(folder);
      const reference = (await embedImageList(again, paths)).matrix;
      again.model.dispose();
      let worst = 0;
      for (let i = 0; i < trained.data.length; i++) worst = Math.max(worst, Math.abs(trained.data[i]! - reference.data[i]!));
      expect(worst).toBeLessThan(1e-5);
    });
  }, 180_000);
});
