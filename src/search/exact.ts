/**
 * Exact k-nearest-neighbour search by Euclidean or cosine distance, blocked over the database
 * (which may stream from a `.npy` file larger than memory) and over the queries, so memory stays
 * bounded by the block sizes plus the queries × k result.
 */
import { blockedTopK, matrixSource, type RowSource } from '../backend/blockedTopK.js';
import type { EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { firstNonFiniteRow, l2NormalizeRows, type Matrix } from '../matrix.js';

export type Metric = 'euclidean' | 'cosine';
export const METRICS: readonly Metric[] = ['euclidean', 'cosine'];

export interface SearchOptions {
  /** Neighbours per query. */
  readonly k: number;
  readonly metric?: Metric;
  /** When the queries are the database itself, drop each item from its own list. */
  readonly excludeSelf?: boolean;
  readonly engine?: EngineChoice;
  /** Upper bound on query-block × database-block scores held at once (default 32M ≈ 128 MB). */
  readonly blockElements?: number;
  readonly onProgress?: (doneRows: number, totalRows: number) => void;
}

export interface SearchResult {
  readonly queries: number;
  readonly k: number;
  /** queries × k database indices, nearest first. */
  readonly indices: Int32Array;
  /** queries × k distances: Euclidean ‖q − x‖, or cosine 1 − cos(q, x). */
  readonly distances: Float32Array;
  readonly engine: string;
}

/** A block of rows checked for non-finite values, and L2-normalised for the cosine metric. */
export function prepareBlock(m: Matrix, metric: Metric, name: string, firstRow: number): Matrix {
  const bad = firstNonFiniteRow(m);
  if (bad >= 0) throw new UserError(`${name}: row ${firstRow + bad} contains NaN or infinite values; remove or repair that row`);
  if (metric !== 'cosine') return m;
  return l2NormalizeRows(m, (row) => {
    throw new UserError(`${name}: row ${firstRow + row} is a zero vector, which has no cosine distance; remove it or use --metric euclidean`);
  });
}

/**
 * Exact search of `queries` (null: the database searches itself) against `db`.
 */
export async function exactSearch(db: Matrix | RowSource, queries: Matrix | null, opts: SearchOptions): Promise<SearchResult> {
  const source = 'read' in db ? db : matrixSource(db);
  const metric = opts.metric ?? 'cosine';
  const selfSearch = queries === null;
  const excludeSelf = opts.excludeSelf ?? false;
  if (excludeSelf && !selfSearch) throw new UserError('--exclude-self needs the database to search itself (omit the queries)');
  if (queries && queries.cols !== source.cols) {
    throw new UserError(`queries have ${queries.cols} dimensions but ${source.name} has ${source.cols}; use descriptors from the same extractor`);
  }
  const n = source.rows;
  const maxK = excludeSelf ? n - 1 : n;
  if (!Number.isInteger(opts.k) || opts.k < 1) throw new UserError(`k must be a positive integer, got ${opts.k}`);
  if (opts.k > maxK) {
    throw new UserError(`k = ${opts.k} is larger than the ${maxK} database items available in ${source.name}; use k ≤ ${maxK}`);
  }
  let q: Matrix;
  if (selfSearch) {
    q = prepareBlock(source.read(0, n), metric, source.name, 0);
  } else {
    q = prepareBlock(queries, metric, 'queries', 0);
  }
  const kk = excludeSelf ? opts.k + 1 : opts.k;
  const best = await blockedTopK(q, source, kk, {
    engine: opts.engine,
    blockElements: opts.blockElements,
    onProgress: opts.onProgress,
    prepare: (m, first) => (selfSearch && first === 0 && m.rows === n ? q : prepareBlock(m, metric, source.name, first)),
  });
  const { values: bestVals, indices: bestIdx, queryNorms: qNorms } = best;
  const nq = q.rows;

  const k = opts.k;
  const indices = new Int32Array(nq * k);
  const distances = new Float32Array(nq * k);
  for (let row = 0; row < nq; row++) {
    let o = 0;
    for (let j = 0; j < kk && o < k; j++) {
      const idx = bestIdx[row * kk + j]!;
      if (excludeSelf && idx === row) continue;
      const d2 = Math.max(0, qNorms[row]! - bestVals[row * kk + j]!);
      indices[row * k + o] = idx;
      distances[row * k + o] = metric === 'cosine' ? d2 / 2 : Math.sqrt(d2);
      o++;
    }
  }
  return { queries: nq, k, indices, distances, engine: best.engine };
}
