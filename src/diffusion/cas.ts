/**
 * CAS — Cluster-Aware Similarity diffusion (Luo, Yao, Xu, ICML 2024), with the semantics and
 * defaults of the authors' reference code (docs/algorithms.md §1), computed on sparse rows:
 * the confident and candidate sets, A, W, S, T and P are sparse; only the bidirectional diffusion
 * F is dense, and only while n ≤ `denseLimit` — above that its rows are truncated to their
 * `truncate` largest entries after every step (O(n·L) memory).
 */
import { UserError } from '../errors.js';
import { neighbourGraph, type NeighbourGraph } from '../graph/knn.js';
import { localityOrder } from '../graph/order.js';
import { buildRows, entry, rowsFromLists, sparseProduct, transpose, type SparseRows } from '../graph/sparse.js';
import { rowSquaredNorms, type Matrix } from '../matrix.js';
import {
  DEFAULT_TOP_K, keepBest, normalizedDistanceRows, prepareNodes, StageTimer, xLogX,
  type DiffusionResult, type DiffusionRunOptions,
} from './common.js';
import { grown } from '../backend/arrays.js';
import { balancedBounds, evenBounds, runRanges, sharedFloat64, sharer, threads, warmUp } from '../backend/parallel.js';
import { SPARSE_KERNELS } from '../graph/sparseKernels.js';
import { CAS_KERNELS } from './casKernels.js';
import { bidirectionalDiffusion } from './bsd.js';

export interface CasParams {
  /** σ of the Gaussian affinity A = exp(−D/σ²). */
  readonly sigma: number;
  /** Confident set: mutual top-k1 (self included); W uses the k1 − 1 nearest neighbours. */
  readonly k1: number;
  /** Candidate set: mutual top-(k2 + 1), k-reciprocal expansion with mutual top-(⌊k2/2⌋ + 1). */
  readonly k2: number;
  /** T: the k3 − 1 nearest neighbours (two-step walk P = T·T for the smoothing). */
  readonly k3: number;
  /** Neighbour aggregation over the k4 nearest (self included). */
  readonly k4: number;
  /** Entries kept per row of K = M·M. */
  readonly k5: number;
  /** μ of the diffusion, α = 1/(1 + μ). */
  readonly mu: number;
  /** λc: weight multiplier of confident edges in W. */
  readonly lambdaC: number;
  /** lv: weight of the confident-set mean in the aggregation. */
  readonly lv: number;
  /** β of the smoothing. */
  readonly beta: number;
  /** Fixed-point steps of the bidirectional diffusion, starting from F = W. */
  readonly iterations: number;
  /** Iterate the diffusion to convergence ((1 − α)(I − αS)⁻¹) instead of `iterations` steps. */
  readonly converged: boolean;
  /** λ: final distance = (1 − λ)·G + λ·D. */
  readonly lambda: number;
  /** Geodesic refinement of the Jensen–Shannon distance (reference default). */
  readonly geodesic: boolean;
  /** Original neighbours per node that get a Jensen–Shannon edge in the geodesic graph. */
  readonly geodesicNeighbours: number;
  /** Cost of a pair with no edge, and the cap of geodesic distances. */
  readonly geodesicCap: number;
  /** Largest n with a dense diffusion matrix. */
  readonly denseLimit: number;
  /** Entries kept per row of F in truncated mode (n > denseLimit). */
  readonly truncate: number;
  /**
   * Truncated mode only: the geodesic ranking of an item settles at most this many nodes (the
   * nearest by geodesic distance) and ranks those; dense mode searches until the top-K is exact.
   */
  readonly searchLimit: number;
}

/** The reference code's defaults (used for R-GeM on ROxford and RParis). */
export const CAS_DEFAULTS: CasParams = Object.freeze({
  sigma: 0.3,
  k1: 6,
  k2: 60,
  k3: 70,
  k4: 7,
  k5: 80,
  mu: 0.23,
  lambdaC: 2,
  lv: 2,
  beta: 0,
  iterations: 10,
  converged: false,
  lambda: 0.3,
  geodesic: true,
  geodesicNeighbours: 100,
  geodesicCap: 50,
  denseLimit: 10_000,
  truncate: 200,
  searchLimit: 1000,
});

/** Neighbourhood sizes for small groups (re-identification style, a few relevant items each). */
export const CAS_SMALL_PRESET: Partial<CasParams> = Object.freeze({ k1: 5, k2: 20, k3: 25, k4: 6, k5: 25 });

export const CAS_PRESETS = { default: {}, small: CAS_SMALL_PRESET } as const;

/** Undirected graph with non-negative edge weights, as adjacency lists. */
interface WeightedGraph {
  readonly n: number;
  readonly indptr: Int32Array;
  readonly neighbours: Int32Array;
  readonly weights: Float64Array;
}

/** Sets of items per node, as CSR without values. */
interface NodeSets {
  readonly indptr: Int32Array;
  readonly items: Int32Array;
}

function setsFrom(lists: number[][]): NodeSets {
  const indptr = new Int32Array(lists.length + 1);
  lists.forEach((l, i) => (indptr[i + 1] = indptr[i]! + l.length));
  const items = new Int32Array(indptr[lists.length]!);
  lists.forEach((l, i) => items.set(l, indptr[i]!));
  return { indptr, items };
}

const setOf = (s: NodeSets, i: number) => s.items.subarray(s.indptr[i]!, s.indptr[i + 1]!);

/** Checks parameters against the data size; returns how many neighbours the graph needs. */
export function casGraphSize(p: CasParams, n: number): number {
  for (const key of ['k1', 'k2', 'k3', 'k4', 'k5', 'iterations', 'geodesicNeighbours', 'truncate', 'denseLimit', 'searchLimit'] as const) {
    if (!Number.isInteger(p[key]) || p[key] < 1) throw new UserError(`CAS parameter ${key} must be a positive integer, got ${p[key]}`);
  }
  for (const key of ['sigma', 'mu', 'lambdaC', 'geodesicCap'] as const) {
    if (!(p[key] > 0)) throw new UserError(`CAS parameter ${key} must be positive, got ${p[key]}`);
  }
  if (!(p.lambda >= 0 && p.lambda <= 1)) throw new UserError(`CAS parameter lambda must be in [0, 1], got ${p.lambda}`);
  if (!(p.lv >= 0) || !(p.beta >= 0)) throw new UserError('CAS parameters lv and beta must be non-negative');
  if (p.k1 < 2) throw new UserError('CAS parameter k1 must be at least 2 (W uses the k1 − 1 nearest neighbours)');
  // The geodesic graph links each item to its 100 nearest — to all items when there are fewer.
  const L = Math.max(p.k1, p.k2 + 1, p.k3, p.k4);
  if (L > n) {
    throw new UserError(
      `CAS with these parameters needs ${L} neighbours per item but there are only ${n} items; ` +
        `use the small preset (--preset small) or smaller k parameters (k1, k2 + 1, k3, k4 ≤ ${n})`,
    );
  }
  return Math.max(L, p.geodesic ? Math.min(p.geodesicNeighbours, n) : 0);
}

/** The per-node distributions V of §1 steps 1–4, and what the distance stage needs. */
export interface CasRepresentation {
  readonly graph: NeighbourGraph;
  /** V: rows L1-normalised, sorted by column. */
  readonly V: SparseRows;
}

/** A neighbour graph read as the steps need it: rank r of item i, and the affinity A there. */
interface Ranks {
  readonly n: number;
  rank(i: number, r: number): number;
  /** A_ir = exp(−D_ir / σ²), D the squared distance over the row's largest. */
  affinity(i: number, r: number): number;
}

function ranksOf(graph: NeighbourGraph, sigma: number): Ranks {
  const { n, L, indices: R } = graph;
  return {
    n,
    rank: (i, r) => R[i * L + r]!,
    affinity: (i, r) => Math.exp(-(graph.sqDist[i * L + r]! / (graph.rowMax[i]! || 1)) / (sigma * sigma)),
  };
}

/** The mutual top-m set of i: j among the m nearest of i with i among the m nearest of j. */
function mutualTop(g: Ranks, i: number, m: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < m; r++) {
    const j = g.rank(i, r);
    for (let s = 0; s < m; s++) {
      if (g.rank(j, s) === i) {
        out.push(j);
        break;
      }
    }
  }
  return out;
}

/** Step 1a (reference: confident_candidate_expansion): Conf(i), the mutual top-k1 (self included). */
function confidentSet(g: Ranks, p: CasParams): NodeSets {
  return setsFrom(Array.from({ length: g.n }, (_, i) => mutualTop(g, i, p.k1)));
}

/**
 * Step 1b (reference: candidate_expansion): Cand(i), the mutual top-(k2 + 1), expanded by the
 * k-reciprocal rule: Exp(b), the mutual top-(⌊k2/2⌋ + 1) of a candidate b, joins when more than
 * two thirds of it are initial candidates.
 */
function candidateSet(g: Ranks, p: CasParams): NodeSets {
  const n = g.n;
  const half = Math.floor(p.k2 / 2) + 1;
  const expansion = setsFrom(Array.from({ length: n }, (_, i) => mutualTop(g, i, half)));
  const stamp = new Int32Array(n).fill(-1);
  const initMark = new Int32Array(n).fill(-1);
  const lists: number[][] = [];
  for (let i = 0; i < n; i++) {
    const cand0 = mutualTop(g, i, p.k2 + 1);
    for (const j of cand0) initMark[j] = i;
    const cand = cand0.slice();
    for (const j of cand0) stamp[j] = i;
    for (let r = 0; r <= p.k2; r++) {
      const b = g.rank(i, r);
      if (initMark[b] !== i) continue;
      const exp = setOf(expansion, b);
      let inter = 0;
      for (const e of exp) if (initMark[e] === i) inter++;
      if (inter > (2 / 3) * exp.length) {
        for (const e of exp) {
          if (stamp[e] !== i) {
            stamp[e] = i;
            cand.push(e);
          }
        }
      }
    }
    lists.push(cand);
  }
  return setsFrom(lists);
}

/**
 * Step 2 (reference: bidirectional_similarity_diffusion). W: A on the k1 − 1 nearest, confident
 * edges × λc, then (W + Wᵀ)/2; S = D_W^{-1/2} W D_W^{-1/2}; F from the fixed-point iteration
 * (src/diffusion/bsd.ts). F is read only at (i, j) for j in Cand(i): returned there, in Cand's order.
 */
async function bidirectionalSimilarityDiffusion(g: Ranks, p: CasParams, conf: NodeSets, cand: NodeSets, onProgress?: DiffusionRunOptions['onProgress']): Promise<Float64Array> {
  const n = g.n;
  const confMark = new Int32Array(n).fill(-1);
  const Wdir = buildRows(n, n, (i, acc) => {
    for (const c of setOf(conf, i)) confMark[c] = i;
    for (let r = 1; r < p.k1; r++) {
      const j = g.rank(i, r);
      acc.add(j, g.affinity(i, r) * (confMark[j] === i ? p.lambdaC : 1));
    }
  });
  const Wt = transpose(Wdir, n);
  const W = buildRows(n, n, (i, acc) => {
    acc.addRow(Wdir, i, 0.5);
    acc.addRow(Wt, i, 0.5);
  });
  const deg = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let q = W.indptr[i]!; q < W.indptr[i + 1]!; q++) deg[i]! += W.values[q]!;
  const S: SparseRows = { ...W, values: new Float64Array(W.values.length) };
  for (let i = 0; i < n; i++) {
    for (let q = W.indptr[i]!; q < W.indptr[i + 1]!; q++) {
      S.values[q] = W.values[q]! / Math.sqrt(deg[i]! * deg[W.indices[q]!]!);
    }
  }
  return bidirectionalDiffusion(W, S, {
    alpha: 1 / (1 + p.mu),
    iterations: p.iterations,
    converged: p.converged,
    truncate: n <= p.denseLimit ? null : p.truncate,
    onProgress: (d, t) => onProgress?.('diffusion', d, t),
  }, cand);
}

/**
 * Step 3, neighbour-guided similarity smoothing: F̂ from F on the candidates (the kernel
 * smoothRows, src/diffusion/casKernels.ts). T: A on the k3 − 1 nearest, rows L1-normalised;
 * P = T·T is needed only at (c, c) and (j, c) for c in Conf(i), j in Semi(i).
 */
async function similaritySmoothing(g: Ranks, p: CasParams, conf: NodeSets, cand: NodeSets, Fc: Float64Array): Promise<SparseRows> {
  const n = g.n;
  const T = buildRows(n, n, (i, acc) => {
    for (let r = 1; r < p.k3; r++) acc.add(g.rank(i, r), g.affinity(i, r));
  }, { normalize: true });
  const Tt = transpose(T, n);
  const diagP = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    for (let q = T.indptr[c]!; q < T.indptr[c + 1]!; q++) diagP[c]! += T.values[q]! * entry(T, T.indices[q]!, c);
  }
  const parallel = n >= 2000 && threads() > 1;
  const share = sharer(parallel);
  const smoothed = {
    indices: parallel ? new Int32Array(new SharedArrayBuffer(Math.max(4, cand.items.length * 4))) : new Int32Array(cand.items.length),
    values: parallel ? sharedFloat64(cand.items.length) : new Float64Array(cand.items.length),
  };
  const smoothArgs = {
    n, beta: p.beta,
    confIndptr: share(conf.indptr), confItems: share(conf.items), candIndptr: share(cand.indptr), candItems: share(cand.items), s: share(Fc),
    tIndptr: share(Int32Array.from(T.indptr)), tCols: share(T.indices), tVals: share(T.values),
    ttIndptr: share(Int32Array.from(Tt.indptr)), ttCols: share(Tt.indices), ttVals: share(Tt.values),
    diagP: share(diagP), outCols: smoothed.indices, outVals: smoothed.values,
  };
  await runRanges(CAS_KERNELS, 'smoothRows', smoothArgs, parallel ? balancedBounds(n, threads() * 4, (i) => cand.indptr[i + 1]! - cand.indptr[i]! + 1) : [0, n], parallel);
  // F̂ is non-zero exactly on the candidates.
  return { rows: n, indptr: cand.indptr, ...smoothed };
}

/** Step 4a, the neighbour-enhanced representation: M = rownorm(mean of F̂ over the k4 nearest + lv · mean over Conf). */
function neighbourAggregation(g: Ranks, p: CasParams, conf: NodeSets, Fhat: SparseRows): Promise<SparseRows> {
  const aggregate = rowsFromLists(g.n, (i, push) => {
    for (let r = 0; r < p.k4; r++) push(g.rank(i, r), 1 / p.k4);
    const ci = setOf(conf, i);
    for (const c of ci) push(c, p.lv / ci.length);
  });
  return sparseProduct(aggregate, Fhat, g.n, { normalize: true });
}

/** Step 4b (reference: markov_expansion), the extra propagation: Tm = K = M·M kept to k5 per row, V = rownorm(Tm·Tm). */
async function markovExpansion(M: SparseRows, p: CasParams): Promise<SparseRows> {
  const Tm = await sparseProduct(M, M, M.rows, { keep: p.k5, normalize: true });
  return sparseProduct(Tm, Tm, M.rows, { normalize: true });
}

/** Steps 1–4 of docs/algorithms.md §1 on a neighbour graph, one function per step. */
export async function casRepresentation(
  graph: NeighbourGraph,
  p: CasParams,
  timer = new StageTimer(),
  onProgress?: DiffusionRunOptions['onProgress'],
): Promise<CasRepresentation> {
  const g = ranksOf(graph, p.sigma);
  const conf = confidentSet(g, p);
  const cand = candidateSet(g, p);
  timer.lap('neighbour sets');
  const F = await bidirectionalSimilarityDiffusion(g, p, conf, cand, onProgress);
  timer.lap('diffusion');
  const Fhat = await similaritySmoothing(g, p, conf, cand, F);
  timer.lap('smoothing');
  const M = await neighbourAggregation(g, p, conf, Fhat);
  timer.lap('aggregation');
  const V = await markovExpansion(M, p);
  timer.lap('propagation');
  return { graph, V };
}

/**
 * The pairs re-oriented so that the first node has the longer row of V, and grouped by it: the
 * divergence kernel spreads the first node's row out once and walks the second's, so each pair
 * costs its shorter row. (Overlapping entries are met in column order either way, so J is the same
 * to the last bit.)
 */
function longerRowFirst(V: SparseRows, src: Int32Array, dst: Int32Array): { src: Int32Array; dst: Int32Array } {
  const n = V.rows;
  const length = (i: number) => V.indptr[i + 1]! - V.indptr[i]!;
  const first = (e: number) => (length(dst[e]!) > length(src[e]!) ? dst[e]! : src[e]!);
  const start = new Int32Array(n + 1);
  for (let e = 0; e < src.length; e++) start[first(e) + 1]!++;
  for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
  const outSrc = new Int32Array(src.length);
  const outDst = new Int32Array(src.length);
  for (let e = 0; e < src.length; e++) {
    const a = first(e);
    const at = start[a]!++;
    outSrc[at] = a;
    outDst[at] = a === src[e] ? dst[e]! : src[e]!;
  }
  return { src: outSrc, dst: outDst };
}

/** The geodesic graph: JSD edges between each node and its `geodesicNeighbours` nearest. */
async function jsdGraph(rep: CasRepresentation, p: CasParams): Promise<WeightedGraph> {
  const { graph, V } = rep;
  const { n, L, indices: R } = graph;
  const g = Math.min(p.geodesicNeighbours, L);
  // Unique undirected pairs (i < j), grouped by i.
  const byRow = transpose({ rows: n, indptr: Float64Array.from({ length: n + 1 }, (_, i) => i * g), indices: R.subarray(0, n * g).slice(), values: new Float64Array(n * g) }, n);
  const mark = new Int32Array(n).fill(-1);
  let src: Int32Array = new Int32Array(n * g);
  let dst: Int32Array = new Int32Array(n * g);
  let m = 0;
  for (let i = 0; i < n; i++) {
    const add = (j: number) => {
      if (j > i && mark[j] !== i) {
        mark[j] = i;
        src = grown(src, m + 1);
        dst = grown(dst, m + 1);
        src[m] = i;
        dst[m++] = j;
      }
    };
    for (let r = 0; r < g; r++) add(R[i * L + r]!);
    for (let q = byRow.indptr[i]!; q < byRow.indptr[i + 1]!; q++) add(byRow.indices[q]!);
  }
  ({ src, dst } = longerRowFirst(V, src.subarray(0, m), dst.subarray(0, m)));
  const parallel = m >= 20_000 && threads() > 1;
  const share = sharer(parallel);
  const xlogx = xLogX(V.values, parallel ? sharedFloat64(V.values.length) : undefined);
  const out = parallel ? sharedFloat64(m) : new Float64Array(m);
  const args = {
    n, out,
    src: share(src.subarray(0, m)), dst: share(dst.subarray(0, m)),
    indptr: share(Int32Array.from(V.indptr)), cols: share(V.indices), vals: share(V.values), xlogx: share(xlogx),
  };
  const parts = parallel ? threads() * 16 : 1;
  await runRanges(CAS_KERNELS, 'jsdEdges', args, evenBounds(0, m, parts), parallel);
  // Symmetric adjacency lists.
  const degree = new Int32Array(n + 1);
  for (let e = 0; e < m; e++) {
    degree[src[e]! + 1]!++;
    degree[dst[e]! + 1]!++;
  }
  for (let i = 0; i < n; i++) degree[i + 1]! += degree[i]!;
  const indptr = Int32Array.from(degree);
  const fillAt = Int32Array.from(degree.subarray(0, n));
  const neighbours = new Int32Array(2 * m);
  const weights = new Float64Array(2 * m);
  for (let e = 0; e < m; e++) {
    const w = Math.min(out[e]!, p.geodesicCap);
    const a = src[e]!;
    const b = dst[e]!;
    neighbours[fillAt[a]!] = b;
    weights[fillAt[a]!++] = w;
    neighbours[fillAt[b]!] = a;
    weights[fillAt[b]!++] = w;
  }
  return { n, indptr, neighbours, weights };
}

/** The nodes to rank (database items for themselves, or the queries) and the top-k wanted. */
interface RankedNodes {
  readonly x: Matrix;
  readonly nq: number;
  readonly ndb: number;
  /** Output rows: the queries, or every database item (self-ranking, itself left out). */
  readonly rows: number;
  readonly k: number;
  readonly self: boolean;
  readonly engine?: DiffusionRunOptions['engine'];
  readonly onProgress?: DiffusionRunOptions['onProgress'];
}

/**
 * Step 5, the reference's default: geodesic distances G over the Jensen–Shannon graph, final
 * distance (1 − λ)·G + λ·D, by Dijkstra from each row's node (the kernel geodesicRank). Dense mode
 * reads D from blocks of distance rows; truncated mode computes the few it needs and settles at
 * most searchLimit nodes per item.
 */
async function geodesicRanking(rep: CasRepresentation, p: CasParams, r: RankedNodes, out: { indices: Int32Array; scores: Float32Array }, timer: StageTimer): Promise<void> {
  const { graph } = rep;
  const { x, nq, ndb, rows, k, self } = r;
  const n = x.rows;
  const G = await jsdGraph(rep, p);
  timer.lap('jensen-shannon');
  const denseD = n <= p.denseLimit;
  const parallel = rows >= 64 && threads() > 1;
  const share = sharer(parallel);
  const outIdx = parallel ? new Int32Array(new SharedArrayBuffer(rows * k * 4)) : out.indices;
  const outScore = parallel ? new Float32Array(new SharedArrayBuffer(rows * k * 4)) : out.scores;
  const args = {
    n, nq, ndb, L: graph.L, k, lam: p.lambda, cap: p.geodesicCap, selfMode: self, d: x.cols,
    searchLimit: denseD ? n : Math.max(p.searchLimit, k + 1),
    gIndptr: share(G.indptr), gNbr: share(G.neighbours), gW: share(G.weights),
    lists: share(graph.indices), sqDist: share(graph.sqDist), rowMax: share(graph.rowMax),
    x: share(x.data), norms: share(Float64Array.from(rowSquaredNorms(x))),
    outIdx, outScore,
    // Truncated mode ranks the rows in a locality order (same results, fewer cache misses).
    order: denseD ? null : share(localityOrder(graph, self ? nq : 0, rows)),
  };
  const block = denseD ? 256 : 8192;
  for (let b = 0; b < rows; b += block) {
    const count = Math.min(block, rows - b);
    const D = denseD ? await normalizedDistanceRows(x, (self ? nq : 0) + b, count, nq, ndb, graph.rowMax, r.engine) : null;
    const parts = parallel ? Math.min(count, threads() * 16) : 1;
    await runRanges(CAS_KERNELS, 'geodesicRank', { ...args, D: D && share(D), dFirst: b }, evenBounds(b, count, parts), parallel);
    r.onProgress?.('geodesic ranking', b + count, rows);
  }
  if (parallel) {
    out.indices.set(outIdx);
    out.scores.set(outScore);
  }
  timer.lap('geodesic ranking');
}

/**
 * Step 5 without the geodesic refinement (`geodesic: false`): final distance (1 − λ)·J + λ·D, J
 * between each output row and every database node (only overlapping supports cost anything).
 */
async function divergenceRanking(rep: CasRepresentation, p: CasParams, r: RankedNodes, out: { indices: Int32Array; scores: Float32Array }, timer: StageTimer): Promise<void> {
  const { graph, V } = rep;
  const { x, nq, ndb, rows, k, self } = r;
  const n = x.rows;
  const lam = p.lambda;
  const Vt = transpose(V, n);
  const parallel = threads() > 1 && rows >= 16;
  const share = sharer(parallel);
  const block = 256;
  const args = {
    n,
    indptr: share(Int32Array.from(V.indptr)), cols: share(V.indices), vals: share(V.values),
    xlogx: share(xLogX(V.values)),
    tIndptr: share(Int32Array.from(Vt.indptr)), tRows: share(Vt.indices), tVals: share(Vt.values),
    tXlogx: share(xLogX(Vt.values)),
  };
  const J = parallel ? sharedFloat64(block * n) : new Float64Array(block * n);
  for (let b = 0; b < rows; b += block) {
    const count = Math.min(block, rows - b);
    const first = (self ? nq : 0) + b;
    const D = await normalizedDistanceRows(x, first, count, nq, ndb, graph.rowMax, r.engine);
    J.fill(0);
    const nodes = Int32Array.from({ length: count }, (_, t) => first + t);
    const parts = parallel ? Math.min(count, threads() * 4) : 1;
    await runRanges(CAS_KERNELS, 'jsdRows', { ...args, nodes: share(nodes), out: J }, evenBounds(0, count, parts), parallel);
    const final = new Float64Array(ndb);
    for (let t = 0; t < count; t++) {
      for (let j = 0; j < ndb; j++) final[j] = (1 - lam) * J[t * n + nq + j]! + lam * D[t * ndb + j]!;
      keepBest(final, k, out, b + t, 'ascending', self ? b + t : -1);
    }
    r.onProgress?.('ranking', b + count, rows);
  }
  timer.lap('ranking');
}

/**
 * CAS query re-ranking (`queries` given: rank the database for each query, queries being graph
 * nodes) or database self-ranking (`queries` null: rank every item's neighbours, itself left
 * out). Scores are the final CAS distances (smaller is better).
 */
export async function cas(
  db: Matrix,
  queries: Matrix | null,
  params: Partial<CasParams> = {},
  opts: DiffusionRunOptions = {},
): Promise<DiffusionResult> {
  const p: CasParams = { ...CAS_DEFAULTS, ...params };
  const timer = new StageTimer();
  const { x, nq, ndb } = prepareNodes(db, queries, opts.normalize ?? true);
  const n = x.rows;
  const L = casGraphSize(p, n);
  const self = queries === null;
  const available = self ? ndb - 1 : ndb;
  const k = Math.min(opts.topK ?? DEFAULT_TOP_K, available);
  if (k < 1) throw new UserError('the database needs at least two items to rank neighbours');
  // Threads start while the neighbour graph is built; every stage after it runs kernels on them.
  if (n >= 1000) warmUp(SPARSE_KERNELS, CAS_KERNELS);
  const graph = await neighbourGraph(x, L, { engine: opts.engine, onProgress: (d, t) => opts.onProgress?.('neighbour graph', d, t) });
  timer.lap('neighbour graph');
  const rep = await casRepresentation(graph, p, timer, opts.onProgress);
  const rows = self ? ndb : nq;
  const out = { indices: new Int32Array(rows * k), scores: new Float32Array(rows * k) };
  const ranked: RankedNodes = { x, nq, ndb, rows, k, self, engine: opts.engine, onProgress: opts.onProgress };
  if (p.geodesic) await geodesicRanking(rep, p, ranked, out, timer);
  else await divergenceRanking(rep, p, ranked, out, timer);
  return { mode: self ? 'self' : 'query', rows, k, ...out, order: 'ascending', timings: timer.timings };
}

