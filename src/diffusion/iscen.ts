/**
 * Diffusion of Iscen et al. (CVPR 2017), a well-known baseline (docs/algorithms.md §3): a mutual kNN
 * graph of the database with weights s³, S = D^{-½}AD^{-½}, and for each query the solution of
 * (I − αS)f = y by conjugate gradient, y = s³ on the query's nearest database items.
 */
import { UserError } from '../errors.js';
import { neighbourGraph } from '../graph/knn.js';
import { rowsFromLists, type SparseRows } from '../graph/sparse.js';
import type { Matrix } from '../matrix.js';
import { blockedTopK, matrixSource } from '../backend/blockedTopK.js';
import { baseDistance, DEFAULT_TOP_K, keepBest, prepareNodes, StageTimer, type DiffusionResult, type DiffusionRunOptions } from './common.js';

export interface IscenParams {
  /** Neighbours of the mutual kNN graph. */
  readonly k: number;
  /** Database neighbours of the query that seed y. */
  readonly kq: number;
  /** Exponent of the similarity weights. */
  readonly gamma: number;
  readonly alpha: number;
  readonly iterations: number;
  readonly tolerance: number;
}

export const ISCEN_DEFAULTS: IscenParams = Object.freeze({ k: 50, kq: 10, gamma: 3, alpha: 0.99, iterations: 20, tolerance: 1e-6 });

/** y = S·x for symmetric sparse S. */
function multiply(S: SparseRows, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < S.rows; i++) {
    let v = 0;
    for (let q = S.indptr[i]!; q < S.indptr[i + 1]!; q++) v += S.values[q]! * x[S.indices[q]!]!;
    y[i] = v;
  }
}

/** Conjugate gradient for (I − αS) f = y. */
function solve(S: SparseRows, alpha: number, y: Float64Array, iterations: number, tol: number): Float64Array {
  const n = y.length;
  const f = new Float64Array(n);
  const r = Float64Array.from(y);
  const d = Float64Array.from(y);
  const Sd = new Float64Array(n);
  let rr = 0;
  for (let i = 0; i < n; i++) rr += r[i]! * r[i]!;
  const stop = tol * tol * rr;
  for (let t = 0; t < iterations && rr > stop; t++) {
    multiply(S, d, Sd);
    let dAd = 0;
    for (let i = 0; i < n; i++) {
      Sd[i] = d[i]! - alpha * Sd[i]!;
      dAd += d[i]! * Sd[i]!;
    }
    const step = rr / dAd;
    let rrNew = 0;
    for (let i = 0; i < n; i++) {
      f[i]! += step * d[i]!;
      r[i]! -= step * Sd[i]!;
      rrNew += r[i]! * r[i]!;
    }
    const beta = rrNew / rr;
    for (let i = 0; i < n; i++) d[i] = r[i]! + beta * d[i]!;
    rr = rrNew;
  }
  return f;
}

/** Iscen et al. diffusion: query re-ranking, or self-ranking when queries is null (scores: f). */
export async function iscen(db: Matrix, queries: Matrix | null, params: Partial<IscenParams> = {}, opts: DiffusionRunOptions = {}): Promise<DiffusionResult> {
  const p: IscenParams = { ...ISCEN_DEFAULTS, ...params };
  const timer = new StageTimer();
  const { x, nq, ndb } = prepareNodes(db, queries, opts.normalize ?? true);
  if (p.k + 1 > ndb) throw new UserError(`Iscen diffusion with k = ${p.k} needs more than ${p.k} database items; there are ${ndb}`);
  if (p.kq > ndb) throw new UserError(`Iscen diffusion with kq = ${p.kq} needs at least ${p.kq} database items`);
  const self = queries === null;
  const k = Math.min(opts.topK ?? DEFAULT_TOP_K, self ? ndb - 1 : ndb);
  const dbx: Matrix = { rows: ndb, cols: x.cols, data: x.data.subarray(nq * x.cols) };
  const graph = await neighbourGraph(dbx, p.k + 1, { engine: opts.engine });
  timer.lap('neighbour graph');
  // Mutual kNN (self excluded), weight max(0, cos)^γ; cos = 1 − ‖a − b‖²/2 on unit vectors.
  const L = graph.L;
  const weight = (d2: number) => Math.max(0, 1 - d2 / 2) ** p.gamma;
  const isNeighbour = (a: number, b: number) => {
    for (let r = 1; r < L; r++) if (graph.indices[a * L + r] === b) return true;
    return false;
  };
  const A = rowsFromLists(ndb, (i, push) => {
    const pairs: [number, number][] = [];
    for (let r = 1; r < L; r++) {
      const j = graph.indices[i * L + r]!;
      if (isNeighbour(j, i)) pairs.push([j, weight(graph.sqDist[i * L + r]!)]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    for (const [j, w] of pairs) push(j, w);
  });
  const deg = new Float64Array(ndb);
  for (let i = 0; i < ndb; i++) for (let q = A.indptr[i]!; q < A.indptr[i + 1]!; q++) deg[i]! += A.values[q]!;
  const S: SparseRows = { ...A, values: new Float64Array(A.values.length) };
  for (let i = 0; i < ndb; i++) {
    for (let q = A.indptr[i]!; q < A.indptr[i + 1]!; q++) {
      const dd = deg[i]! * deg[A.indices[q]!]!;
      S.values[q] = dd > 0 ? A.values[q]! / Math.sqrt(dd) : 0;
    }
  }
  timer.lap('graph');
  // Seeds: each row's kq nearest database items.
  const seedsFrom: Matrix = self ? dbx : { rows: nq, cols: x.cols, data: x.data.subarray(0, nq * x.cols) };
  const seeds = await blockedTopK(seedsFrom, matrixSource(dbx), p.kq, { engine: opts.engine });
  const rows = seedsFrom.rows;
  const out = { indices: new Int32Array(rows * k), scores: new Float32Array(rows * k) };
  const y = new Float64Array(ndb);
  for (let r = 0; r < rows; r++) {
    y.fill(0);
    for (let t = 0; t < p.kq; t++) {
      const j = seeds.indices[r * p.kq + t]!;
      y[j] = weight(Math.max(0, seeds.queryNorms[r]! - seeds.values[r * p.kq + t]!));
    }
    const f = solve(S, p.alpha, y, p.iterations, p.tolerance);
    keepBest(f, k, out, r, 'descending', self ? r : -1, baseDistance(x, nq, self ? nq + r : r));
    opts.onProgress?.('conjugate gradient', r + 1, rows);
  }
  timer.lap('conjugate gradient');
  return { mode: self ? 'self' : 'query', rows, k, ...out, order: 'descending', timings: timer.timings, info: { ties: 'base distance' } };
}
