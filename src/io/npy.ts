/**
 * NumPy `.npy` files: read header versions 1–3 (little- or big-endian, C or Fortran order), write
 * version 1 (version 2 when the header needs it), and read row blocks of files larger than memory.
 * Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError } from '../errors.js';
import { tempPathFor } from './atomic.js';

export type NpyDtype = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8';
export type NpyData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** An n-dimensional array in C (row-major) order. */
export interface NdArray<T extends NpyData = NpyData> {
  readonly dtype: NpyDtype;
  readonly shape: readonly number[];
  readonly data: T;
}

export interface NpyHeader {
  readonly version: number;
  readonly dtype: NpyDtype;
  readonly littleEndian: boolean;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
  /** Byte offset of the first element. */
  readonly dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DTYPES: Record<string, { dtype: NpyDtype; bytes: number }> = {
  f4: { dtype: 'float32', bytes: 4 },
  f8: { dtype: 'float64', bytes: 8 },
  i4: { dtype: 'int32', bytes: 4 },
  i8: { dtype: 'int64', bytes: 8 },
  u1: { dtype: 'uint8', bytes: 1 },
};

const DESCR: Record<NpyDtype, string> = {
  float32: '<f4',
  float64: '<f8',
  int32: '<i4',
  int64: '<i8',
  uint8: '|u1',
};

export function bytesPerElement(dtype: NpyDtype): number {
  return dtype === 'float64' || dtype === 'int64' ? 8 : dtype === 'uint8' ? 1 : 4;
}

function allocate(dtype: NpyDtype, length: number): NpyData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'uint8':
      return new Uint8Array(length);
  }
}

export function dtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  return 'uint8';
}

/** Parses the header at the start of `head` (which must hold the whole header). */
export function parseNpyHeader(head: Uint8Array, path: string): NpyHeader {
  const bad = (why: string) => new UserError(`${path}: not a valid .npy file (${why}); write it with numpy.save`);
  if (head.length < 10 || MAGIC.some((b, i) => head[i] !== b)) throw bad('missing \\x93NUMPY magic');
  const major = head[6]!;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (head.length < 12) throw bad('truncated header');
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw bad(`unsupported format version ${major}`);
  }
  if (head.length < start + headerLen) throw bad('truncated header');
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(head.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([<>|=])?([a-z])(\d+)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw bad(`unreadable header ${JSON.stringify(text.trim())}`);
  const kind = DTYPES[`${descr[2]}${descr[3]}`];
  if (!kind) {
    throw new UserError(
      `${path}: unsupported dtype '${descr[1] ?? ''}${descr[2]}${descr[3]}'; ` +
        `convert it with numpy, e.g. np.save(path, a.astype(np.float32))`,
    );
  }
  const dims = shape[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, '')));
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`bad shape (${shape[1]})`);
  return {
    version: major,
    dtype: kind.dtype,
    littleEndian: descr[1] !== '>' || kind.bytes === 1,
    fortranOrder: fortran[1] === 'True',
    shape: dims,
    dataOffset: start + headerLen,
  };
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** Reorders Fortran-order (first axis fastest) data into C order. */
function fortranToC<T extends NpyData>(src: T, shape: readonly number[]): T {
  if (shape.length < 2) return src;
  const dst = allocate(dtypeOf(src), src.length) as T;
  const nd = shape.length;
  // Fortran strides in elements for each axis.
  const fStride = new Array<number>(nd);
  fStride[0] = 1;
  for (let a = 1; a < nd; a++) fStride[a] = fStride[a - 1]! * shape[a - 1]!;
  const idx = new Array<number>(nd).fill(0);
  let off = 0;
  const s = src as unknown as ArrayLike<number | bigint>;
  const d = dst as unknown as { [i: number]: number | bigint };
  for (let c = 0; c < src.length; c++) {
    d[c] = s[off]!;
    for (let a = nd - 1; a >= 0; a--) {
      idx[a]!++;
      off += fStride[a]!;
      if (idx[a]! < shape[a]!) break;
      off -= fStride[a]! * shape[a]!;
      idx[a] = 0;
    }
  }
  return dst;
}

/**
 * An open `.npy` file. `readRows` reads a block of rows (along the first axis) without loading the
 * whole file, so that files larger than memory can be streamed.
 */
export class NpyFile {
  readonly header: NpyHeader;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    // Read the fixed prefix, then exactly as many header bytes as it announces.
    const prefix = new Uint8Array(12);
    const got = readSync(fd, prefix, 0, 12, 0);
    const view = new DataView(prefix.buffer);
    const len = got < 10 ? 0 : prefix[6] === 1 ? 10 + view.getUint16(8, true) : got === 12 ? 12 + view.getUint32(8, true) : 0;
    const head = new Uint8Array(Math.max(got, Math.min(len, 1 << 24)));
    readSync(fd, head, 0, head.length, 0);
    const header = parseNpyHeader(head, path);
    const expected = header.dataOffset + this.count(header.shape) * bytesPerElement(header.dtype);
    const size = fstatSync(fd).size;
    if (size < expected) {
      throw new UserError(`${path}: file is truncated (${size} bytes, the header promises ${expected}); re-create it`);
    }
    this.header = header;
  }

  static open(path: string): NpyFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new UserError(`${path}: cannot open (${(err as NodeJS.ErrnoException).code ?? err}); check the path`);
    }
    try {
      return new NpyFile(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private count(shape: readonly number[]): number {
    return shape.reduce((a, b) => a * b, 1);
  }

  get shape(): readonly number[] {
    return this.header.shape;
  }

  get dtype(): NpyDtype {
    return this.header.dtype;
  }

  /** Number of rows (first axis); 1 for a 0-d array. */
  get rows(): number {
    return this.header.shape.length === 0 ? 1 : this.header.shape[0]!;
  }

  /** Elements per row (product of the other axes). */
  get rowLength(): number {
    return this.count(this.header.shape.slice(1));
  }

  private readElements(first: number, count: number): NpyData {
    if (this.fd === null) throw new Error(`${this.path}: file already closed`);
    const { dtype, littleEndian, dataOffset } = this.header;
    const out = allocate(dtype, count);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const width = bytesPerElement(dtype);
    let done = 0;
    const chunk = 1 << 30; // readSync reads at most 2 GiB at a time
    while (done < bytes.length) {
      const n = readSync(this.fd, bytes, done, Math.min(chunk, bytes.length - done), dataOffset + first * width + done);
      if (n <= 0) throw new UserError(`${this.path}: unexpected end of file; re-create it`);
      done += n;
    }
    if (!littleEndian && width > 1) swapBytes(bytes, width);
    return out;
  }

  /** Reads the whole array, in C order. */
  readAll(): NdArray {
    const { shape, fortranOrder, dtype } = this.header;
    let data = this.readElements(0, this.count(shape));
    if (fortranOrder) data = fortranToC(data, shape);
    return { dtype, shape: [...shape], data };
  }

  /** Reads rows [start, start + count) along the first axis, in C order. */
  readRows(start: number, count: number): NdArray {
    const { shape, fortranOrder, dtype } = this.header;
    if (start < 0 || count < 0 || start + count > this.rows) {
      throw new RangeError(`${this.path}: rows ${start}..${start + count} out of range 0..${this.rows}`);
    }
    const rowShape = [count, ...shape.slice(1)];
    if (fortranOrder) {
      const all = this.readAll();
      const len = this.rowLength;
      return { dtype, shape: rowShape, data: all.data.slice(start * len, (start + count) * len) as NpyData };
    }
    return { dtype, shape: rowShape, data: this.readElements(start * this.rowLength, count * this.rowLength) };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Reads a whole `.npy` file into C order. */
export function readNpy(path: string): NdArray {
  const f = NpyFile.open(path);
  try {
    return f.readAll();
  } finally {
    f.close();
  }
}

/** The header bytes (version 1, or 2 when the header is too long) for an array of this shape. */
export function npyHeaderBytes(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  for (const version of [1, 2]) {
    const prefix = version === 1 ? 10 : 12;
    const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
    const headerLen = total - prefix;
    if (version === 1 && headerLen > 0xffff) continue;
    const out = new Uint8Array(total);
    out.set(MAGIC, 0);
    out[6] = version;
    out[7] = 0;
    const view = new DataView(out.buffer);
    if (version === 1) view.setUint16(8, headerLen, true);
    else view.setUint32(8, headerLen, true);
    const text = dict.padEnd(headerLen - 1, ' ') + '\n';
    for (let i = 0; i < text.length; i++) out[prefix + i] = text.charCodeAt(i);
    return out;
  }
  throw new Error('unreachable');
}

/** Encodes an array as `.npy` bytes (header + little-endian C-order data). */
export function encodeNpy(arr: NdArray): Uint8Array[] {
  const expected = arr.shape.reduce((a, b) => a * b, 1);
  if (expected !== arr.data.length) {
    throw new RangeError(`shape [${arr.shape}] holds ${expected} elements, data has ${arr.data.length}`);
  }
  if (dtypeOf(arr.data) !== arr.dtype) throw new TypeError(`dtype ${arr.dtype} does not match the data's type`);
  const d = arr.data;
  return [npyHeaderBytes(arr.dtype, arr.shape), new Uint8Array(d.buffer, d.byteOffset, d.byteLength)];
}

/** Writes an array as a `.npy` file, atomically (temporary name, then rename). */
export function writeNpy(path: string, arr: NdArray): void {
  const parts = encodeNpy(arr);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, 'w');
  try {
    for (const part of parts) {
      let done = 0;
      while (done < part.length) done += writeSync(fd, part, done, Math.min(1 << 30, part.length - done));
    }
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Convenience constructors. */
export function ndarray<T extends NpyData>(data: T, shape: readonly number[]): NdArray<T> {
  return { dtype: dtypeOf(data), shape, data };
}
