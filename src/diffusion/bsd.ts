/**
 * Bidirectional similarity diffusion, the first stage of CAS (docs/algorithms.md §1 step 2): the
 * fixed-point iteration F ← ½α(FS + SF) + (1 − α)I from F = W, for a symmetric sparse S. F is
 * dense (n × n) or, in truncated mode, sparse rows keeping their largest entries.
 */
import { balancedBounds, runRanges, sharedFloat64, shareIf, threads } from '../backend/parallel.js';
import { SPARSE_KERNELS } from '../graph/sparseKernels.js';
import { entry, rowsFromLists, sparseProduct, type SparseRows } from '../graph/sparse.js';

export interface DiffusionSteps {
  /** α = 1/(1 + μ). */
  readonly alpha: number;
  /** Fixed-point steps (CAS reference: 10). */
  readonly iterations: number;
  /** Iterate until F stops changing instead ((1 − α)(I − αS)⁻¹). */
  readonly converged: boolean;
  /** null: dense F; a number: each row of F keeps this many largest entries. */
  readonly truncate: number | null;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Returns an accessor F(i, j) for the diffused similarities. */
export function bidirectionalDiffusion(W: SparseRows, S: SparseRows, o: DiffusionSteps): Promise<(i: number, j: number) => number> {
  const progress = o.onProgress ?? (() => {});
  return o.truncate === null ? denseDiffusion(W.rows, W, S, o, progress) : truncatedDiffusion(W.rows, W, S, o, o.truncate, progress);
}

/** One diffusion step on sparse rows: ½α(S·F + F·S) + (1 − α)I, optionally truncated per row. */
async function sparseStep(F: SparseRows, S: SparseRows, alpha: number, keep?: number): Promise<SparseRows> {
  const n = F.rows;
  // Row i of S·F + F·S = Σ_m S_im F_m + Σ_m F_im S_m (S symmetric): one product of
  // [S | F] (n × 2n) with [F ; S] (2n × n).
  const left = rowsFromLists(n, (i, push) => {
    for (let q = S.indptr[i]!; q < S.indptr[i + 1]!; q++) push(S.indices[q]!, S.values[q]!);
    for (let q = F.indptr[i]!; q < F.indptr[i + 1]!; q++) push(n + F.indices[q]!, F.values[q]!);
  });
  const nnzF = F.indices.length;
  const indices = new Int32Array(nnzF + S.indices.length);
  indices.set(F.indices);
  indices.set(S.indices, nnzF);
  const values = new Float64Array(indices.length);
  values.set(F.values);
  values.set(S.values, nnzF);
  const right: SparseRows = {
    rows: 2 * n,
    indptr: Float64Array.from({ length: 2 * n + 1 }, (_, r) => (r <= n ? F.indptr[r]! : nnzF + S.indptr[r - n]!)),
    indices,
    values,
  };
  return sparseProduct(left, right, n, { scale: 0.5 * alpha, diag: 1 - alpha, keep });
}

/**
 * F ← ½α(FS + SF) + (1 − α)I from F = W. The first steps stay sparse (F spreads one hop per step);
 * then F is dense (n × n, float64, symmetric), and the last step is evaluated only at the entries
 * asked for (the candidate sets).
 */
async function denseDiffusion(
  n: number, W: SparseRows, S: SparseRows, p: DiffusionSteps,
  progress: (done: number, total: number) => void,
): Promise<(i: number, j: number) => number> {
  const alpha = p.alpha;
  const total = p.converged ? 10_000 : p.iterations;
  const sparseSteps = p.converged ? 0 : Math.min(2, p.iterations - 1);
  let Fs = W;
  for (let t = 0; t < sparseSteps; t++) {
    Fs = await sparseStep(Fs, S, alpha);
    progress(t + 1, total);
  }
  const parallel = n >= 1000 && threads() > 1;
  const alloc = (len: number) => (parallel ? sharedFloat64(len) : new Float64Array(len));
  const F = alloc(n * n);
  for (let i = 0; i < n; i++) for (let q = Fs.indptr[i]!; q < Fs.indptr[i + 1]!; q++) F[i * n + Fs.indices[q]!] = Fs.values[q]!;
  const G = alloc(n * n);
  const args = {
    n, F, G, alpha,
    indptr: shareIf(Int32Array.from(S.indptr), parallel),
    cols: shareIf(S.indices, parallel),
    vals: shareIf(S.values, parallel),
  };
  const parts = parallel ? threads() : 1;
  // Balanced ranges: S·F costs the row's non-zeros; the symmetrisation costs n − i per row.
  const spmmBounds = balancedBounds(n, parts, (i) => S.indptr[i + 1]! - S.indptr[i]! + 1);
  const symBounds = [...new Set(balancedBounds(n, parts, (i) => n - i).map((b) => (b === n ? n : Math.floor(b / 64) * 64)))];
  const denseSteps = p.converged ? total : p.iterations - sparseSteps - 1;
  for (let t = 0; t < denseSteps; t++) {
    // G = S·F; F symmetric, so F·S = Gᵀ and F ← ½α(G + Gᵀ) + (1 − α)I.
    await runRanges(SPARSE_KERNELS, 'spmmRows', args, spmmBounds, parallel);
    const res = (await runRanges(SPARSE_KERNELS, 'symmetrizeRows', args, symBounds, parallel)) as number[][];
    progress(sparseSteps + t + 1, total);
    if (p.converged && Math.max(...res.map((r) => r[0]!)) <= 1e-9 * Math.max(...res.map((r) => r[1]!))) break;
  }
  progress(total, total);
  if (p.converged) return (i, j) => F[i * n + j]!;
  // The last step, entry by entry: ½α(Σ_m S_im F_mj + Σ_m F_im S_mj) + (1 − α)δ_ij.
  return (i, j) => {
    let v = 0;
    for (let q = S.indptr[i]!; q < S.indptr[i + 1]!; q++) v += S.values[q]! * F[S.indices[q]! * n + j]!;
    for (let q = S.indptr[j]!; q < S.indptr[j + 1]!; q++) v += F[i * n + S.indices[q]!]! * S.values[q]!;
    return 0.5 * alpha * v + (i === j ? 1 - alpha : 0);
  };
}

/** The same iteration on sparse rows, keeping the `keep` largest entries of each row. */
async function truncatedDiffusion(
  n: number, W: SparseRows, S: SparseRows, p: DiffusionSteps, keep: number,
  progress: (done: number, total: number) => void,
): Promise<(i: number, j: number) => number> {
  const alpha = p.alpha;
  let F = W;
  const maxSteps = p.converged ? 1000 : p.iterations;
  for (let t = 0; t < maxSteps; t++) {
    const prev = F;
    F = await sparseStep(prev, S, alpha, keep);
    progress(t + 1, maxSteps);
    if (p.converged) {
      let change = 0;
      let size = 0;
      for (let i = 0; i < n; i++) {
        for (let q = F.indptr[i]!; q < F.indptr[i + 1]!; q++) {
          const v = F.values[q]!;
          change = Math.max(change, Math.abs(v - entry(prev, i, F.indices[q]!)));
          size = Math.max(size, v);
        }
      }
      if (change <= 1e-9 * size) break;
    }
  }
  const final = F;
  return (i, j) => entry(final, i, j);
}
