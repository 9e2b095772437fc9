/**
 * Sparse-matrix kernels that run on row ranges, in the main thread or in worker threads over
 * SharedArrayBuffers (src/backend/parallel.ts loads this module in each worker).
 */
import { grown } from '../backend/arrays.js';
import type { KernelArgs, KernelSet, RowRange } from '../backend/parallel.js';

/** Sparse rows: row i holds cols/vals[indptr[i] .. indptr[i + 1]). */
export interface SparseArgs {
  readonly indptr: Int32Array;
  readonly cols: Int32Array;
  readonly vals: Float64Array;
}

/** A dense n × n matrix, row-major: float32 where half the memory traffic matters more than digits. */
export type DenseRows = Float64Array | Float32Array;

export interface SpmmRowsArgs extends RowRange, SparseArgs {
  readonly n: number;
  readonly F: DenseRows;
  readonly G: DenseRows;
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
  /** An optional second product C·D added to A·B (same rows and columns). */
  readonly cIndptr?: Int32Array;
  readonly cCols?: Int32Array;
  readonly cVals?: Float64Array;
  readonly dIndptr?: Int32Array;
  readonly dCols?: Int32Array;
  readonly dVals?: Float64Array;
  readonly keep: number;
  readonly normalize: boolean;
  readonly scale?: number;
  readonly diag?: number;
}

/** Most entries spgemmRows reserves ahead (1.5 GB of address space); beyond, it grows as it goes. */
const MAX_RESERVED = 1 << 27;

/**
 * Rows [from, to) of A·B for sparse A (aIndptr, aCols, aVals) and B (bIndptr, bCols, bVals),
 * plus C·D when given (row i sums A's terms first, then C's), plus `diag` on the diagonal, each
 * product entry scaled by `scale`; keeps each row's `keep` largest entries (ties: lower column;
 * 0 keeps all) and optionally L1-normalises. Returns the rows as
 * { indptr (relative), cols (sorted per row), vals }. A row whose work is large compared with n
 * is accumulated branch-free into a dense scratch and read back by one scan; a light row
 * remembers the columns it touched.
 */
export function spgemmRows(a: KernelArgs): { indptr: Float64Array; cols: Int32Array; vals: Float64Array } {
  const { n, from, to, aIndptr, aCols, aVals, bIndptr, bCols, bVals, keep, normalize, scale = 1, diag = 0 } = a as unknown as SpgemmRowsArgs;
  const { cIndptr, cCols, cVals, dIndptr, dCols, dVals } = a as unknown as SpgemmRowsArgs;
  const pairs: [Int32Array, Int32Array, Float64Array, Int32Array, Int32Array, Float64Array][] = [[aIndptr, aCols, aVals, bIndptr, bCols, bVals]];
  if (cIndptr && cCols && cVals && dIndptr && dCols && dVals) pairs.push([cIndptr, cCols, cVals, dIndptr, dCols, dVals]);
  const workOf = (i: number) => {
    let w = 0;
    for (const [xp, xc, , yp] of pairs) for (let p = xp[i]!; p < xp[i + 1]!; p++) w += yp[xc[p]! + 1]! - yp[xc[p]!]!;
    return w;
  };
  const acc = new Float64Array(n);
  const seen = new Uint8Array(n);
  const rowCols = new Int32Array(n);
  const rowVals = new Float64Array(n);
  const work = new Float64Array(n);
  const tiedCols = new Float64Array(n);
  const indptr = new Float64Array(to - from + 1);
  // Room for every row's largest possible result: pages never written cost nothing, so the output
  // is written once instead of being regrown (memory first written is slow on some machines).
  const rowWorks = new Float64Array(to - from);
  let bound = 0;
  for (let i = from; i < to; i++) {
    rowWorks[i - from] = workOf(i);
    bound += Math.min(rowWorks[i - from]! + (diag !== 0 ? 1 : 0), n, keep > 0 ? keep : n);
  }
  let cols = new Int32Array(Math.max(1024, Math.min(bound, MAX_RESERVED)));
  let vals = new Float64Array(cols.length);
  let nnz = 0;
  for (let i = from; i < to; i++) {
    const rowWork = rowWorks[i - from]!;
    let count = 0;
    let sortKept = false;
    if (rowWork * 8 > n) {
      for (const [xp, xc, xv, yp, yc, yv] of pairs) {
        for (let p = xp[i]!; p < xp[i + 1]!; p++) {
          const m = xc[p]!;
          const w = xv[p]! * scale;
          for (let q = yp[m]!; q < yp[m + 1]!; q++) acc[yc[q]!]! += w * yv[q]!;
        }
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
      for (const [xp, xc, xv, yp, yc, yv] of pairs) {
        for (let p = xp[i]!; p < xp[i + 1]!; p++) {
          const m = xc[p]!;
          const w = xv[p]! * scale;
          for (let q = yp[m]!; q < yp[m + 1]!; q++) {
            const c = yc[q]!;
            if (seen[c] === 0) {
              seen[c] = 1;
              work[t++] = c;
            }
            acc[c]! += w * yv[q]!;
          }
        }
      }
      const touched = work.subarray(0, t);
      // A row cut to its `keep` largest sorts only what it keeps (below), not every touched column.
      sortKept = keep > 0 && t > keep;
      if (!sortKept) touched.sort();
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
      let tied = 0;
      for (let u = 0; u < count; u++) {
        const v = rowVals[u]!;
        if (v > threshold) above++;
        else if (v === threshold) tied++;
      }
      const ties = keep - above;
      // Ties go to the lowest columns: those up to `lastTied`.
      let lastTied = n;
      if (tied > ties) {
        let m = 0;
        for (let u = 0; u < count; u++) if (rowVals[u] === threshold) tiedCols[m++] = rowCols[u]!;
        lastTied = ties > 0 ? tiedCols.subarray(0, m).sort()[ties - 1]! : -1;
      }
      kept = 0;
      for (let u = 0; u < count; u++) {
        const v = rowVals[u]!;
        if (v > threshold || (v === threshold && rowCols[u]! <= lastTied)) {
          rowCols[kept] = rowCols[u]!;
          rowVals[kept++] = v;
        }
      }
    }
    if (sortKept) {
      // Back into column order, through the (cleared) accumulator.
      const order = work.subarray(0, kept);
      for (let u = 0; u < kept; u++) {
        acc[rowCols[u]!] = rowVals[u]!;
        order[u] = rowCols[u]!;
      }
      order.sort();
      for (let u = 0; u < kept; u++) {
        const c = order[u]!;
        rowCols[u] = c;
        rowVals[u] = acc[c]!;
        acc[c] = 0;
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
  return { indptr, cols: cols.subarray(0, nnz), vals: vals.subarray(0, nnz) };
}

export interface SymmetrizeRowsArgs extends RowRange {
  readonly n: number;
  readonly alpha: number;
  readonly F: DenseRows;
  readonly G: DenseRows;
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

export interface StepEntriesArgs extends RowRange, SparseArgs {
  readonly n: number;
  readonly alpha: number;
  readonly F: DenseRows;
  /** The entries wanted: row i's columns are at[atIndptr[i] .. atIndptr[i + 1]). */
  readonly atIndptr: Int32Array;
  readonly at: Int32Array;
  readonly out: Float64Array;
}

/**
 * One more diffusion step, ½α(S·F + F·S) + (1 − α)I for a symmetric sparse S (indptr, cols, vals)
 * and a symmetric dense F, evaluated only at the entries asked for, rows [from, to): out[q] for
 * (i, at[q]). Each entry is Σ_m S_im F_mj + Σ_m F_im S_mj, summed in that order.
 */
export function stepEntries(a: KernelArgs): number {
  const { n, from, to, alpha, F, indptr, cols, vals, atIndptr, at, out } = a as unknown as StepEntriesArgs;
  for (let i = from; i < to; i++) {
    const fi = i * n;
    for (let q = atIndptr[i]!; q < atIndptr[i + 1]!; q++) {
      const j = at[q]!;
      let v = 0;
      for (let r = indptr[i]!; r < indptr[i + 1]!; r++) v += vals[r]! * F[cols[r]! * n + j]!;
      for (let r = indptr[j]!; r < indptr[j + 1]!; r++) v += F[fi + cols[r]!]! * vals[r]!;
      out[q] = 0.5 * alpha * v + (i === j ? 1 - alpha : 0);
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

/** These kernels, by name, and the module that workers import to run them. */
export const SPARSE_KERNELS: KernelSet = {
  url: import.meta.url,
  kernels: { spmmRows, spgemmRows, symmetrizeRows, stepEntries, denseTimesSparseT },
};
export const KERNELS = SPARSE_KERNELS.kernels;
