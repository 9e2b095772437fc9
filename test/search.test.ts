import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { denseEngine, jsEngine } from '../src/backend/dense.js';
import { NpyFile, writeNpy } from '../src/io/npy.js';
import { matrix, type Matrix } from '../src/matrix.js';
import { npySource } from '../src/backend/blockedTopK.js';
import { fullRanking } from '../src/eval/fullRanking.js';
import { exactSearch, type Metric } from '../src/search/exact.js';
import { mergeTopK, selectTopK } from '../src/backend/topk.js';
import { gaussian, rng, withTempDir } from './helpers.js';

function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const g = gaussian(rng(seed));
  return matrix(Float32Array.from({ length: rows * cols }, g), rows, cols);
}

/** Brute force in float64: distances and a full stable sort. */
function bruteForce(db: Matrix, q: Matrix, metric: Metric, k: number, skipSelf = false) {
  const norm = (m: Matrix, i: number) => Math.sqrt(m.data.subarray(i * m.cols, (i + 1) * m.cols).reduce((s, v) => s + v * v, 0));
  const out: { idx: number[]; dist: number[] }[] = [];
  for (let i = 0; i < q.rows; i++) {
    const dist: number[] = [];
    for (let j = 0; j < db.rows; j++) {
      let s = 0;
      if (metric === 'euclidean') {
        for (let l = 0; l < q.cols; l++) s += (q.data[i * q.cols + l]! - db.data[j * db.cols + l]!) ** 2;
        dist.push(Math.sqrt(s));
      } else {
        for (let l = 0; l < q.cols; l++) s += q.data[i * q.cols + l]! * db.data[j * db.cols + l]!;
        dist.push(1 - s / (norm(q, i) * norm(db, j)));
      }
    }
    const order = dist.map((_, j) => j).filter((j) => !(skipSelf && j === i)).sort((a, b) => dist[a]! - dist[b]! || a - b);
    out.push({ idx: order.slice(0, k), dist: order.slice(0, k).map((j) => dist[j]!) });
  }
  return out;
}

describe('top-k selection', () => {
  it('selects the k largest, ties to the lower index, matching a stable sort', () => {
    const r = rng(3);
    const values = Float32Array.from({ length: 500 }, () => Math.floor(r() * 50)); // many ties
    const vals = new Float32Array(20);
    const idx = new Int32Array(20);
    selectTopK(values, 20, vals, idx, 0, 1000);
    const expected = Array.from(values.keys()).sort((a, b) => values[b]! - values[a]! || a - b).slice(0, 20);
    expect(Array.from(idx)).toEqual(expected.map((i) => i + 1000));
    expect(Array.from(vals)).toEqual(expected.map((i) => values[i]!));
  });

  it('merges two best-first lists', () => {
    const ov = new Float32Array(4);
    const oi = new Int32Array(4);
    const n = mergeTopK(Float32Array.of(9, 5, 1), Int32Array.of(0, 1, 2), Float32Array.of(7, 5), Int32Array.of(10, 11), 4, ov, oi);
    expect(n).toBe(4);
    expect(Array.from(oi)).toEqual([0, 10, 1, 11]);
  });
});

describe('exact search agrees with brute force', async () => {
  const engines = [jsEngine.name, (await denseEngine()).name];
  const db = randomMatrix(700, 24, 1);
  const q = randomMatrix(37, 24, 2);
  for (const engine of new Set(engines)) {
    for (const metric of ['euclidean', 'cosine'] as const) {
      it(`${engine}, ${metric}, blocked and unblocked`, async () => {
        const expected = bruteForce(db, q, metric, 15);
        for (const blockElements of [undefined, 37 * 64]) {
          const res = await exactSearch(db, q, { k: 15, metric, engine: engine as 'js' | 'onnxruntime', blockElements });
          expect(res.engine).toBe(engine);
          for (let i = 0; i < q.rows; i++) {
            expect(Array.from(res.indices.subarray(i * 15, (i + 1) * 15))).toEqual(expected[i]!.idx);
            res.distances.subarray(i * 15, (i + 1) * 15).forEach((d, j) => expect(d).toBeCloseTo(expected[i]!.dist[j]!, 4));
          }
        }
      });
    }
  }

  it('self-search with --exclude-self leaves each item out of its own list', async () => {
    const expected = bruteForce(db, db, 'euclidean', 5, true);
    const res = await exactSearch(db, null, { k: 5, metric: 'euclidean', excludeSelf: true });
    for (let i = 0; i < db.rows; i++) expect(Array.from(res.indices.subarray(i * 5, (i + 1) * 5))).toEqual(expected[i]!.idx);
  });

  it('streams the database from a .npy file in blocks', async () => {
    await withTempDir(async (dir) => {
      writeNpy(join(dir, 'db.npy'), { dtype: 'float32', shape: [db.rows, db.cols], data: db.data });
      const file = NpyFile.open(join(dir, 'db.npy'));
      const blocks: number[] = [];
      const res = await exactSearch(npySource(file), q, { k: 10, metric: 'cosine', blockElements: 37 * 100, onProgress: (d) => blocks.push(d) });
      file.close();
      expect(blocks).toEqual([100, 200, 300, 400, 500, 600, 700]);
      const expected = bruteForce(db, q, 'cosine', 10);
      for (let i = 0; i < q.rows; i++) expect(Array.from(res.indices.subarray(i * 10, (i + 1) * 10))).toEqual(expected[i]!.idx);
    });
  });

  it('full rankings agree with brute force', async () => {
    const r = await fullRanking(db, q, 'euclidean');
    const expected = bruteForce(db, q, 'euclidean', db.rows);
    for (let i = 0; i < q.rows; i++) expect(Array.from(r.indices.subarray(i * db.rows, i * db.rows + 50))).toEqual(expected[i]!.idx.slice(0, 50));
  });
});

describe('search input errors', () => {
  const db = randomMatrix(10, 4, 5);
  it('k larger than the database', async () => {
    await expect(exactSearch(db, db, { k: 11 })).rejects.toThrow(/k = 11 is larger than the 10 database items/);
    await expect(exactSearch(db, null, { k: 10, excludeSelf: true })).rejects.toThrow(/k = 10 is larger than the 9/);
  });
  it('dimension mismatch', async () => {
    await expect(exactSearch(db, randomMatrix(2, 5, 6), { k: 3 })).rejects.toThrow(/queries have 5 dimensions but database has 4/);
  });
  it('NaN rows and zero vectors under cosine', async () => {
    const bad = matrix(db.data.slice(), 10, 4);
    bad.data[9] = NaN;
    await expect(exactSearch(bad, null, { k: 3 })).rejects.toThrow(/row 2 contains NaN/);
    const zero = matrix(db.data.slice(), 10, 4);
    zero.data.fill(0, 12, 16);
    await expect(exactSearch(zero, null, { k: 3, metric: 'cosine' })).rejects.toThrow(/row 3 is a zero vector/);
    await expect(exactSearch(zero, null, { k: 3, metric: 'euclidean' })).resolves.toBeDefined();
  });
});
