/** Sparse rows (CSR) in typed arrays, and the accumulator used to build them row by row. */
import { grown } from '../backend/arrays.js';
import { balancedBounds, runRanges, sharer, threads } from '../backend/parallel.js';
import { SPARSE_KERNELS } from './sparseKernels.js';

export interface SparseRows {
  readonly rows: number;
  /** Row i holds entries indptr[i] .. indptr[i + 1] − 1. */
  readonly indptr: Int32Array | Float64Array;
  readonly indices: Int32Array;
  readonly values: Float64Array;
}

/**
 * Accumulates one sparse row at a time over a dense scratch of `n` values, remembering which
 * columns were touched, so that building a row costs its number of non-zeros, not n.
 */
export class RowAccumulator {
  readonly values: Float64Array;
  private readonly seen: Uint8Array;
  private readonly touched: Int32Array;
  private count = 0;

  constructor(readonly n: number) {
    this.values = new Float64Array(n);
    this.seen = new Uint8Array(n);
    this.touched = new Int32Array(n);
  }

  add(j: number, v: number): void {
    if (!this.seen[j]) {
      this.seen[j] = 1;
      this.touched[this.count++] = j;
    }
    this.values[j]! += v;
  }

  /** Adds scale × (row r of m). */
  addRow(m: SparseRows, r: number, scale: number): void {
    const end = m.indptr[r + 1]!;
    for (let p = m.indptr[r]!; p < end; p++) this.add(m.indices[p]!, scale * m.values[p]!);
  }

  get size(): number {
    return this.count;
  }

  /** Touched columns (unsorted) — valid until the next reset. */
  columns(): Int32Array {
    return this.touched.subarray(0, this.count);
  }

  reset(): void {
    for (let t = 0; t < this.count; t++) {
      const j = this.touched[t]!;
      this.seen[j] = 0;
      this.values[j] = 0;
    }
    this.count = 0;
  }
}

/** Builds sparse rows (sorted by column) from a function that fills an accumulator for each row. */
export function buildRows(
  rows: number,
  n: number,
  fill: (i: number, acc: RowAccumulator) => void,
  opts: { normalize?: boolean } = {},
): SparseRows {
  const acc = new RowAccumulator(n);
  const indptr = new Float64Array(rows + 1);
  let indices = new Int32Array(Math.max(16, rows * 8));
  let values = new Float64Array(indices.length);
  let nnz = 0;
  for (let i = 0; i < rows; i++) {
    fill(i, acc);
    const cols = acc.columns().slice().sort();
    indices = grown(indices, nnz + cols.length);
    values = grown(values, nnz + cols.length);
    let sum = 0;
    for (let t = 0; t < cols.length; t++) sum += acc.values[cols[t]!]!;
    const scale = opts.normalize && sum > 0 ? 1 / sum : 1;
    for (let t = 0; t < cols.length; t++) {
      const c = cols[t]!;
      indices[nnz] = c;
      values[nnz++] = acc.values[c]! * scale;
    }
    indptr[i + 1] = nnz;
    acc.reset();
  }
  return { rows, indptr, indices: indices.slice(0, nnz), values: values.slice(0, nnz) };
}

/** Transpose (columns become rows), for column access. */
export function transpose(m: SparseRows, cols: number): SparseRows {
  const counts = new Float64Array(cols + 1);
  for (let p = 0; p < m.indices.length; p++) counts[m.indices[p]! + 1]!++;
  for (let c = 0; c < cols; c++) counts[c + 1]! += counts[c]!;
  const next = Float64Array.from(counts.subarray(0, cols));
  const indices = new Int32Array(m.indices.length);
  const values = new Float64Array(m.indices.length);
  for (let r = 0; r < m.rows; r++) {
    for (let p = m.indptr[r]!; p < m.indptr[r + 1]!; p++) {
      const c = m.indices[p]!;
      const at = next[c]!++;
      indices[at] = r;
      values[at] = m.values[p]!;
    }
  }
  return { rows: cols, indptr: counts, indices, values };
}

/** Value at (r, c), or 0 — binary search in a row sorted by column. */
export function entry(m: SparseRows, r: number, c: number): number {
  let lo = m.indptr[r]!;
  let hi = m.indptr[r + 1]! - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const x = m.indices[mid]!;
    if (x === c) return m.values[mid]!;
    if (x < c) lo = mid + 1;
    else hi = mid - 1;
  }
  return 0;
}

export interface ProductOptions {
  /** Keep each row's largest entries (ties: lower column); 0 or omitted keeps all. */
  readonly keep?: number;
  /** L1-normalise each row. */
  readonly normalize?: boolean;
  /** Multiply every product entry by this. */
  readonly scale?: number;
  /** Add this to each diagonal entry (before `keep` and normalisation). */
  readonly diag?: number;
  /** A second product C·D (same shape) added to A·B and scaled with it, without stacking them. */
  readonly plus?: { readonly A: SparseRows; readonly B: SparseRows };
}

/** Rows per worker task: enough to amortise messaging, small enough to balance. */
const PRODUCT_PARALLEL_MIN_WORK = 2_000_000;

/**
 * A·B for sparse rows (B has `cols` columns), on all cores when the product is large. Rows of the
 * result are sorted by column.
 */
export async function sparseProduct(A: SparseRows, B: SparseRows, cols: number, opts: ProductOptions = {}): Promise<SparseRows> {
  // Estimated work: Σ over A's entries of the length of the B row they pull.
  let work = 0;
  const pairs = opts.plus ? [[A, B], [opts.plus.A, opts.plus.B]] : [[A, B]];
  const rowWork = (i: number) => {
    let w = 1;
    for (const [X, Y] of pairs) for (let p = X!.indptr[i]!; p < X!.indptr[i + 1]!; p++) w += Y!.indptr[X!.indices[p]! + 1]! - Y!.indptr[X!.indices[p]!]!;
    return w;
  };
  for (let i = 0; i < A.rows; i++) work += rowWork(i);
  const parallel = work >= PRODUCT_PARALLEL_MIN_WORK && threads() > 1;
  const share = sharer(parallel);
  const args = {
    n: cols,
    aIndptr: share(Int32Array.from(A.indptr)), aCols: share(A.indices), aVals: share(A.values),
    bIndptr: share(Int32Array.from(B.indptr)), bCols: share(B.indices), bVals: share(B.values),
    keep: opts.keep ?? 0, normalize: opts.normalize ?? false, scale: opts.scale ?? 1, diag: opts.diag ?? 0,
    ...(opts.plus && {
      cIndptr: share(Int32Array.from(opts.plus.A.indptr)), cCols: share(opts.plus.A.indices), cVals: share(opts.plus.A.values),
      dIndptr: share(Int32Array.from(opts.plus.B.indptr)), dCols: share(opts.plus.B.indices), dVals: share(opts.plus.B.values),
    }),
  };
  const bounds = parallel ? balancedBounds(A.rows, threads() * 4, rowWork) : [0, A.rows];
  const parts = (await runRanges(SPARSE_KERNELS, 'spgemmRows', args, bounds, parallel)) as { indptr: Float64Array; cols: Int32Array; vals: Float64Array }[];
  if (parts.length === 1) return { rows: A.rows, indptr: parts[0]!.indptr, indices: parts[0]!.cols, values: parts[0]!.vals };
  const total = parts.reduce((s, p) => s + p.cols.length, 0);
  // Large results go straight to shared memory: the next parallel step then needs no copy.
  const indptr = new Float64Array(A.rows + 1);
  const indices = parallel ? new Int32Array(new SharedArrayBuffer(Math.max(4, total * 4)), 0, total) : new Int32Array(total);
  const values = parallel ? new Float64Array(new SharedArrayBuffer(Math.max(8, total * 8)), 0, total) : new Float64Array(total);
  let at = 0;
  parts.forEach((part, t) => {
    const base = bounds[t]!;
    for (let r = 1; r < part.indptr.length; r++) indptr[base + r] = at + part.indptr[r]!;
    indices.set(part.cols, at);
    values.set(part.vals, at);
    at += part.cols.length;
  });
  return { rows: A.rows, indptr, indices, values };
}

/** Sparse rows from per-row lists of (column, value), duplicates kept as separate entries. */
export function rowsFromLists(rows: number, fill: (i: number, push: (col: number, value: number) => void) => void): SparseRows {
  const indptr = new Float64Array(rows + 1);
  const cols: number[] = [];
  const vals: number[] = [];
  const push = (c: number, v: number) => {
    cols.push(c);
    vals.push(v);
  };
  for (let i = 0; i < rows; i++) {
    fill(i, push);
    indptr[i + 1] = cols.length;
  }
  return { rows, indptr, indices: Int32Array.from(cols), values: Float64Array.from(vals) };
}
