import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NpyFile, encodeNpy, readNpy, writeNpy, type NdArray, type NpyData } from '../src/io/npy.js';
import { readMatrix } from '../src/matrix.js';
import { UserError } from '../src/errors.js';
import { FIXTURES, withTempDir } from './helpers.js';

const npy = (name: string) => join(FIXTURES, 'npy', name);
/** The values make_fixtures.py writes: arange, ×0.5 for floats, −3 for signed ints. */
function expected(kind: 'f' | 'i' | 'u', n: number): number[] {
  return Array.from({ length: n }, (_, i) => (kind === 'f' ? i * 0.5 : kind === 'i' ? i - 3 : i));
}
const asNumbers = (d: NpyData) => Array.from(d as ArrayLike<number | bigint>, Number);

function hasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    console.warn('python3 with NumPy is absent: skipping the NumPy round-trip test (pip install numpy to run it)');
    return false;
  }
}

describe('.npy files written by NumPy', () => {
  it.each([
    ['f4_2x3.npy', 'float32', [2, 3], 'f'],
    ['f8_4.npy', 'float64', [4], 'f'],
    ['i4_3x2.npy', 'int32', [3, 2], 'i'],
    ['i8_2x2x2.npy', 'int64', [2, 2, 2], 'i'],
    ['u1_5.npy', 'uint8', [5], 'u'],
    ['f4_scalar.npy', 'float32', [], 'f'],
    ['f4_2x3_v2.npy', 'float32', [2, 3], 'f'],
    ['f4_2x3_v3.npy', 'float32', [2, 3], 'f'],
    ['f4_2x3_bigendian.npy', 'float32', [2, 3], 'f'],
  ] as const)('%s reads as %s %j', (file, dtype, shape, kind) => {
    const a = readNpy(npy(file));
    expect(a.dtype).toBe(dtype);
    expect(a.shape).toEqual(shape);
    expect(asNumbers(a.data)).toEqual(expected(kind, shape.reduce((x: number, y: number) => x * y, 1)));
  });

  it('converts Fortran order to C order (2-d and 3-d)', () => {
    const a = readNpy(npy('f8_2x3_fortran.npy'));
    expect(a.shape).toEqual([2, 3]);
    expect(asNumbers(a.data)).toEqual(expected('f', 6));
    const b = readNpy(npy('i4_2x3x2_fortran.npy'));
    expect(b.shape).toEqual([2, 3, 2]);
    expect(asNumbers(b.data)).toEqual(expected('i', 12));
  });

  it('reads row blocks without loading the whole file', () => {
    const f = NpyFile.open(npy('i4_3x2.npy'));
    try {
      expect(f.rows).toBe(3);
      expect(f.rowLength).toBe(2);
      const block = f.readRows(1, 2);
      expect(block.shape).toEqual([2, 2]);
      expect(asNumbers(block.data)).toEqual([-1, 0, 1, 2]);
      expect(() => f.readRows(2, 2)).toThrow(RangeError);
    } finally {
      f.close();
    }
  });

  it('rejects unsupported dtypes, bad magic and truncated files with the file name', async () => {
    expect(() => readNpy(npy('c8_2.npy'))).toThrow(/c8_2\.npy: unsupported dtype '<c8'/);
    await withTempDir((dir) => {
      writeFileSync(join(dir, 'bad.npy'), 'hello world, not numpy');
      expect(() => readNpy(join(dir, 'bad.npy'))).toThrow(/bad\.npy: not a valid \.npy file/);
      const good = readFileSync(npy('f4_2x3.npy'));
      writeFileSync(join(dir, 'short.npy'), good.subarray(0, good.length - 4));
      expect(() => readNpy(join(dir, 'short.npy'))).toThrow(/short\.npy: file is truncated/);
      expect(() => readNpy(join(dir, 'missing.npy'))).toThrow(UserError);
    });
  });
});

describe('.npy round trips', () => {
  const cases: NdArray[] = [
    { dtype: 'float32', shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.3) },
    { dtype: 'float64', shape: [5], data: Float64Array.from([Math.PI, -0, 1e-300, -1e300, 2]) },
    { dtype: 'int32', shape: [2, 2, 3], data: Int32Array.from({ length: 12 }, (_, i) => (i - 6) * 100_000_000) },
    { dtype: 'int64', shape: [3], data: BigInt64Array.from([-(2n ** 62n), 0n, 2n ** 62n]) },
    { dtype: 'uint8', shape: [4, 1], data: Uint8Array.from([0, 1, 128, 255]) },
    { dtype: 'float32', shape: [0, 8], data: new Float32Array(0) },
  ];
  it.each(cases.map((c) => [c.dtype, c.shape, c] as const))('%s %j', async (_d, _s, arr) => {
    await withTempDir((dir) => {
      const path = join(dir, 'a.npy');
      writeNpy(path, arr);
      const back = readNpy(path);
      expect(back.dtype).toBe(arr.dtype);
      expect(back.shape).toEqual(arr.shape);
      expect(back.data).toEqual(arr.data);
      // Header is padded so that data starts on a 64-byte boundary, as NumPy writes it.
      expect(encodeNpy(arr)[0]!.length % 64).toBe(0);
      expect(readdirSync(dir)).toEqual(['a.npy']); // no temporary file left behind
    });
  });

  it.skipIf(!hasNumpy())('files we write load in NumPy with the same values', async () => {
    await withTempDir((dir) => {
      for (const [i, arr] of cases.entries()) writeNpy(join(dir, `${i}.npy`), arr);
      const script = `
import numpy as np, json, sys
out = []
for i in range(${cases.length}):
    a = np.load(sys.argv[1] + f'/{i}.npy')
    out.append([str(a.dtype), list(a.shape), [float(x) for x in a.ravel()]])
print(json.dumps(out))`;
      const got = JSON.parse(execFileSync('python3', ['-c', script, dir]).toString()) as [string, number[], number[]][];
      got.forEach(([dtype, shape, values], i) => {
        expect(dtype).toBe(cases[i]!.dtype);
        expect(shape).toEqual(cases[i]!.shape);
        expect(values).toEqual(asNumbers(cases[i]!.data));
      });
    });
  });
});

describe('readMatrix', () => {
  it('converts any dtype to float32 and rejects non-2-d, NaN rows and empty matrices', async () => {
    expect(Array.from(readMatrix(npy('i4_3x2.npy')).data)).toEqual(expected('i', 6));
    expect(() => readMatrix(npy('f8_4.npy'))).toThrow(/f8_4\.npy: expected a 2-d array/);
    await withTempDir((dir) => {
      const data = new Float32Array(6).fill(1);
      data[4] = NaN;
      writeNpy(join(dir, 'nan.npy'), { dtype: 'float32', shape: [3, 2], data });
      expect(() => readMatrix(join(dir, 'nan.npy'))).toThrow(/nan\.npy: row 2 contains NaN/);
      writeNpy(join(dir, 'empty.npy'), { dtype: 'float32', shape: [0, 2], data: new Float32Array(0) });
      expect(() => readMatrix(join(dir, 'empty.npy'))).toThrow(/empty\.npy: the matrix is empty/);
    });
  });
});
