/**
 * Bidirectional similarity diffusion, the first stage of CAS (docs/algorithms.md §1 step 2): the
 * fixed-point iteration F ← ½α(FS + SF) + (1 − α)I from F = W, for a symmetric sparse S. F is
 * dense (n × n) or, in truncated mode, sparse rows keeping their largest entries. Only a few
 * entries per row are read afterwards, so the result is F at those entries.
 */
import { balancedBounds, runRanges, sharedFloat64, sharer, threads } from '../backend/parallel.js';
import { SPARSE_KERNELS, type DenseRows } from '../graph/sparseKernels.js';
import { entry, sparseProduct, type SparseRows } from '../graph/sparse.js';

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

/** The entries of F wanted: row i's columns are items[indptr[i] .. indptr[i + 1]). */
export interface EntrySets {
  readonly indptr: Int32Array;
  readonly items: Int32Array;
}

/** The diffused similarities F(i, j) at the entries `at`, in their order. */
export function bidirectionalDiffusion(W: SparseRows, S: SparseRows, o: DiffusionSteps, at: EntrySets): Promise<Float64Array> {
  const progress = o.onProgress ?? (() => {});
  return o.truncate === null ? denseDiffusion(W.rows, W, S, o, at, progress) : truncatedDiffusion(W.rows, W, S, o, o.truncate, at, progress);
}

/** One diffusion step on sparse rows: ½α(S·F + F·S) + (1 − α)I, optionally truncated per row. */
function sparseStep(F: SparseRows, S: SparseRows, alpha: number, keep?: number): Promise<SparseRows> {
  return sparseProduct(S, F, F.rows, { plus: { A: F, B: S }, scale: 0.5 * alpha, diag: 1 - alpha, keep });
}

/**
 * F ← ½α(FS + SF) + (1 − α)I from F = W. The first steps stay sparse (F spreads one hop per step);
 * then F is dense (n × n, symmetric), and the last step is evaluated only at the entries asked
 * for. The fixed number of steps keeps F in float32 (each entry is summed in float64 and stored
 * rounded): half the memory and memory traffic, and the final distances agree with float64 to
 * about 1e-7 (docs/algorithms.md §1). Iterating to convergence keeps float64, whose rounding lets
 * the change fall below 1e-9 of the values.
 */
async function denseDiffusion(
  n: number, W: SparseRows, S: SparseRows, p: DiffusionSteps, at: EntrySets,
  progress: (done: number, total: number) => void,
): Promise<Float64Array> {
  const alpha = p.alpha;
  const total = p.converged ? 10_000 : p.iterations;
  const sparseSteps = p.converged ? 0 : Math.min(2, p.iterations - 1);
  let Fs = W;
  for (let t = 0; t < sparseSteps; t++) {
    Fs = await sparseStep(Fs, S, alpha);
    progress(t + 1, total);
  }
  const parallel = n >= 1000 && threads() > 1;
  const share = sharer(parallel);
  const alloc = (len: number): DenseRows => {
    if (p.converged) return parallel ? sharedFloat64(len) : new Float64Array(len);
    return parallel ? new Float32Array(new SharedArrayBuffer(Math.max(4, len * 4))) : new Float32Array(len);
  };
  const F = alloc(n * n);
  for (let i = 0; i < n; i++) for (let q = Fs.indptr[i]!; q < Fs.indptr[i + 1]!; q++) F[i * n + Fs.indices[q]!] = Fs.values[q]!;
  const G = alloc(n * n);
  const args = {
    n, F, G, alpha,
    indptr: share(Int32Array.from(S.indptr)),
    cols: share(S.indices),
    vals: share(S.values),
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
  const out = parallel ? sharedFloat64(at.items.length) : new Float64Array(at.items.length);
  if (p.converged) {
    for (let i = 0; i < n; i++) for (let q = at.indptr[i]!; q < at.indptr[i + 1]!; q++) out[q] = F[i * n + at.items[q]!]!;
    return out;
  }
  // The last step, at the wanted entries only.
  const entryArgs = { ...args, atIndptr: share(at.indptr), at: share(at.items), out };
  const entryBounds = parallel ? balancedBounds(n, threads() * 4, (i) => at.indptr[i + 1]! - at.indptr[i]! + 1) : [0, n];
  await runRanges(SPARSE_KERNELS, 'stepEntries', entryArgs, entryBounds, parallel);
  return out;
}

/** The same iteration on sparse rows, keeping the `keep` largest entries of each row. */
async function truncatedDiffusion(
  n: number, W: SparseRows, S: SparseRows, p: DiffusionSteps, keep: number, at: EntrySets,
  progress: (done: number, total: number) => void,
): Promise<Float64Array> {
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
  const out = new Float64Array(at.items.length);
  for (let i = 0; i < n; i++) for (let q = at.indptr[i]!; q < at.indptr[i + 1]!; q++) out[q] = entry(F, i, at.items[q]!);
  return out;
}
