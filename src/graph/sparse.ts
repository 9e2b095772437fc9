/** Sparse rows (CSR) in typed arrays, and the accumulator used to build them row by row. */

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

/** Builds sparse rows from a function that fills an accumulator for each row. */
export function buildRows(
  rows: number,
  n: number,
  fill: (i: number, acc: RowAccumulator) => void,
  opts: { keep?: number; normalize?: boolean } = {},
): SparseRows {
  const acc = new RowAccumulator(n);
  const indptr = new Float64Array(rows + 1);
  let indices = new Int32Array(Math.max(16, rows * 8));
  let values = new Float64Array(indices.length);
  let nnz = 0;
  const order: number[] = [];
  for (let i = 0; i < rows; i++) {
    fill(i, acc);
    let cols = acc.columns();
    if (opts.keep !== undefined && cols.length > opts.keep) cols = largest(acc, opts.keep);
    if (nnz + cols.length > indices.length) {
      const grow = Math.max(indices.length * 2, nnz + cols.length);
      const ni = new Int32Array(grow);
      ni.set(indices.subarray(0, nnz));
      const nv = new Float64Array(grow);
      nv.set(values.subarray(0, nnz));
      indices = ni;
      values = nv;
    }
    order.length = 0;
    for (const c of cols) order.push(c);
    order.sort((a, b) => a - b);
    let sum = 0;
    for (const c of order) sum += acc.values[c]!;
    const scale = opts.normalize && sum > 0 ? 1 / sum : 1;
    for (const c of order) {
      indices[nnz] = c;
      values[nnz++] = acc.values[c]! * scale;
    }
    indptr[i + 1] = nnz;
    acc.reset();
  }
  return { rows, indptr, indices: indices.slice(0, nnz), values: values.slice(0, nnz) };
}

/** The `keep` touched columns with the largest values (ties: lower column first). */
function largest(acc: RowAccumulator, keep: number): Int32Array {
  const cols = Array.from(acc.columns());
  const v = acc.values;
  cols.sort((a, b) => v[b]! - v[a]! || a - b);
  return Int32Array.from(cols.slice(0, keep));
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
