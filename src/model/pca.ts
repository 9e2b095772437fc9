/**
 * PCA and PCA-whitening of descriptors, learned on the database: the descriptor-mode head's
 * initialisation and an option of its own. The covariance product runs on the dense engine
 * (onnxruntime); its eigenvectors come from `ml-matrix` up to 1,024 dimensions (7.7 s at 1,024,
 * growing as D³: about 60 s at 2,048), and above that from a randomized subspace iteration whose
 * products also run on the dense engine (see BENCHMARKS.md for both, measured).
 */
import { EigenvalueDecomposition, Matrix as MlMatrix } from 'ml-matrix';
import { denseEngine, type DenseEngine, type EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { matrix, type Matrix } from '../matrix.js';
import { seededRandom } from '../triplets/mining.js';

export interface Pca {
  readonly inputDim: number;
  readonly dims: number;
  /** The database mean (inputDim). */
  readonly mean: Float32Array;
  /** dims × inputDim, one unit eigenvector per row, by decreasing eigenvalue. */
  readonly components: Float32Array;
  /** The dims largest eigenvalues of the covariance, decreasing. */
  readonly eigenvalues: Float64Array;
  /** The covariance's trace: the total variance, of which the eigenvalues keep a part. */
  readonly totalVariance: number;
  /** How the eigenvectors were found. */
  readonly method: 'exact' | 'subspace';
}

export type PcaMethod = 'auto' | 'exact' | 'subspace';

/** Above this dimension 'auto' uses the subspace iteration. */
export const EXACT_PCA_LIMIT = 1024;

export interface PcaOptions {
  readonly method?: PcaMethod;
  readonly engine?: EngineChoice;
  /** Subspace iteration: power steps (each followed by re-orthonormalisation). */
  readonly iterations?: number;
  readonly seed?: number;
}

/** Learns the `dims` leading principal components of the rows of `db`. */
export async function learnPca(db: Matrix, dims: number, options: PcaOptions = {}): Promise<Pca> {
  const { rows: n, cols: d } = db;
  if (!Number.isInteger(dims) || dims < 1 || dims > d) throw new UserError(`PCA dimension must be an integer in [1, ${d}] (the descriptor dimension), got ${dims}`);
  if (n < 2) throw new UserError(`PCA needs at least 2 database rows, got ${n}`);
  const engine = await denseEngine(options.engine ?? 'auto');
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += db.data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  // Centred data, transposed (d × n), so that the covariance is one A·Aᵀ product.
  const centredT = new Float32Array(d * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) centredT[j * n + i] = db.data[i * d + j]! - mean[j]!;
  const cov = await engine.abt(matrix(centredT, d, n), matrix(centredT, d, n));
  for (let i = 0; i < cov.length; i++) cov[i]! /= n - 1;
  let totalVariance = 0;
  for (let j = 0; j < d; j++) totalVariance += cov[j * d + j]!;
  const method = options.method === 'exact' || options.method === 'subspace' ? options.method : d <= EXACT_PCA_LIMIT ? 'exact' : 'subspace';
  const { vectors, values } = method === 'exact' ? exactEigen(cov, d, dims) : await subspaceEigen(cov, d, dims, engine, options);
  return { inputDim: d, dims, mean: Float32Array.from(mean), components: vectors, eigenvalues: values, totalVariance, method };
}

/** The top `dims` eigenpairs of a symmetric d×d matrix, by ml-matrix's tred2/tql2. */
function exactEigen(sym: Float32Array | Float64Array, d: number, dims: number): { vectors: Float32Array; values: Float64Array } {
  const m = new MlMatrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, (sym[i * d + j]! + sym[j * d + i]!) / 2);
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const all = evd.realEigenvalues;
  const order = all.map((_, i) => i).sort((a, b) => all[b]! - all[a]!);
  const vectors = new Float32Array(dims * d);
  const values = new Float64Array(dims);
  const v = evd.eigenvectorMatrix;
  for (let r = 0; r < dims; r++) {
    const c = order[r]!;
    values[r] = all[c]!;
    // A fixed sign (largest-magnitude entry positive) so the result is reproducible.
    let big = 0;
    for (let j = 0; j < d; j++) if (Math.abs(v.get(j, c)) > Math.abs(big)) big = v.get(j, c);
    const s = big < 0 ? -1 : 1;
    for (let j = 0; j < d; j++) vectors[r * d + j] = s * v.get(j, c);
  }
  return { vectors, values };
}

/**
 * Randomized subspace iteration (Halko, Martinsson & Tropp 2011, alg. 4.4): a basis of
 * r = dims + oversampling vectors, multiplied by the covariance and re-orthonormalised
 * `iterations` times, then a Rayleigh–Ritz step (an r×r eigenproblem) gives the eigenpairs.
 */
async function subspaceEigen(
  cov: Float32Array,
  d: number,
  dims: number,
  engine: DenseEngine,
  options: PcaOptions,
): Promise<{ vectors: Float32Array; values: Float64Array }> {
  const r = Math.min(d, dims + Math.max(16, Math.ceil(dims / 4)));
  const rand = seededRandom(options.seed ?? 0);
  // The basis is kept transposed (r × d): one contiguous row per vector.
  let basis: Float32Array = new Float32Array(r * d);
  for (let i = 0; i < basis.length; i++) basis[i] = rand() - 0.5;
  orthonormalizeRows(basis, r, d);
  const covM = matrix(cov, d, d);
  for (let it = 0; it < (options.iterations ?? 6); it++) {
    // (C·Q)ᵀ = Q ᵀ·C (C symmetric): rows of the new basis are C·q_i.
    basis = await engine.abt(matrix(basis, r, d), covM);
    orthonormalizeRows(basis, r, d);
  }
  const cq = await engine.abt(matrix(basis, r, d), covM); // r × d: rows C·q_i
  const small = await engine.abt(matrix(basis, r, d), matrix(cq, r, d)); // Qᵀ C Q, r × r
  const { vectors: w, values } = exactEigen(small, r, dims);
  // Eigenvectors of C: Q·w for each small eigenvector w (dims × r times r × d).
  const vectors = new Float32Array(dims * d);
  for (let k = 0; k < dims; k++) {
    for (let i = 0; i < r; i++) {
      const c = w[k * r + i]!;
      if (c === 0) continue;
      const row = i * d;
      for (let j = 0; j < d; j++) vectors[k * d + j]! += c * basis[row + j]!;
    }
  }
  return { vectors, values };
}

/** Modified Gram–Schmidt on the rows of an r × d array, in place (twice, for stability). */
function orthonormalizeRows(a: Float32Array, r: number, d: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < r; i++) {
      const ri = i * d;
      for (let p = 0; p < i; p++) {
        const rp = p * d;
        let dot = 0;
        for (let j = 0; j < d; j++) dot += a[ri + j]! * a[rp + j]!;
        for (let j = 0; j < d; j++) a[ri + j]! -= dot * a[rp + j]!;
      }
      let norm = 0;
      for (let j = 0; j < d; j++) norm += a[ri + j]! ** 2;
      norm = Math.sqrt(norm);
      if (norm < 1e-20) throw new Error('subspace iteration lost rank (the covariance is degenerate); use --pca-method exact');
      for (let j = 0; j < d; j++) a[ri + j]! /= norm;
    }
  }
}

/**
 * The linear map of PCA (or PCA-whitening): y = W·(x − mean) with W = components, each row
 * divided by √(λ + ε) when whitening; ε = `epsilon` × the largest eigenvalue keeps the tail
 * of a rank-deficient covariance bounded. Returns W (dims × inputDim) and the bias −W·mean.
 */
export function pcaProjection(pca: Pca, whiten: boolean, epsilon = 1e-3): { weights: Float32Array; bias: Float32Array } {
  const { dims, inputDim: d } = pca;
  const weights = new Float32Array(dims * d);
  const bias = new Float32Array(dims);
  const floor = epsilon * Math.max(pca.eigenvalues[0]!, 0);
  for (let k = 0; k < dims; k++) {
    const s = whiten ? 1 / Math.sqrt(Math.max(pca.eigenvalues[k]!, 0) + floor) : 1;
    let b = 0;
    for (let j = 0; j < d; j++) {
      const w = pca.components[k * d + j]! * s;
      weights[k * d + j] = w;
      b -= w * pca.mean[j]!;
    }
    bias[k] = b;
  }
  return { weights, bias };
}
