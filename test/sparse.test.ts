/**
 * Sparse products against a plain product of the same matrices (a map per row): each row's `keep` largest
 * entries (ties to the lower column), columns sorted, optional L1 normalisation. Small integer
 * values make ties common.
 */
import { describe, expect, it } from 'vitest';
import { sparseProduct, type SparseRows } from '../src/graph/sparse.js';
import { rng } from './helpers.js';

function randomRows(rows: number, cols: number, perRow: number, rand: () => number): SparseRows {
  const indptr = new Int32Array(rows + 1);
  const indices: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < rows; i++) {
    const set = new Set<number>();
    while (set.size < perRow) set.add(Math.floor(rand() * cols));
    for (const c of [...set].sort((a, b) => a - b)) {
      indices.push(c);
      values.push(1 + Math.floor(rand() * 3));
    }
    indptr[i + 1] = indices.length;
  }
  return { rows, indptr, indices: Int32Array.from(indices), values: Float64Array.from(values) };
}

function reference(A: SparseRows, B: SparseRows, keep: number, normalize: boolean, plus?: { A: SparseRows; B: SparseRows }) {
  return Array.from({ length: A.rows }, (_, i) => {
    const row = new Map<number, number>();
    for (const [X, Y] of plus ? [[A, B], [plus.A, plus.B]] : [[A, B]]) {
      for (let p = X!.indptr[i]!; p < X!.indptr[i + 1]!; p++) {
        const m = X!.indices[p]!;
        for (let q = Y!.indptr[m]!; q < Y!.indptr[m + 1]!; q++) row.set(Y!.indices[q]!, (row.get(Y!.indices[q]!) ?? 0) + X!.values[p]! * Y!.values[q]!);
      }
    }
    let entries = [...row].map(([c, v]) => ({ c, v })).filter((e) => e.v !== 0);
    if (keep > 0) entries = entries.sort((a, b) => b.v - a.v || a.c - b.c).slice(0, keep);
    entries.sort((a, b) => a.c - b.c);
    const sum = entries.reduce((s, e) => s + e.v, 0);
    return entries.map((e) => ({ c: e.c, v: normalize ? e.v / sum : e.v }));
  });
}

describe('sparseProduct', () => {
  it.each([
    ['light rows (touched columns remembered)', 400, 6000, 5, 12],
    ['heavy rows (dense scratch)', 300, 300, 12, 20],
    ['light rows on the worker threads', 1500, 30_000, 40, 40],
    ['heavy rows on the worker threads', 1500, 2000, 40, 40],
  ])('%s: the keep largest per row, ties to the lower column, as the plain product gives', async (_name, rows, cols, perRow, keep) => {
    const rand = rng(rows + cols);
    const A = randomRows(rows, rows, perRow, rand);
    const B = randomRows(rows, cols, perRow, rand);
    for (const [k, normalize] of [[keep, true], [0, false]] as const) {
      expectSame(await sparseProduct(A, B, cols, { keep: k, normalize }), reference(A, B, k, normalize));
    }
  });

  it.each([
    ['light rows', 400, 5, 12],
    ['on the worker threads', 2500, 30, 40],
  ])('A·B + C·D without stacking them (%s)', async (_name, n, perRow, keep) => {
    const rand = rng(n);
    const [A, B, C, D] = [0, 1, 2, 3].map(() => randomRows(n, n, perRow, rand));
    const plus = { A: C!, B: D! };
    expectSame(await sparseProduct(A!, B!, n, { keep, normalize: true, plus }), reference(A!, B!, keep, true, plus));
  });
});

/** Same columns per row as the reference, values within 1e-12 relative. */
function expectSame(got: SparseRows, want: { c: number; v: number }[][]): void {
  let wrongRows = 0;
  let worst = 0;
  want.forEach((row, i) => {
    const from = got.indptr[i]!;
    const same = got.indptr[i + 1]! - from === row.length && row.every((e, t) => got.indices[from + t] === e.c);
    if (!same) wrongRows++;
    else row.forEach((e, t) => (worst = Math.max(worst, Math.abs(got.values[from + t]! - e.v) / e.v)));
  });
  expect(wrongRows).toBe(0);
  expect(worst).toBeLessThan(1e-12);
}
