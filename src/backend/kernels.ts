/**
 * Numeric kernels that run on row ranges, either in the main thread or in worker threads over
 * SharedArrayBuffers (see parallel.ts). Each kernel is self-contained — no imports, no closures,
 * no nested functions — because workers receive its source text.
 */

/** Arguments every kernel receives: shared arrays by name, plus scalars. */
export type KernelArgs = Record<string, unknown>;

/** A copy of `a` with room for at least `need` elements (doubling). Helpers are shipped to workers too. */
export function grown<T extends Int32Array | Float64Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const out = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  out.set(a);
  return out;
}

/** Squared distance between rows a and b of x (d columns), from their squared norms. */
export function rowSquaredDistance(x: Float32Array, d: number, norms: Float64Array, a: number, b: number): number {
  let dot = 0;
  for (let l = 0, oa = a * d, ob = b * d; l < d; l++) dot += x[oa + l]! * x[ob + l]!;
  const sq = norms[a]! + norms[b]! - 2 * dot;
  return sq > 0 ? sq : 0;
}

export const HELPERS = [grown, rowSquaredDistance] as const;

/** The rows a kernel call works on. */
interface RowRange {
  readonly from: number;
  readonly to: number;
}

/** Sparse rows: row i holds cols/vals[indptr[i] .. indptr[i + 1]). */
interface SparseArgs {
  readonly indptr: Int32Array;
  readonly cols: Int32Array;
  readonly vals: Float64Array;
}

export interface SpmmRowsArgs extends RowRange, SparseArgs {
  readonly n: number;
  readonly F: Float64Array;
  readonly G: Float64Array;
}

/**
 * G[i, :] = Σ_q S_iq · F[m_q, :] for rows i in [from, to); F, G dense n × n. Four rows of F are
 * combined per pass over G's row (three times faster in V8 than one axpy per non-zero).
 */
export function spmmRows(a: KernelArgs): number {
  const { n, from, to, indptr, cols, vals, F, G } = a as unknown as SpmmRowsArgs;
  for (let i = from; i < to; i++) {
    const gi = i * n;
    let q = indptr[i]!;
    const end = indptr[i + 1]!;
    let first = true;
    while (q < end) {
      const left = end - q;
      if (left >= 4) {
        const sa = vals[q]!, sb = vals[q + 1]!, sc = vals[q + 2]!, sd = vals[q + 3]!;
        const fa = cols[q]! * n, fb = cols[q + 1]! * n, fc = cols[q + 2]! * n, fd = cols[q + 3]! * n;
        if (first) for (let j = 0; j < n; j++) G[gi + j] = sa * F[fa + j]! + sb * F[fb + j]! + sc * F[fc + j]! + sd * F[fd + j]!;
        else for (let j = 0; j < n; j++) G[gi + j]! += sa * F[fa + j]! + sb * F[fb + j]! + sc * F[fc + j]! + sd * F[fd + j]!;
        q += 4;
      } else if (left >= 2) {
        const sa = vals[q]!, sb = vals[q + 1]!;
        const fa = cols[q]! * n, fb = cols[q + 1]! * n;
        if (first) for (let j = 0; j < n; j++) G[gi + j] = sa * F[fa + j]! + sb * F[fb + j]!;
        else for (let j = 0; j < n; j++) G[gi + j]! += sa * F[fa + j]! + sb * F[fb + j]!;
        q += 2;
      } else {
        const sa = vals[q]!;
        const fa = cols[q]! * n;
        if (first) for (let j = 0; j < n; j++) G[gi + j] = sa * F[fa + j]!;
        else for (let j = 0; j < n; j++) G[gi + j]! += sa * F[fa + j]!;
        q += 1;
      }
      first = false;
    }
    if (first) for (let j = 0; j < n; j++) G[gi + j] = 0;
  }
  return 0;
}

export interface SpgemmRowsArgs extends RowRange {
  readonly n: number;
  readonly aIndptr: Int32Array;
  readonly aCols: Int32Array;
  readonly aVals: Float64Array;
  readonly bIndptr: Int32Array;
  readonly bCols: Int32Array;
  readonly bVals: Float64Array;
  readonly keep: number;
  readonly normalize: boolean;
  readonly scale?: number;
  readonly diag?: number;
}

/**
 * Rows [from, to) of A·B for sparse A (aIndptr, aCols, aVals) and B (bIndptr, bCols, bVals),
 * plus `diag` on the diagonal, each entry scaled by `scale`; keeps each row's `keep` largest
 * entries (ties: lower column; 0 keeps all) and optionally L1-normalises. Returns the rows as
 * { indptr (relative), cols (sorted per row), vals }. A row whose work is large compared with n
 * is accumulated branch-free into a dense scratch and read back by one scan; a light row
 * remembers the columns it touched.
 */
export function spgemmRows(a: KernelArgs): { indptr: Float64Array; cols: Int32Array; vals: Float64Array } {
  const { n, from, to, aIndptr, aCols, aVals, bIndptr, bCols, bVals, keep, normalize, scale = 1, diag = 0 } = a as unknown as SpgemmRowsArgs;
  const acc = new Float64Array(n);
  const seen = new Uint8Array(n);
  const rowCols = new Int32Array(n);
  const rowVals = new Float64Array(n);
  const work = new Float64Array(n);
  const indptr = new Float64Array(to - from + 1);
  let cols = new Int32Array(Math.max(1024, (to - from) * 16));
  let vals = new Float64Array(cols.length);
  let nnz = 0;
  for (let i = from; i < to; i++) {
    let rowWork = 0;
    for (let p = aIndptr[i]!; p < aIndptr[i + 1]!; p++) rowWork += bIndptr[aCols[p]! + 1]! - bIndptr[aCols[p]!]!;
    let count = 0;
    if (rowWork * 8 > n) {
      for (let p = aIndptr[i]!; p < aIndptr[i + 1]!; p++) {
        const m = aCols[p]!;
        const w = aVals[p]! * scale;
        for (let q = bIndptr[m]!; q < bIndptr[m + 1]!; q++) acc[bCols[q]!]! += w * bVals[q]!;
      }
      acc[i]! += diag;
      for (let c = 0; c < n; c++) {
        const v = acc[c]!;
        if (v !== 0) {
          rowCols[count] = c;
          rowVals[count++] = v;
          acc[c] = 0;
        }
      }
    } else {
      let t = 0;
      if (diag !== 0) {
        seen[i] = 1;
        work[t++] = i;
        acc[i] = diag;
      }
      for (let p = aIndptr[i]!; p < aIndptr[i + 1]!; p++) {
        const m = aCols[p]!;
        const w = aVals[p]! * scale;
        for (let q = bIndptr[m]!; q < bIndptr[m + 1]!; q++) {
          const c = bCols[q]!;
          if (seen[c] === 0) {
            seen[c] = 1;
            work[t++] = c;
          }
          acc[c]! += w * bVals[q]!;
        }
      }
      const touched = work.subarray(0, t).sort();
      for (let u = 0; u < t; u++) {
        const c = touched[u]!;
        rowCols[count] = c;
        rowVals[count++] = acc[c]!;
        acc[c] = 0;
        seen[c] = 0;
      }
    }
    let kept = count;
    if (keep > 0 && count > keep) {
      // Threshold = the keep-th largest value (quickselect on a copy), ties to lower columns.
      const sel = work;
      for (let u = 0; u < count; u++) sel[u] = rowVals[u]!;
      let lo = 0;
      let hi = count - 1;
      const target = count - keep;
      while (lo < hi) {
        const pivot = sel[(lo + hi) >>> 1]!;
        let l = lo;
        let h = hi;
        while (l <= h) {
          while (sel[l]! < pivot) l++;
          while (sel[h]! > pivot) h--;
          if (l <= h) {
            const tmp = sel[l]!;
            sel[l] = sel[h]!;
            sel[h] = tmp;
            l++;
            h--;
          }
        }
        if (target <= h) hi = h;
        else if (target >= l) lo = l;
        else break;
      }
      const threshold = sel[target]!;
      let above = 0;
      for (let u = 0; u < count; u++) if (rowVals[u]! > threshold) above++;
      let ties = keep - above;
      kept = 0;
      for (let u = 0; u < count; u++) {
        const v = rowVals[u]!;
        if (v > threshold || (v === threshold && ties-- > 0)) {
          rowCols[kept] = rowCols[u]!;
          rowVals[kept++] = v;
        }
      }
    }
    cols = grown(cols, nnz + kept);
    vals = grown(vals, nnz + kept);
    let sum = 0;
    for (let u = 0; u < kept; u++) sum += rowVals[u]!;
    const norm = normalize && sum > 0 ? 1 / sum : 1;
    for (let u = 0; u < kept; u++) {
      cols[nnz] = rowCols[u]!;
      vals[nnz++] = rowVals[u]! * norm;
    }
    indptr[i - from + 1] = nnz;
  }
  return { indptr, cols: cols.slice(0, nnz), vals: vals.slice(0, nnz) };
}

export interface SymmetrizeRowsArgs extends RowRange {
  readonly n: number;
  readonly alpha: number;
  readonly F: Float64Array;
  readonly G: Float64Array;
}

/**
 * F_ij = F_ji = ½α(G_ij + G_ji) + (1 − α)δ_ij for i in [from, to), j ≥ i, in 64 × 64 tiles.
 * Returns the largest absolute change times 1e0 packed with the largest value: [change, size].
 */
export function symmetrizeRows(a: KernelArgs): number[] {
  const { n, from, to, alpha, F, G } = a as unknown as SymmetrizeRowsArgs;
  const B = 64;
  let change = 0;
  let size = 0;
  for (let bi = from; bi < to; bi += B) {
    const iEnd = Math.min(bi + B, to);
    for (let bj = bi; bj < n; bj += B) {
      const jEnd = Math.min(bj + B, n);
      for (let i = bi; i < iEnd; i++) {
        for (let j = Math.max(bj, i); j < jEnd; j++) {
          const v = 0.5 * alpha * (G[i * n + j]! + G[j * n + i]!) + (i === j ? 1 - alpha : 0);
          const d = Math.abs(v - F[i * n + j]!);
          if (d > change) change = d;
          if (v > size) size = v;
          F[i * n + j] = v;
          F[j * n + i] = v;
        }
      }
    }
  }
  return [change, size];
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
  const p = new Float64Array(n);
  const plogp = new Float64Array(n);
  let loaded = -1;
  for (let e = from; e < to; e++) {
    const i = src[e]!;
    const j = dst[e]!;
    if (i !== loaded) {
      if (loaded >= 0) for (let q = indptr[loaded]!; q < indptr[loaded + 1]!; q++) p[cols[q]!] = 0;
      for (let q = indptr[i]!; q < indptr[i + 1]!; q++) {
        p[cols[q]!] = vals[q]!;
        plogp[cols[q]!] = xlogx[q]!;
      }
      loaded = i;
    }
    let terms = 0;
    for (let q = indptr[j]!; q < indptr[j + 1]!; q++) {
      const c = cols[q]!;
      const x = p[c]!;
      if (x === 0) continue;
      const s = x + vals[q]!;
      terms += plogp[c]! + xlogx[q]! - s * Math.log(s);
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

export interface DenseTimesSparseTArgs extends RowRange, SparseArgs {
  readonly n: number;
  readonly H: Float64Array;
  readonly G: Float64Array;
}

/**
 * G[i, j] = Σ_q H[i, cols_q] · vals_q over the sparse row j of P, for rows i in [from, to):
 * G = H·Pᵀ with H, G dense n × n (H's row stays in cache while P is streamed).
 */
export function denseTimesSparseT(a: KernelArgs): number {
  const { n, from, to, indptr, cols, vals, H, G } = a as unknown as DenseTimesSparseTArgs;
  for (let i = from; i < to; i++) {
    const o = i * n;
    for (let j = 0; j < n; j++) {
      let v = 0;
      for (let q = indptr[j]!; q < indptr[j + 1]!; q++) v += H[o + cols[q]!]! * vals[q]!;
      G[o + j] = v;
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
}

/**
 * CAS geodesic ranking for rows [from, to): for each row's node, Dijkstra over the Jensen–Shannon
 * graph (gIndptr, gNbr, gW; every pair also joined at cost `cap`), final distance
 * (1 − λ)·G + λ·D for database nodes (nq.. nq + ndb − 1), keeping the k smallest (ties: lower
 * index) in outIdx/outScore. D comes from the dense block `D` (rows × ndb, from `dFirst`) or, when
 * absent, from the node's neighbour list (lists, sqDist) or a dot product of the rows of x.
 * Stops when no unsettled node can enter the top k (see cas.ts), or after `searchLimit` nodes.
 */
export function geodesicRank(a: KernelArgs): number {
  const { from, to, n, nq, ndb, L, k, lam, cap, searchLimit, selfMode, gIndptr, gNbr, gW, lists, sqDist, rowMax, x, d, norms, D, dFirst, outIdx, outScore } = a as unknown as GeodesicRankArgs;
  const dist = new Float64Array(n);
  const seenStamp = new Int32Array(n).fill(-1);
  const doneStamp = new Int32Array(n).fill(-1);
  const listOwner = new Int32Array(n).fill(-1);
  const listPos = new Int32Array(n);
  const settledInList = new Uint8Array(L);
  let hd = new Float64Array(1024);
  let hn = new Int32Array(1024);
  const worst = new Float64Array(k);
  let cand = new Int32Array(1024);
  let candF = new Float64Array(1024);
  for (let row = from; row < to; row++) {
    const node = selfMode ? nq + row : row;
    const exclude = selfMode ? row : -1;
    const base = node * L;
    const max = rowMax[node]! || 1;
    for (let r = 0; r < L; r++) {
      listOwner[lists[base + r]!] = node;
      listPos[lists[base + r]!] = r;
    }
    settledInList.fill(0);
    let firstUnsettled = 0;
    let wsize = 0;
    let c = 0;
    let settled = 0;
    let size = 0;
    // Push the source.
    dist[node] = 0;
    seenStamp[node] = row;
    hd[0] = 0;
    hn[0] = node;
    size = 1;
    while (size > 0) {
      // Pop the minimum.
      const du = hd[0]!;
      const u = hn[0]!;
      size--;
      if (size > 0) {
        const ld = hd[size]!;
        const ln = hn[size]!;
        let i = 0;
        for (;;) {
          let ch = 2 * i + 1;
          if (ch >= size) break;
          if (ch + 1 < size && hd[ch + 1]! < hd[ch]!) ch++;
          if (hd[ch]! >= ld) break;
          hd[i] = hd[ch]!;
          hn[i] = hn[ch]!;
          i = ch;
        }
        hd[i] = ld;
        hn[i] = ln;
      }
      if (doneStamp[u] === row) continue;
      if (du >= cap) break;
      if (++settled > searchLimit) break;
      const lowerD = sqDist[base + (firstUnsettled < L ? firstUnsettled : L - 1)]! / max;
      if (wsize === k && (1 - lam) * du + lam * lowerD > worst[0]!) break;
      doneStamp[u] = row;
      if (listOwner[u] === node) {
        settledInList[listPos[u]!] = 1;
        while (firstUnsettled < L && settledInList[firstUnsettled] === 1) firstUnsettled++;
      }
      const j = u - nq;
      if (j >= 0 && j !== exclude) {
        const dj =
          D !== null ? D[(row - dFirst) * ndb + j]!
          : listOwner[u] === node ? sqDist[base + listPos[u]!]! / max
          : rowSquaredDistance(x, d, norms, node, u) / max;
        const f = (1 - lam) * du + lam * dj;
        cand = grown(cand, c + 1);
        candF = grown(candF, c + 1);
        cand[c] = j;
        candF[c++] = f;
        // Max-heap of the k smallest finals.
        if (wsize < k) {
          let i = wsize++;
          while (i > 0) {
            const pi = (i - 1) >> 1;
            if (worst[pi]! >= f) break;
            worst[i] = worst[pi]!;
            i = pi;
          }
          worst[i] = f;
        } else if (f < worst[0]!) {
          let i = 0;
          for (;;) {
            let ch = 2 * i + 1;
            if (ch >= wsize) break;
            if (ch + 1 < wsize && worst[ch + 1]! > worst[ch]!) ch++;
            if (worst[ch]! <= f) break;
            worst[i] = worst[ch]!;
            i = ch;
          }
          worst[i] = f;
        }
      }
      for (let q = gIndptr[u]!; q < gIndptr[u + 1]!; q++) {
        const v = gNbr[q]!;
        if (doneStamp[v] === row) continue;
        const nd = du + gW[q]!;
        if (seenStamp[v] !== row || nd < dist[v]!) {
          seenStamp[v] = row;
          dist[v] = nd;
          hd = grown(hd, size + 1);
          hn = grown(hn, size + 1);
          let i = size++;
          while (i > 0) {
            const pi = (i - 1) >> 1;
            if (hd[pi]! <= nd) break;
            hd[i] = hd[pi]!;
            hn[i] = hn[pi]!;
            i = pi;
          }
          hd[i] = nd;
          hn[i] = v;
        }
      }
    }
    if (c < k) {
      // Unreached items sit at the cap distance: rank them by D.
      for (let u = nq; u < n; u++) {
        const j = u - nq;
        if (j === exclude || doneStamp[u] === row) continue;
        const dj = D !== null ? D[(row - dFirst) * ndb + j]! : rowSquaredDistance(x, d, norms, node, u) / max;
        cand = grown(cand, c + 1);
        candF = grown(candF, c + 1);
        cand[c] = j;
        candF[c++] = (1 - lam) * cap + lam * dj;
      }
    }
    // The k smallest candidates, ordered by (final, index): heapsort on a max-heap of the first
    // k by that order, fed with the rest.
    hd = grown(hd, k);
    hn = grown(hn, k);
    let hsz = 0;
    const hIdx = hn;
    const hVal = hd;
    for (let t = 0; t < c; t++) {
      const v = candF[t]!;
      const id = cand[t]!;
      if (hsz < k) {
        let i = hsz++;
        while (i > 0) {
          const pi = (i - 1) >> 1;
          if (hVal[pi]! > v || (hVal[pi] === v && hIdx[pi]! > id)) break;
          hVal[i] = hVal[pi]!;
          hIdx[i] = hIdx[pi]!;
          i = pi;
        }
        hVal[i] = v;
        hIdx[i] = id;
      } else if (v < hVal[0]! || (v === hVal[0] && id < hIdx[0]!)) {
        let i = 0;
        for (;;) {
          let ch = 2 * i + 1;
          if (ch >= hsz) break;
          if (ch + 1 < hsz && (hVal[ch + 1]! > hVal[ch]! || (hVal[ch + 1] === hVal[ch] && hIdx[ch + 1]! > hIdx[ch]!))) ch++;
          if (hVal[ch]! < v || (hVal[ch] === v && hIdx[ch]! < id)) break;
          hVal[i] = hVal[ch]!;
          hIdx[i] = hIdx[ch]!;
          i = ch;
        }
        hVal[i] = v;
        hIdx[i] = id;
      }
    }
    // Pop from the max-heap into the output from the back.
    for (let end = hsz - 1; end >= 0; end--) {
      outIdx[row * k + end] = hIdx[0]!;
      outScore[row * k + end] = hVal[0]!;
      const lv = hVal[end]!;
      const li = hIdx[end]!;
      let i = 0;
      for (;;) {
        let ch = 2 * i + 1;
        if (ch >= end) break;
        if (ch + 1 < end && (hVal[ch + 1]! > hVal[ch]! || (hVal[ch + 1] === hVal[ch] && hIdx[ch + 1]! > hIdx[ch]!))) ch++;
        if (hVal[ch]! < lv || (hVal[ch] === lv && hIdx[ch]! < li)) break;
        hVal[i] = hVal[ch]!;
        hIdx[i] = hIdx[ch]!;
        i = ch;
      }
      hVal[i] = lv;
      hIdx[i] = li;
    }
  }
  return 0;
}

export const KERNELS = { spmmRows, spgemmRows, symmetrizeRows, jsdEdges, jsdRows, denseTimesSparseT, geodesicRank } as const;
export type KernelName = keyof typeof KERNELS;
