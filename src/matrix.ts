/** Dense row-major float32 matrices, the currency of every stage. */
import { UserError } from './errors.js';
import { NpyFile, writeNpy, type NdArray } from './io/npy.js';

export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  /** Row-major, length rows × cols. */
  readonly data: Float32Array;
}

export function matrix(data: Float32Array, rows: number, cols: number): Matrix {
  if (data.length !== rows * cols) throw new RangeError(`matrix ${rows}×${cols} needs ${rows * cols} values, got ${data.length}`);
  return { rows, cols, data };
}

/** Converts a 2-d array of any numeric dtype to a float32 matrix (1-d arrays become one column). */
export function toMatrix(arr: NdArray, path = 'array'): Matrix {
  if (arr.shape.length !== 2) {
    throw new UserError(`${path}: expected a 2-d array (items × dimensions), got shape (${arr.shape.join(', ')}); reshape it with numpy`);
  }
  const [rows, cols] = arr.shape as [number, number];
  const src = arr.data;
  let data: Float32Array;
  if (src instanceof Float32Array) data = src;
  else if (src instanceof BigInt64Array) data = Float32Array.from(src, (v) => Number(v));
  else data = Float32Array.from(src);
  return { rows, cols, data };
}

/** Index of the first row holding a NaN or infinite value, or -1. */
export function firstNonFiniteRow(m: Matrix): number {
  const { data, cols } = m;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) return Math.floor(i / cols);
  }
  return -1;
}

/** Reads a descriptor matrix from `.npy`, rejecting NaN/infinite rows and empty files. */
export function readMatrix(path: string): Matrix {
  const f = NpyFile.open(path);
  let m: Matrix;
  try {
    m = toMatrix(f.readAll(), path);
  } finally {
    f.close();
  }
  if (m.rows === 0 || m.cols === 0) throw new UserError(`${path}: the matrix is empty (${m.rows}×${m.cols}); give at least one row and one column`);
  const bad = firstNonFiniteRow(m);
  if (bad >= 0) throw new UserError(`${path}: row ${bad} contains NaN or infinite values; remove or repair that row`);
  return m;
}

/** Writes `m` as a float32 rows × cols .npy file (atomically). */
export function writeMatrix(path: string, m: Matrix): void {
  writeNpy(path, { dtype: 'float32', shape: [m.rows, m.cols], data: m.data });
}

/** Squared L2 norm of each row. */
export function rowSquaredNorms(m: Matrix): Float32Array {
  const out = new Float32Array(m.rows);
  const { data, cols } = m;
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    const o = i * cols;
    for (let j = 0; j < cols; j++) s += data[o + j]! * data[o + j]!;
    out[i] = s;
  }
  return out;
}

/**
 * Every row scaled to unit L2 norm, into `out` (a new array by default; m.data itself normalises
 * in place). A zero row cannot be normalised: its index is reported through `onZero` (default:
 * throw), and it is left as zeros.
 */
export function l2NormalizeRows(
  m: Matrix,
  onZero: (row: number) => void = (row) => {
    throw new UserError(`row ${row} is a zero vector and cannot be L2-normalised`);
  },
  out: Float32Array = new Float32Array(m.data.length),
): Matrix {
  const norms = rowSquaredNorms(m);
  const { data, cols } = m;
  for (let i = 0; i < m.rows; i++) {
    const n = Math.sqrt(norms[i]!);
    const o = i * cols;
    if (n === 0) {
      onZero(i);
      out.fill(0, o, o + cols);
      continue;
    }
    for (let j = 0; j < cols; j++) out[o + j] = data[o + j]! / n;
  }
  return { rows: m.rows, cols, data: out };
}

/** l2NormalizeRows for a named input: a zero row is a one-line error naming the file and the fix. */
export function l2NormalizeNamed(m: Matrix, file: string, fix = 'remove it or pass --no-normalize'): Matrix {
  return l2NormalizeRows(m, (row) => {
    throw new UserError(`${file}: row ${row} is a zero vector and cannot be L2-normalised; ${fix}`);
  });
}

/** Rows [start, start + count) as a view (no copy). */
export function rowBlock(m: Matrix, start: number, count: number): Matrix {
  return { rows: count, cols: m.cols, data: m.data.subarray(start * m.cols, (start + count) * m.cols) };
}
