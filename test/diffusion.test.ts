import { describe, expect, it } from 'vitest';
import { cas, CAS_DEFAULTS, CAS_SMALL_PRESET, type CasParams } from '../src/diffusion/cas.js';
import { diffuse } from '../src/diffusion/index.js';
import { classMap } from '../src/eval/classLevel.js';
import { ranking } from '../src/eval/ranking.js';
import { fullRanking } from '../src/eval/fullRanking.js';
import { matrix, type Matrix } from '../src/matrix.js';
import { casReferenceDistances, casReferenceGraph } from './casReference.js';
import { lcdp, LCDP_DEFAULTS } from '../src/diffusion/lcdp.js';
import { iscen, ISCEN_DEFAULTS } from '../src/diffusion/iscen.js';
import { readMatrix } from '../src/matrix.js';
import { loadRevisitedGroundTruth } from '../src/io/groundTruth.js';
import { revisitedMap } from '../src/eval/revisited.js';
import { join } from 'node:path';
import { gaussian, HAS_SHARED, rng, SHARED } from './helpers.js';

/** Clustered data: `clusters` Gaussian blobs in d dimensions. */
function blobs(n: number, d: number, clusters: number, seed: number): Matrix {
  const g = gaussian(rng(seed));
  const centres = Array.from({ length: clusters }, () => Array.from({ length: d }, () => g() * 2));
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = centres[i % clusters]![j]! + g();
  return matrix(data, n, d);
}
const rowsOf = (m: Matrix) => Array.from({ length: m.rows }, (_, i) => Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));

describe('CAS agrees with a dense, literal implementation of docs/algorithms.md §1', () => {
  const db = blobs(270, 12, 6, 11);
  const q = blobs(20, 12, 6, 12);
  const cases: [string, Partial<CasParams>][] = [
    ['default preset, geodesic', {}],
    ['default preset, no geodesic', { geodesic: false }],
    ['small preset, geodesic', { ...CAS_SMALL_PRESET }],
    ['small preset, no geodesic', { ...CAS_SMALL_PRESET, geodesic: false }],
  ];
  it.each(cases)('%s: final distances within 1e-5 relative', async (_name, params) => {
    const p = { ...CAS_DEFAULTS, ...params };
    const expected = casReferenceDistances(rowsOf(q), rowsOf(db), p);
    const res = await cas(db, q, params, { topK: db.rows });
    let worst = 0;
    for (let r = 0; r < q.rows; r++) {
      for (let t = 0; t < res.k; t++) {
        const j = res.indices[r * res.k + t]!;
        const want = expected[r]![j]!;
        worst = Math.max(worst, Math.abs(res.scores[r * res.k + t]! - want) / Math.abs(want));
      }
      // Every database item appears once per row.
      expect(new Set(res.indices.subarray(r * res.k, (r + 1) * res.k)).size).toBe(db.rows);
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it.each([false, true])('truncated mode with rows as long as n equals dense mode (geodesic %s)', async (geodesic) => {
    const n = db.rows + q.rows;
    const dense = await cas(db, q, { geodesic }, { topK: 50 });
    const truncated = await cas(db, q, { geodesic, denseLimit: 10, truncate: n, searchLimit: n }, { topK: 50 });
    expect(Array.from(truncated.indices)).toEqual(Array.from(dense.indices));
    truncated.scores.forEach((s, i) => expect(s).toBeCloseTo(dense.scores[i]!, 6));
  });

  it('converged diffusion equals the fixed point reached by many plain steps', async () => {
    const small = blobs(90, 6, 3, 41);
    const qs = blobs(6, 6, 3, 42);
    const p = { ...CAS_DEFAULTS, ...CAS_SMALL_PRESET, geodesic: false };
    // α = 1/1.23: 150 steps leave an error of about α^150 ≈ 1e-14.
    const expected = casReferenceDistances(rowsOf(qs), rowsOf(small), { ...p, iterations: 150 });
    const res = await cas(small, qs, { ...CAS_SMALL_PRESET, geodesic: false, converged: true }, { topK: small.rows });
    const tenSteps = await cas(small, qs, { ...CAS_SMALL_PRESET, geodesic: false }, { topK: small.rows });
    let worst = 0;
    let differs = 0;
    for (let r = 0; r < qs.rows; r++) {
      for (let t = 0; t < res.k; t++) {
        const want = expected[r]![res.indices[r * res.k + t]!]!;
        worst = Math.max(worst, Math.abs(res.scores[r * res.k + t]! - want) / want);
        differs = Math.max(differs, Math.abs(tenSteps.scores[r * res.k + t]! - res.scores[r * res.k + t]!));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    expect(differs).toBeGreaterThan(1e-4); // ten steps are not converged: the option changes something
  });

  it('self-ranking equals the reference graph over the database: each row sorted, the item left out', async () => {
    const small = blobs(90, 6, 3, 43);
    const res = await cas(small, null, { ...CAS_SMALL_PRESET }, { topK: 30 });
    expect(res.mode).toBe('self');
    expect(res.rows).toBe(small.rows);
    const full = casReferenceGraph(rowsOf(small), { ...CAS_DEFAULTS, ...CAS_SMALL_PRESET });
    let worst = 0;
    for (let i = 0; i < small.rows; i++) {
      const expected = full[i]!.map((d, j) => [d, j] as const).filter(([, j]) => j !== i).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, 30);
      const row = Array.from(res.indices.subarray(i * 30, (i + 1) * 30));
      expect(row).not.toContain(i);
      // The same distances in the same order (ties, if any, may swap neighbours of equal distance).
      expected.forEach(([d], t) => (worst = Math.max(worst, Math.abs(res.scores[i * 30 + t]! - d) / Math.max(d, 1e-12))));
      expect(row.filter((j, t) => j === expected[t]![1]).length).toBeGreaterThanOrEqual(29);
    }
    expect(worst).toBeLessThan(1e-5);
  });
});

/** Two interleaved half circles in 2-D (label = moon). */
function moons(nPer: number, seed: number, noise = 0.08) {
  const r = rng(seed);
  const g = gaussian(r);
  const data = new Float32Array(nPer * 4);
  const labels = new Int32Array(nPer * 2);
  for (let i = 0; i < nPer * 2; i++) {
    const m = i % 2;
    const t = Math.PI * r();
    data[2 * i] = (m === 0 ? Math.cos(t) : 1 - Math.cos(t)) + noise * g();
    data[2 * i + 1] = (m === 0 ? Math.sin(t) : 0.5 - Math.sin(t)) + noise * g();
    labels[i] = m;
  }
  return { m: matrix(data, nPer * 2, 2), labels };
}

/** A Swiss roll in 3-D; the label is one of four segments along the roll. */
function swissRoll(n: number, seed: number) {
  const r = rng(seed);
  const g = gaussian(r);
  const data = new Float32Array(n * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const t = 1.5 * Math.PI * (1 + 2 * r());
    data[3 * i] = t * Math.cos(t) + 0.3 * g();
    data[3 * i + 1] = 10 * r();
    data[3 * i + 2] = t * Math.sin(t) + 0.3 * g();
    labels[i] = Math.floor((t / Math.PI - 1.5) / 0.75);
  }
  return { m: matrix(data, n, 3), labels };
}

describe('manifolds: diffusion ranks same-manifold neighbours better than Euclidean distance', () => {
  // Raw coordinates (normalize: false): L2-normalising 2-D points would fold the moons.
  const sets = [
    ['two moons (600 points, 40 queries)', moons(300, 1), moons(20, 2)],
    ['Swiss roll (800 points, 40 queries)', swissRoll(800, 3), swissRoll(40, 4)],
  ] as const;
  it.each(sets)('%s', async (name, db, q) => {
    const euclidean = classMap(await fullRanking(db.m, q.m, 'euclidean'), q.labels, db.labels).mAP;
    const mAP: Record<string, number> = { euclidean };
    for (const method of ['cas', 'lcdp'] as const) {
      const res = await diffuse(method, db.m, q.m, {}, { topK: db.m.rows, normalize: false });
      mAP[method] = classMap(ranking(res.indices, res.rows, db.m.rows), q.labels, db.labels).mAP;
    }
    console.log(`${name}: class mAP ${Object.entries(mAP).map(([k, v]) => `${k} ${(v * 100).toFixed(2)}`).join(', ')}`);
    // Measured (BENCHMARKS.md): moons euclidean 80.52, CAS 98.65, LCDP 90.13; roll 68.91, 85.92, 85.46.
    expect(mAP.cas!).toBeGreaterThan(euclidean + 0.05);
    expect(mAP.lcdp!).toBeGreaterThan(euclidean + 0.05);
  });
});

describe('LCDP and Iscen agree with literal dense versions', () => {
  const db = blobs(150, 6, 5, 21);
  const q = blobs(10, 6, 5, 22);
  const unit = (r: number[]) => {
    const s = Math.sqrt(r.reduce((a, b) => a + b * b, 0));
    return r.map((v) => v / s);
  };
  const X = [...rowsOf(q), ...rowsOf(db)].map(unit);
  const n = X.length;
  const sq = (a: number[], b: number[]) => a.reduce((s, v, l) => s + (v - b[l]!) ** 2, 0);
  const order = (row: number[], self: number) => row.map((_, j) => j).sort((a, b) => (a === self ? -1 : b === self ? 1 : row[a]! - row[b]! || a - b));

  it('LCDP: Q ← P_kNN·Q·P_kNNᵀ from Q = P, k = 10, ranked by Q', async () => {
    const p = { ...LCDP_DEFAULTS, iterations: 4, stableTop: 0 };
    const D = X.map((a) => X.map((b) => sq(a, b)));
    const ranks = D.map((row, i) => order(row, i));
    const sigma = ranks.reduce((s, r, i) => s + Math.sqrt(D[i]![r[p.k]!]!), 0) / n;
    const A = D.map((row) => row.map((d) => Math.exp(-d / (sigma * sigma))));
    let Q = A.map((row) => row.map((v) => v / row.reduce((a, b) => a + b, 0)));
    const Pk = A.map((row, i) => {
      const keep = new Set(ranks[i]!.slice(0, p.k));
      const s = ranks[i]!.slice(0, p.k).reduce((a, j) => a + row[j]!, 0);
      return row.map((v, j) => (keep.has(j) ? v / s : 0));
    });
    const mul = (A1: number[][], B: number[][]) => A1.map((r) => B[0]!.map((_, j) => r.reduce((s, v, l) => s + v * B[l]![j]!, 0)));
    const PkT = Pk[0]!.map((_, j) => Pk.map((r) => r[j]!));
    for (let t = 0; t < p.iterations; t++) Q = mul(mul(Pk, Q), PkT);
    const res = await lcdp(db, q, p, { topK: 20 });
    for (let r = 0; r < q.rows; r++) {
      const row = Q[r]!.slice(q.rows);
      const want = row.map((_, j) => j).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, 20);
      expect(Array.from(res.indices.subarray(r * 20, (r + 1) * 20))).toEqual(want);
      want.forEach((j, t) => expect(res.scores[r * 20 + t]! / row[j]!).toBeCloseTo(1, 5));
    }
  });

  it('LCDP truncated mode with rows as long as n equals dense mode (both from P_kNN)', async () => {
    const p = { startFromP: false, stableTop: 0, iterations: 3 };
    const dense = await lcdp(db, q, p, { topK: 30 });
    const truncated = await lcdp(db, q, { ...p, denseLimit: 1, truncate: db.rows + q.rows }, { topK: 30 });
    expect(Array.from(truncated.indices)).toEqual(Array.from(dense.indices));
    truncated.scores.forEach((s, i) => expect(s / dense.scores[i]!).toBeCloseTo(1, 6));
  });

  it('Iscen: (I − αS)f = y solved by Gaussian elimination ranks the database the same way', async () => {
    const p = { ...ISCEN_DEFAULTS, k: 15, kq: 5, iterations: 200, tolerance: 1e-12 };
    const B = X.slice(q.rows);
    const m = B.length;
    const D = B.map((a) => B.map((b) => sq(a, b)));
    const knn = D.map((row, i) => new Set(order(row, i).slice(1, p.k + 1)));
    const w = (d2: number) => Math.max(0, 1 - d2 / 2) ** 3;
    const A = D.map((row, i) => row.map((d, j) => (knn[i]!.has(j) && knn[j]!.has(i) ? w(d) : 0)));
    const deg = A.map((r) => r.reduce((a, b) => a + b, 0));
    const M = A.map((row, i) => row.map((v, j) => (i === j ? 1 : 0) - (p.alpha * v) / Math.sqrt(deg[i]! * deg[j]! || 1)));
    const res = await iscen(db, q, p, { topK: 10 });
    for (let r = 0; r < q.rows; r++) {
      const dq = B.map((b) => sq(X[r]!, b));
      const seeds = order(dq, -1).slice(0, p.kq);
      const y = new Array<number>(m).fill(0);
      for (const j of seeds) y[j] = w(dq[j]!);
      // Gaussian elimination with partial pivoting on [M | y].
      const aug = M.map((row, i) => [...row, y[i]!]);
      for (let c = 0; c < m; c++) {
        let piv = c;
        for (let i = c + 1; i < m; i++) if (Math.abs(aug[i]![c]!) > Math.abs(aug[piv]![c]!)) piv = i;
        [aug[c], aug[piv]] = [aug[piv]!, aug[c]!];
        for (let i = c + 1; i < m; i++) {
          const f = aug[i]![c]! / aug[c]![c]!;
          for (let j = c; j <= m; j++) aug[i]![j]! -= f * aug[c]![j]!;
        }
      }
      const f = new Array<number>(m).fill(0);
      for (let i = m - 1; i >= 0; i--) {
        let s = aug[i]![m]!;
        for (let j = i + 1; j < m; j++) s -= aug[i]![j]! * f[j]!;
        f[i] = s / aug[i]![i]!;
      }
      const want = f.map((_, j) => j).sort((a, b) => f[b]! - f[a]! || a - b).slice(0, 10);
      expect(Array.from(res.indices.subarray(r * 10, (r + 1) * 10))).toEqual(want);
    }
  });
});

describe('diffusion input checks', () => {
  const db = blobs(60, 8, 3, 31);
  it('k parameters larger than the data: a clear error that names the fix', async () => {
    await expect(cas(db, null)).rejects.toThrow(/needs 70 neighbours per item but there are only 60 items; use the small preset/);
    await expect(lcdp(blobs(8, 4, 2, 1), null)).rejects.toThrow(/k = 10 needs more than 10 items/);
    await expect(iscen(blobs(45, 8, 3, 32), null)).rejects.toThrow(/k = 50 needs more than 50 database items/);
  });
  it('NaN rows, zero vectors and query dimensions', async () => {
    const nan = matrix(db.data.slice(), 60, 8);
    nan.data[8 * 7 + 1] = NaN;
    await expect(cas(nan, null, { ...CAS_SMALL_PRESET, geodesic: false })).rejects.toThrow(/database: row 7 contains NaN/);
    const zero = matrix(db.data.slice(), 60, 8);
    zero.data.fill(0, 8 * 3, 8 * 4);
    await expect(cas(zero, null, { ...CAS_SMALL_PRESET, geodesic: false })).rejects.toThrow(/database row 3 is a zero vector/);
    await expect(cas(db, blobs(3, 5, 1, 2), CAS_SMALL_PRESET)).rejects.toThrow(/queries have 5 dimensions but the database has 8/);
  });
  it('duplicate vectors are legal: the two copies get mirrored lists, and CAS ranks the copy first', async () => {
    const dup = matrix(new Float32Array(61 * 8), 61, 8);
    dup.data.set(db.data);
    dup.data.set(db.data.subarray(5 * 8, 6 * 8), 60 * 8); // item 60 duplicates item 5
    for (const method of ['cas', 'lcdp'] as const) {
      const res = await diffuse(method, dup, null, method === 'cas' ? { ...CAS_SMALL_PRESET } : {}, { topK: 5 });
      const list = (i: number) => Array.from(res.indices.subarray(i * 5, (i + 1) * 5));
      expect(list(60)).toEqual(list(5).map((j) => (j === 60 ? 5 : j)));
      if (method === 'cas') expect(list(5)[0]).toBe(60);
    }
  });
});

describe.skipIf(!HAS_SHARED)('revisited Oxford, CaffeNet/PCA-128 descriptors (shared data)', () => {
  const dir = join(SHARED, 'data', 'roxford5k');
  const load = () => ({
    db: readMatrix(join(dir, 'lopq-caffenet-pca128.db.npy')),
    q: readMatrix(join(dir, 'lopq-caffenet-pca128.query.npy')),
    gt: loadRevisitedGroundTruth(join(dir, 'gnd_roxford5k.pkl')),
  });
  // Figures of an independent implementation of the reference semantics (±0.1).
  it.each([
    ['with geodesic refinement', true, [35.99, 26.86, 9.03]],
    ['without geodesic refinement', false, [35.11, 26.07, 8.35]],
  ] as const)('CAS %s', async (_name, geodesic, want) => {
    const { db, q, gt } = load();
    const res = await cas(db, q, { geodesic }, { topK: db.rows });
    const r = revisitedMap(ranking(res.indices, res.rows, db.rows), gt);
    const got = [r.easy.mAP, r.medium.mAP, r.hard.mAP].map((x) => x * 100);
    got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(0.1));
  });
});

describe('LCDP truncated mode', () => {
  it('starts from P as the dense mode does (startFromP), so with rows long enough to hold everything the two agree', async () => {
    const db = blobs(150, 6, 5, 31);
    const q = blobs(10, 6, 5, 32);
    const dense = await lcdp(db, q, { iterations: 3, stableTop: 0 }, { topK: 20 });
    const truncated = await lcdp(db, q, { iterations: 3, stableTop: 0, denseLimit: 10, truncate: 160 }, { topK: 20 });
    const fromPknn = await lcdp(db, q, { iterations: 3, stableTop: 0, denseLimit: 10, truncate: 160, startFromP: false }, { topK: 20 });
    expect(dense.info?.dense).toBe(true);
    expect(truncated.info?.dense).toBe(false);
    expect(truncated.info?.start).toBe("P truncated to each row's 160 nearest");
    expect(fromPknn.info?.start).toBe('P_kNN');
    let worst = 0;
    for (let i = 0; i < dense.scores.length; i++) worst = Math.max(worst, Math.abs(truncated.scores[i]! - dense.scores[i]!) / dense.scores[i]!);
    expect(worst).toBeLessThan(1e-4);
    expect(Array.from(truncated.indices)).toEqual(Array.from(dense.indices));
    expect(Array.from(fromPknn.indices)).not.toEqual(Array.from(dense.indices));
  });
});

describe('truncated lists are completed by base distance, not by file order', () => {
  /** db with its rows in the order `perm` (row t of the copy is row perm[t] of db). */
  const permuted = (m: Matrix, perm: number[]) => {
    const out = new Float32Array(m.data.length);
    perm.forEach((src, t) => out.set(m.data.subarray(src * m.cols, (src + 1) * m.cols), t * m.cols));
    return matrix(out, m.rows, m.cols);
  };
  const reversed = (n: number) => Array.from({ length: n }, (_, t) => n - 1 - t);
  const sqTo = (a: Matrix, r: number, b: Matrix, j: number) => {
    let s = 0;
    for (let l = 0; l < a.cols; l++) s += (a.data[r * a.cols + l]! - b.data[j * b.cols + l]!) ** 2;
    return s;
  };
  const unit = (m: Matrix) => {
    const out = new Float32Array(m.data);
    for (let i = 0; i < m.rows; i++) {
      let s = 0;
      for (let l = 0; l < m.cols; l++) s += out[i * m.cols + l]! ** 2;
      for (let l = 0; l < m.cols; l++) out[i * m.cols + l]! /= Math.sqrt(s);
    }
    return matrix(out, m.rows, m.cols);
  };

  it('LCDP with rows too short for the list: the unreached tail is nearest first, and a reversed file ranks the same items', async () => {
    const db = blobs(120, 6, 4, 41);
    const q = blobs(6, 6, 4, 42);
    const p = { iterations: 2, stableTop: 0, denseLimit: 10, truncate: 12, startFromP: false, k: 4 };
    const topK = 80;
    const a = await lcdp(db, q, p, { topK });
    const perm = reversed(db.rows);
    const b = await lcdp(permuted(db, perm), q, p, { topK });
    expect(a.info?.ties).toBe('base distance');
    const [U, Q] = [unit(db), unit(q)];
    for (let r = 0; r < q.rows; r++) {
      const rowA = Array.from(a.indices.subarray(r * topK, (r + 1) * topK));
      const rowB = Array.from(b.indices.subarray(r * topK, (r + 1) * topK)).map((t) => perm[t]!);
      expect(rowB).toEqual(rowA);
      const tailStart = Array.from(a.scores.subarray(r * topK, (r + 1) * topK)).findIndex((s) => s === -Infinity);
      expect(tailStart).toBeGreaterThan(0);
      const tail = rowA.slice(tailStart);
      const nearestFirst = [...tail].sort((x, y) => sqTo(Q, r, U, x) - sqTo(Q, r, U, y));
      expect(tail).toEqual(nearestFirst);
    }
  });

  it('Iscen on two unconnected clusters: the far cluster (f = 0) follows in base-distance order, whatever the file order', async () => {
    const near = blobs(60, 5, 1, 43);
    const far = blobs(60, 5, 1, 44);
    const data = new Float32Array(120 * 5);
    data.set(near.data);
    for (let i = 0; i < far.data.length; i++) data[near.data.length + i] = far.data[i]! + (i % 5 === 0 ? 40 : -40);
    const db = matrix(data, 120, 5);
    const q = matrix(near.data.slice(0, 5 * 3).map((v) => v + 0.01), 3, 5);
    const p = { k: 8, kq: 4 };
    const a = await iscen(db, q, p, { topK: 120 });
    const perm = reversed(120);
    const b = await iscen(permuted(db, perm), q, p, { topK: 120 });
    const [U, Q] = [unit(db), unit(q)];
    for (let r = 0; r < q.rows; r++) {
      const rowA = Array.from(a.indices.subarray(r * 120, (r + 1) * 120));
      expect(Array.from(b.indices.subarray(r * 120, (r + 1) * 120)).map((t) => perm[t]!)).toEqual(rowA);
      const zeroFrom = Array.from(a.scores.subarray(r * 120, (r + 1) * 120)).findIndex((s) => s === 0);
      expect(zeroFrom).toBeGreaterThan(0);
      const tail = rowA.slice(zeroFrom);
      expect(tail).toEqual([...tail].sort((x, y) => sqTo(Q, r, U, x) - sqTo(Q, r, U, y)));
    }
  });
});
