/**
 * CAS's smoothing kernel (docs/algorithms.md §1 step 3) against the dense reference, on random
 * sparse walks T where the cap ω ≤ κ binds for some candidates: the two-step walk from a
 * semi-candidate into the confident set can be likelier than the confident set's own returns.
 */
import { describe, expect, it } from 'vitest';
import { smoothRows } from '../src/diffusion/casKernels.js';
import { referenceSmoothing } from './casReference.js';
import { rng } from './helpers.js';

interface Instance {
  T: number[][];
  F: number[][];
  conf: Set<number>[];
  cand: Set<number>[];
}

function instance(n: number, seed: number): Instance {
  const rand = rng(seed);
  const pick = (count: number, not: Set<number>) => {
    const out = new Set<number>();
    while (out.size < count) {
      const j = Math.floor(rand() * n);
      if (!not.has(j)) out.add(j);
    }
    return out;
  };
  // Conf(i): i and 0–2 others; Cand(i): Conf(i) and 0–4 semi-candidates. Rows with a single
  // confident item or a single semi-candidate keep F as it is.
  const conf = Array.from({ length: n }, (_, i) => new Set([i, ...pick(Math.floor(rand() * 3), new Set([i]))]));
  const cand = conf.map((c) => new Set([...c, ...pick(Math.floor(rand() * 5), c)]));
  // T: 2–4 random entries per row (never the diagonal), heavy-tailed so that some two-step walks
  // are strong, and weak entries both ways between i and its confident items, as CAS's mutual
  // neighbours have them (so κ > 0); rows L1-normalised.
  const T = Array.from({ length: n }, (_, i) => {
    const row = new Array<number>(n).fill(0);
    for (const j of pick(2 + Math.floor(rand() * 3), new Set([i]))) row[j] = 0.01 + 10 * rand() ** 6;
    return row;
  });
  conf.forEach((c, i) => c.forEach((j) => j !== i && ((T[i]![j] ||= 0.05 * rand() + 0.01), (T[j]![i] ||= 0.05 * rand() + 0.01))));
  for (const row of T) {
    const s = row.reduce((a, b) => a + b, 0);
    row.forEach((v, j) => (row[j] = v / s));
  }
  const F = Array.from({ length: n }, () => Array.from({ length: n }, () => 0.05 + rand()));
  return { T, F, conf, cand };
}

/** The kernel's inputs (sparse rows, sets as CSR) for an instance, and its output as dense rows. */
function runKernel({ T, F, conf, cand }: Instance, beta: number): number[][] {
  const n = T.length;
  const csr = (rows: number[][]) => {
    const indptr = new Int32Array(n + 1);
    const cols: number[] = [];
    const vals: number[] = [];
    rows.forEach((row, i) => {
      row.forEach((v, j) => v !== 0 && (cols.push(j), vals.push(v)));
      indptr[i + 1] = cols.length;
    });
    return { indptr, cols: Int32Array.from(cols), vals: Float64Array.from(vals) };
  };
  const sets = (s: Set<number>[]) => {
    const indptr = new Int32Array(n + 1);
    s.forEach((set, i) => (indptr[i + 1] = indptr[i]! + set.size));
    return { indptr, items: Int32Array.from(s.flatMap((set) => [...set])) };
  };
  const t = csr(T);
  const tt = csr(T.map((_, i) => T.map((row) => row[i]!)));
  const diagP = Float64Array.from({ length: n }, (_, c) => T[c]!.reduce((s, v, m) => s + v * T[m]![c]!, 0));
  const c = sets(conf);
  const k = sets(cand);
  const s = Float64Array.from(k.items, (j, q) => F[k.indptr.findIndex((e) => e > q) - 1]![j]!);
  const outCols = new Int32Array(k.items.length);
  const outVals = new Float64Array(k.items.length);
  smoothRows({
    n, from: 0, to: n, beta,
    confIndptr: c.indptr, confItems: c.items, candIndptr: k.indptr, candItems: k.items, s,
    tIndptr: t.indptr, tCols: t.cols, tVals: t.vals, ttIndptr: tt.indptr, ttCols: tt.cols, ttVals: tt.vals,
    diagP, outCols, outVals,
  });
  const out = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let q = k.indptr[i]!; q < k.indptr[i + 1]!; q++) {
      if (q > k.indptr[i]!) expect(outCols[q]!).toBeGreaterThan(outCols[q - 1]!);
      out[i]![outCols[q]!] = outVals[q]!;
    }
  }
  return out;
}

/** How many (i, j), j a semi-candidate of a smoothed row, have mean_c P_jc above κ_i (the cap binds). */
function capped({ T, conf, cand }: Instance): number {
  const n = T.length;
  const P = T.map((row) => Array.from({ length: n }, (_, c) => row.reduce((s, v, m) => s + v * T[m]![c]!, 0)));
  let count = 0;
  for (let i = 0; i < n; i++) {
    const ci = [...conf[i]!];
    const semi = [...cand[i]!].filter((j) => !conf[i]!.has(j));
    if (ci.length <= 1 || semi.length <= 1) continue;
    const kappa = ci.reduce((s, c) => s + P[c]![c]!, 0) / ci.length;
    for (const j of semi) if (ci.reduce((s, c) => s + P[j]![c]!, 0) / ci.length > kappa) count++;
  }
  return count;
}

describe('CAS smoothing kernel (smoothRows)', () => {
  it.each([0, 0.5])('equals the dense reference with β = %s, the cap on ω binding for some candidates', (beta) => {
    for (const seed of [1, 2, 3]) {
      const inst = instance(30, seed);
      expect(capped(inst)).toBeGreaterThan(0);
      const got = runKernel(inst, beta);
      const want = referenceSmoothing(inst.T, inst.F, inst.conf, inst.cand, beta);
      for (let i = 0; i < inst.T.length; i++) {
        for (let j = 0; j < inst.T.length; j++) expect(got[i]![j]!).toBeCloseTo(want[i]![j]!, 12);
      }
    }
  });
});
