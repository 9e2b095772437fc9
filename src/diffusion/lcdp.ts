/**
 * LCDP — locally constrained diffusion (Yang, Koknar-Tezel, Latecki, CVPR 2009), as framed by
 * Donoser & Bischof (CVPR 2013): Q ← P_kNN · Q · P_kNNᵀ, ranking by rows of Q (docs/algorithms.md §2).
 * Dense Q while n ≤ denseLimit; above that Q keeps its `truncate` largest entries per row.
 */
import { UserError } from '../errors.js';
import { neighbourGraph, type NeighbourGraph } from '../graph/knn.js';
import { rowsFromLists, sparseProduct, transpose, type SparseRows } from '../graph/sparse.js';
import type { Matrix } from '../matrix.js';
import { balancedBounds, runRanges, sharedFloat64, sharer, threads } from '../backend/parallel.js';
import { SPARSE_KERNELS } from '../graph/sparseKernels.js';
import { baseDistance, DEFAULT_TOP_K, keepBest, normalizedDistanceRows, prepareNodes, StageTimer, type DiffusionResult, type DiffusionRunOptions } from './common.js';

export interface LcdpParams {
  /** Neighbours kept per row of P_kNN (the item itself included). */
  readonly k: number;
  /** Gaussian width; null: the mean distance to the k-th neighbour. */
  readonly sigma: number | null;
  /** Largest number of diffusion steps. */
  readonly iterations: number;
  /** Start from the full P (true) or from P_kNN (Donoser & Bischof's best variant). */
  readonly startFromP: boolean;
  /** Stop when the top-`stableTop` ranking of every row stops changing (0: never). */
  readonly stableTop: number;
  readonly denseLimit: number;
  readonly truncate: number;
}

export const LCDP_DEFAULTS: LcdpParams = Object.freeze({
  k: 10,
  sigma: null,
  iterations: 15,
  startFromP: true,
  stableTop: 10,
  denseLimit: 10_000,
  truncate: 200,
});

/** Gaussian affinities on the graph and the σ used. */
function affinity(graph: NeighbourGraph, p: LcdpParams): { sigma: number; A: (i: number, r: number) => number } {
  const { n, L } = graph;
  let sigma = p.sigma;
  if (sigma === null) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.sqrt(graph.sqDist[i * L + Math.min(p.k, L - 1)]!);
    sigma = sum / n || 1;
  }
  const s2 = sigma * sigma;
  return { sigma, A: (i, r) => Math.exp(-graph.sqDist[i * L + r]! / s2) };
}

function sameTop(a: Int32Array, b: Int32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** LCDP query re-ranking (queries given) or self-ranking (queries null); scores are similarities Q. */
export async function lcdp(db: Matrix, queries: Matrix | null, params: Partial<LcdpParams> = {}, opts: DiffusionRunOptions = {}): Promise<DiffusionResult> {
  const p: LcdpParams = { ...LCDP_DEFAULTS, ...params };
  if (!Number.isInteger(p.k) || p.k < 1) throw new UserError(`LCDP parameter k must be a positive integer, got ${p.k}`);
  if (!Number.isInteger(p.iterations) || p.iterations < 1) throw new UserError(`LCDP iterations must be a positive integer, got ${p.iterations}`);
  const timer = new StageTimer();
  const { x, nq, ndb } = prepareNodes(db, queries, opts.normalize ?? true);
  const n = x.rows;
  if (p.k + 1 > n) throw new UserError(`LCDP with k = ${p.k} needs more than ${p.k} items; there are ${n}`);
  const self = queries === null;
  const k = Math.min(opts.topK ?? DEFAULT_TOP_K, self ? ndb - 1 : ndb);
  if (k < 1) throw new UserError('the database needs at least two items to rank neighbours');
  const dense = n <= p.denseLimit;
  const L = Math.max(p.k + 1, dense ? 0 : Math.min(n, p.truncate));
  const graph = await neighbourGraph(x, L, { engine: opts.engine, onProgress: (d, t) => opts.onProgress?.('neighbour graph', d, t) });
  timer.lap('neighbour graph');
  const { sigma, A } = affinity(graph, p);
  // P_kNN: each row's k largest affinities (the item itself first), renormalised.
  const Pknn = rowsFromLists(n, (i, push) => {
    let sum = 0;
    for (let r = 0; r < p.k; r++) sum += A(i, r);
    for (let r = 0; r < p.k; r++) push(graph.indices[i * L + r]!, A(i, r) / sum);
  });
  const rows = self ? ndb : nq;
  const rowNode = (r: number) => (self ? nq : 0) + r;
  const out = { indices: new Int32Array(rows * k), scores: new Float32Array(rows * k) };
  const check = Math.min(p.stableTop, ndb);
  let iterationsRun = 0;

  if (dense) {
    const parallel = n >= 1000 && threads() > 1;
    const alloc = (len: number) => (parallel ? sharedFloat64(len) : new Float64Array(len));
    const Q = alloc(n * n);
    const H = alloc(n * n);
    if (p.startFromP) {
      for (let b = 0; b < n; b += 256) {
        const count = Math.min(256, n - b);
        const D = await normalizedDistanceRows(x, b, count, 0, n, null, opts.engine);
        for (let t = 0; t < count; t++) {
          let sum = 0;
          for (let j = 0; j < n; j++) sum += (Q[(b + t) * n + j] = Math.exp(-D[t * n + j]! / (sigma * sigma)));
          for (let j = 0; j < n; j++) Q[(b + t) * n + j]! /= sum;
        }
      }
    } else {
      for (let i = 0; i < n; i++) for (let q = Pknn.indptr[i]!; q < Pknn.indptr[i + 1]!; q++) Q[i * n + Pknn.indices[q]!] = Pknn.values[q]!;
    }
    timer.lap('affinity');
    const share = sharer(parallel);
    const sp = { indptr: share(Int32Array.from(Pknn.indptr)), cols: share(Pknn.indices), vals: share(Pknn.values) };
    const bounds = parallel ? balancedBounds(n, threads(), () => 1) : [0, n];
    let previous: Int32Array | null = null;
    for (let t = 0; t < p.iterations; t++) {
      // H = P_kNN·Q, then Q = H·P_kNNᵀ.
      await runRanges(SPARSE_KERNELS, 'spmmRows', { n, ...sp, F: Q, G: H }, bounds, parallel);
      await runRanges(SPARSE_KERNELS, 'denseTimesSparseT', { n, ...sp, H, G: Q }, bounds, parallel);
      iterationsRun = t + 1;
      opts.onProgress?.('diffusion', t + 1, p.iterations);
      if (check > 0) {
        const top = new Int32Array(rows * check);
        const tv = new Float32Array(rows * check);
        for (let r = 0; r < rows; r++) keepBest(Q.subarray(rowNode(r) * n + nq, rowNode(r) * n + n), check, { indices: top, scores: tv }, r, 'descending', self ? r : -1);
        if (previous && sameTop(previous, top)) break;
        previous = top;
      }
    }
    timer.lap('diffusion');
    for (let r = 0; r < rows; r++) keepBest(Q.subarray(rowNode(r) * n + nq, rowNode(r) * n + n), k, out, r, 'descending', self ? r : -1, baseDistance(x, nq, rowNode(r)));
    timer.lap('ranking');
  } else {
    const keep = Math.max(p.truncate, k + 1);
    const PknnT = transpose(Pknn, n);
    // Q starts as P (startFromP) restricted to each row's L nearest items, the part the truncated
    // rows can hold, or as P_kNN.
    let Q: SparseRows = p.startFromP
      ? rowsFromLists(n, (i, push) => {
          let sum = 0;
          for (let r = 0; r < L; r++) sum += A(i, r);
          for (let r = 0; r < L; r++) push(graph.indices[i * L + r]!, A(i, r) / sum);
        })
      : Pknn;
    let previous: Int32Array | null = null;
    const rankRows = (Qm: SparseRows, kk: number, idx: Int32Array, vals: Float32Array) => {
      const row = new Float64Array(ndb);
      for (let r = 0; r < rows; r++) {
        row.fill(-Infinity);
        const node = rowNode(r);
        for (let q = Qm.indptr[node]!; q < Qm.indptr[node + 1]!; q++) {
          const j = Qm.indices[q]! - nq;
          if (j >= 0) row[j] = Qm.values[q]!;
        }
        keepBest(row, kk, { indices: idx, scores: vals }, r, 'descending', self ? r : -1, baseDistance(x, nq, node));
      }
    };
    for (let t = 0; t < p.iterations; t++) {
      const Hm = await sparseProduct(Pknn, Q, n);
      Q = await sparseProduct(Hm, PknnT, n, { keep });
      iterationsRun = t + 1;
      opts.onProgress?.('diffusion', t + 1, p.iterations);
      if (check > 0) {
        const top = new Int32Array(rows * check);
        rankRows(Q, check, top, new Float32Array(rows * check));
        if (previous && sameTop(previous, top)) break;
        previous = top;
      }
    }
    timer.lap('diffusion');
    rankRows(Q, k, out.indices, out.scores);
    timer.lap('ranking');
  }
  const start = !p.startFromP ? 'P_kNN' : dense ? 'P' : `P truncated to each row's ${L} nearest`;
  const info = { sigma, iterations: iterationsRun, dense, start, ties: 'base distance' };
  return { mode: self ? 'self' : 'query', rows, k, ...out, order: 'descending', timings: timer.timings, info };
}
