/**
 * CAS's two heavy stages as row-range kernels (the Jensen–Shannon divergences and the geodesic
 * ranking; docs/algorithms.md §1), run in the main thread or in worker threads over
 * SharedArrayBuffers (src/backend/parallel.ts loads this module in each worker).
 */
import { grown } from '../backend/arrays.js';
import { PairHeap } from '../backend/heap.js';
import type { KernelArgs, KernelSet, RowRange } from '../backend/parallel.js';
import type { SparseArgs } from '../graph/sparseKernels.js';

/**
 * Squared distance between rows a and b of x (d columns), from their squared norms. Four partial
 * sums, so that consecutive additions do not wait on each other.
 */
export function rowSquaredDistance(x: Float32Array, d: number, norms: Float64Array, a: number, b: number): number {
  const oa = a * d;
  const ob = b * d;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let l = 0;
  for (; l + 4 <= d; l += 4) {
    s0 += x[oa + l]! * x[ob + l]!;
    s1 += x[oa + l + 1]! * x[ob + l + 1]!;
    s2 += x[oa + l + 2]! * x[ob + l + 2]!;
    s3 += x[oa + l + 3]! * x[ob + l + 3]!;
  }
  for (; l < d; l++) s0 += x[oa + l]! * x[ob + l]!;
  const sq = norms[a]! + norms[b]! - 2 * (s0 + s1 + (s2 + s3));
  return sq > 0 ? sq : 0;
}

export interface JsdEdgesArgs extends RowRange, SparseArgs {
  readonly src: Int32Array;
  readonly dst: Int32Array;
  readonly xlogx: Float64Array;
  readonly out: Float64Array;
  readonly n: number;
}

/**
 * Jensen–Shannon divergence (log₂, ½ factor) for the edges [from, to) of (src[e], dst[e]) over
 * L1-normalised sparse rows V (sorted columns). Uses a·log₂(2a/s) + b·log₂(2b/s) =
 * (a·ln a + b·ln b − s·ln s)/ln 2 + s with s = a + b, so each overlapping entry costs one natural
 * logarithm (faster than log₂ in V8). `xlogx[q]` = V.values[q]·ln(V.values[q]).
 */
export function jsdEdges(a: KernelArgs): number {
  const { from, to, src, dst, indptr, cols, vals, xlogx, out, n } = a as unknown as JsdEdgesArgs;
  // Row i spread out densely: p[2c] = V_ic and p[2c + 1] = V_ic·ln V_ic, side by side so that one
  // cache line serves both (a tenth faster at 50,000 items).
  const p = new Float64Array(2 * n);
  let loaded = -1;
  for (let e = from; e < to; e++) {
    const i = src[e]!;
    const j = dst[e]!;
    if (i !== loaded) {
      if (loaded >= 0) for (let q = indptr[loaded]!; q < indptr[loaded + 1]!; q++) p[2 * cols[q]!] = 0;
      for (let q = indptr[i]!; q < indptr[i + 1]!; q++) {
        p[2 * cols[q]!] = vals[q]!;
        p[2 * cols[q]! + 1] = xlogx[q]!;
      }
      loaded = i;
    }
    let terms = 0;
    for (let q = indptr[j]!; q < indptr[j + 1]!; q++) {
      const c2 = 2 * cols[q]!;
      const x = p[c2]!;
      if (x === 0) continue;
      const s = x + vals[q]!;
      terms += p[c2 + 1]! + xlogx[q]! - s * Math.log(s);
    }
    // 1 − ½Σ s + ½Σ (terms/ln 2 + s) = 1 + ½ terms / ln 2.
    const J = 1 + (0.5 * terms) / Math.LN2;
    out[e] = J > 0 ? J : 0;
  }
  return 0;
}

export interface JsdRowsArgs extends RowRange, SparseArgs {
  readonly n: number;
  readonly nodes: Int32Array;
  readonly xlogx: Float64Array;
  readonly tIndptr: Int32Array;
  readonly tRows: Int32Array;
  readonly tVals: Float64Array;
  readonly tXlogx: Float64Array;
  readonly out: Float64Array;
}

/**
 * Jensen–Shannon divergence from nodes rows[from..to) to every node, through the columns of V
 * (tIndptr, tRows, tVals, tXlogx = V transposed): only nodes sharing support cost anything, and
 * the others get J = 1. Writes J for block row t at out[(t − from)·n ..]. Same identity as
 * jsdEdges: J = 1 + ½ Σ_overlap (a·ln a + b·ln b − s·ln s) / ln 2.
 */
export function jsdRows(a: KernelArgs): number {
  const { n, from, to, nodes, indptr, cols, vals, xlogx, tIndptr, tRows, tVals, tXlogx, out } = a as unknown as JsdRowsArgs;
  const scale = 0.5 / Math.LN2;
  for (let t = from; t < to; t++) {
    const i = nodes[t]!;
    const o = t * n;
    for (let q = indptr[i]!; q < indptr[i + 1]!; q++) {
      const c = cols[q]!;
      const x = vals[q]!;
      const xl = xlogx[q]!;
      for (let r = tIndptr[c]!; r < tIndptr[c + 1]!; r++) {
        const s = x + tVals[r]!;
        out[o + tRows[r]!]! += xl + tXlogx[r]! - s * Math.log(s);
      }
    }
    for (let j = 0; j < n; j++) {
      const J = 1 + scale * out[o + j]!;
      out[o + j] = J > 0 ? J : 0;
    }
  }
  return 0;
}

export interface SmoothRowsArgs extends RowRange {
  readonly n: number;
  readonly beta: number;
  /** Conf(i) and Cand(i) as CSR sets; `s` holds F at Cand's entries, in Cand's order. */
  readonly confIndptr: Int32Array;
  readonly confItems: Int32Array;
  readonly candIndptr: Int32Array;
  readonly candItems: Int32Array;
  readonly s: Float64Array;
  /** T (rows L1-normalised) and its transpose, and diag(T·T). */
  readonly tIndptr: Int32Array;
  readonly tCols: Int32Array;
  readonly tVals: Float64Array;
  readonly ttIndptr: Int32Array;
  readonly ttCols: Int32Array;
  readonly ttVals: Float64Array;
  readonly diagP: Float64Array;
  /** F̂ at Cand's positions: columns sorted per row, values L1-normalised. */
  readonly outCols: Int32Array;
  readonly outVals: Float64Array;
}

/**
 * CAS's neighbour-guided smoothing (docs/algorithms.md §1 step 3) for rows [from, to): F̂ on the
 * candidates, from s = F there, ω through h_m = mean over c in Conf(i) of T_mc (so that the mean
 * of P_jc = Σ_m T_jm h_m without forming P = T·T), κ = mean of diag(P) over Conf(i).
 */
export function smoothRows(a: KernelArgs): number {
  const { n, from, to, beta, confIndptr, confItems, candIndptr, candItems, s, tIndptr, tCols, tVals, ttIndptr, ttCols, ttVals, diagP, outCols, outVals } = a as unknown as SmoothRowsArgs;
  const confMark = new Int32Array(n).fill(-1);
  const h = new Float64Array(n);
  const hTouched = new Int32Array(n);
  const value = new Float64Array(n);
  let omega = new Float64Array(256);
  for (let i = from; i < to; i++) {
    const c0 = confIndptr[i]!;
    const c1 = confIndptr[i + 1]!;
    const first = candIndptr[i]!;
    const m = candIndptr[i + 1]! - first;
    const nConf = c1 - c0;
    for (let q = c0; q < c1; q++) confMark[confItems[q]!] = i;
    let semi = 0;
    for (let t = 0; t < m; t++) if (confMark[candItems[first + t]!] !== i) semi++;
    if (nConf <= 1 || semi <= 1) {
      for (let t = 0; t < m; t++) value[candItems[first + t]!] = s[first + t]!;
    } else {
      let kappa = 0;
      for (let q = c0; q < c1; q++) kappa += diagP[confItems[q]!]!;
      kappa /= nConf;
      let touched = 0;
      for (let q = c0; q < c1; q++) {
        const c = confItems[q]!;
        for (let r = ttIndptr[c]!; r < ttIndptr[c + 1]!; r++) {
          const col = ttCols[r]!;
          if (h[col] === 0) hTouched[touched++] = col;
          h[col]! += ttVals[r]! / nConf;
        }
      }
      omega = grown(omega, m);
      let sumS = 0;
      let sumSW = 0;
      for (let t = 0; t < m; t++) {
        const j = candItems[first + t]!;
        let w = kappa;
        if (confMark[j] !== i) {
          w = 0;
          for (let r = tIndptr[j]!; r < tIndptr[j + 1]!; r++) w += tVals[r]! * h[tCols[r]!]!;
          w = Math.min(w, kappa);
        }
        omega[t] = w;
        sumS += s[first + t]!;
        sumSW += s[first + t]! * w;
      }
      for (let u = 0; u < touched; u++) h[hTouched[u]!] = 0;
      const tI = (kappa * kappa * sumS - kappa * sumSW) / m;
      const denom = kappa * kappa + 2 * beta;
      for (let t = 0; t < m; t++) value[candItems[first + t]!] = (s[first + t]! * (kappa * omega[t]! + 2 * beta) + tI) / denom;
    }
    // Columns sorted, then L1-normalised in that order.
    const cols = outCols.subarray(first, first + m);
    cols.set(candItems.subarray(first, first + m));
    cols.sort();
    let sum = 0;
    for (let t = 0; t < m; t++) sum += value[cols[t]!]!;
    const scale = sum > 0 ? 1 / sum : 1;
    for (let t = 0; t < m; t++) {
      outVals[first + t] = value[cols[t]!]! * scale;
      value[cols[t]!] = 0;
    }
  }
  return 0;
}

export interface GeodesicRankArgs extends RowRange {
  readonly n: number;
  readonly nq: number;
  readonly ndb: number;
  readonly L: number;
  readonly k: number;
  readonly lam: number;
  readonly cap: number;
  readonly searchLimit: number;
  readonly selfMode: boolean;
  readonly gIndptr: Int32Array;
  readonly gNbr: Int32Array;
  readonly gW: Float64Array;
  readonly lists: Int32Array;
  readonly sqDist: Float64Array;
  readonly rowMax: Float64Array;
  readonly x: Float32Array;
  readonly d: number;
  readonly norms: Float64Array;
  readonly D: Float64Array | null;
  readonly dFirst: number;
  readonly outIdx: Int32Array;
  readonly outScore: Float32Array;
  /** Rows in the order to rank them (positions from..to of it); absent: from..to themselves. */
  readonly order?: Int32Array | null;
}

/**
 * CAS geodesic ranking for rows [from, to): for each row's node, Dijkstra over the Jensen–Shannon
 * graph (gIndptr, gNbr, gW; every pair also joined at cost `cap`), final distance
 * (1 − λ)·G + λ·D for database nodes (nq.. nq + ndb − 1), keeping the k smallest (ties: lower
 * index) in outIdx/outScore. D comes from the dense block `D` (rows × ndb, from `dFirst`) or, when
 * absent, from the node's neighbour list (lists, sqDist) or a dot product of the rows of x.
 * Stops when no unsettled node can enter the top k (see cas.ts), or after `searchLimit` nodes:
 * the first ones in order of (geodesic distance, index) — ties are common, since pairs without
 * shared support are exactly 1 apart.
 */
export function geodesicRank(a: KernelArgs): number {
  const { from, to, n, nq, ndb, L, k, lam, cap, searchLimit, selfMode, gIndptr, gNbr, gW, lists, sqDist, rowMax, x, d, norms, D, dFirst, outIdx, outScore, order = null } = a as unknown as GeodesicRankArgs;
  // dist: +∞ unreached, the tentative distance once reached, −∞ once settled (so one read tells a
  // relaxation whether it improves anything); reset through `touched` after each row.
  const dist = new Float64Array(n).fill(Infinity);
  const touched = new Int32Array(n);
  const listOwner = new Int32Array(n).fill(-1);
  const listPos = new Int32Array(n);
  const settledInList = new Uint8Array(L);
  // The bound set: `searchLimit` distinct reached nodes with their tentative distances (a max-heap
  // bv/bn; inBound[v] = row while v is in it). Once full, its largest value τ bounds the distance
  // of the last node the search can settle, so no path longer than τ needs following (see below).
  const bounded = searchLimit < n;
  const bound = new PairHeap(bounded ? searchLimit : 1, 'max');
  const inBound = new Int32Array(bounded ? n : 0).fill(-1);
  // Dijkstra's queue: (distance, node), the nearest on top.
  const queue = new PairHeap(1024, 'min');
  // The k smallest finals so far (ids: database indices), for the stopping rules.
  const worst = new PairHeap(k, 'max');
  // The k first candidates by (final, index): the row's output.
  const best = new PairHeap(k, 'max');
  let cand = new Int32Array(1024);
  let candF = new Float64Array(1024);
  for (let t = from; t < to; t++) {
    const row = order === null ? t : order[t]!;
    const node = selfMode ? nq + row : row;
    const exclude = selfMode ? row : -1;
    const base = node * L;
    const max = rowMax[node]! || 1;
    const farD = (sqDist[base + L - 1]! / max) * (1 - 1e-4);
    for (let r = 0; r < L; r++) {
      listOwner[lists[base + r]!] = node;
      listPos[lists[base + r]!] = r;
    }
    settledInList.fill(0);
    let firstUnsettled = 0;
    let c = 0;
    let settled = 0;
    let tau = Infinity;
    worst.clear();
    bound.clear();
    queue.clear();
    // Push the source.
    dist[node] = 0;
    touched[0] = node;
    let reached = 1;
    queue.push(0, node);
    while (queue.size > 0) {
      const du = queue.topValue;
      const u = queue.topId;
      queue.pop();
      if (du > dist[u]!) continue; // settled already, or a stale entry
      if (du >= cap) break;
      if (++settled > searchLimit) break;
      const lowerD = sqDist[base + (firstUnsettled < L ? firstUnsettled : L - 1)]! / max;
      if (worst.size === k && (1 - lam) * du + lam * lowerD > worst.topValue) break;
      dist[u] = -Infinity;
      const inList = listOwner[u] === node;
      if (inList) {
        settledInList[listPos[u]!] = 1;
        while (firstUnsettled < L && settledInList[firstUnsettled] === 1) firstUnsettled++;
      }
      const j = u - nq;
      // A node outside the neighbour list lies at least as far as the list's last entry; when even
      // that (less a margin for rounding) cannot beat the k-th best, its distance is not computed.
      const hopeless = D === null && !inList && worst.size === k && (1 - lam) * du + lam * farD > worst.topValue;
      if (j >= 0 && j !== exclude && !hopeless) {
        const dj =
          D !== null ? D[(row - dFirst) * ndb + j]!
          : inList ? sqDist[base + listPos[u]!]! / max
          : rowSquaredDistance(x, d, norms, node, u) / max;
        const f = (1 - lam) * du + lam * dj;
        cand = grown(cand, c + 1);
        candF = grown(candF, c + 1);
        cand[c] = j;
        candF[c++] = f;
        worst.offer(f, j, k);
      }
      for (let q = gIndptr[u]!; q < gIndptr[u + 1]!; q++) {
        const nd = du + gW[q]!;
        // Pruning: every node of the full bound set settles at τ or nearer, and there are at least
        // as many of them unsettled as settlements remain, so a node first reached beyond τ is
        // never settled (and nothing beyond it is: weights are non-negative).
        if (nd > tau) continue;
        const v = gNbr[q]!;
        const old = dist[v]!;
        if (nd < old) {
          if (old === Infinity) touched[reached++] = v;
          dist[v] = nd;
          if (bounded && inBound[v] !== row) {
            const evicted = bound.size === searchLimit ? bound.topId : -1;
            if (bound.offer(nd, v, searchLimit)) {
              if (evicted >= 0) inBound[evicted] = -1;
              inBound[v] = row;
            }
            if (bound.size === searchLimit) tau = bound.topValue;
          }
          queue.push(nd, v);
        }
      }
    }
    if (c < k) {
      // Unreached items sit at the cap distance: rank them by D.
      for (let u = nq; u < n; u++) {
        const j = u - nq;
        if (j === exclude || dist[u] === -Infinity) continue;
        const dj = D !== null ? D[(row - dFirst) * ndb + j]! : rowSquaredDistance(x, d, norms, node, u) / max;
        cand = grown(cand, c + 1);
        candF = grown(candF, c + 1);
        cand[c] = j;
        candF[c++] = (1 - lam) * cap + lam * dj;
      }
    }
    for (let r = 0; r < reached; r++) dist[touched[r]!] = Infinity;
    // The k smallest candidates by (final, index), written first to last.
    best.clear();
    for (let t = 0; t < c; t++) best.offer(candF[t]!, cand[t]!, k);
    best.drain(outScore, outIdx, row * k);
  }
  return 0;
}

/** These kernels, by name, and the module that workers import to run them. */
export const CAS_KERNELS: KernelSet = { url: import.meta.url, kernels: { jsdEdges, jsdRows, smoothRows, geodesicRank } };
export const KERNELS = CAS_KERNELS.kernels;
