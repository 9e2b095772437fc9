/**
 * Exact k-nearest-neighbour search by Euclidean or cosine distance, blocked over the database
 * (which may stream from a `.npy` file larger than memory) and over the queries, so memory stays
 * bounded by the block sizes plus the queries × k result.
 */
import { denseEngine, unshared, type EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { NpyFile } from '../io/npy.js';
import { firstNonFiniteRow, l2NormalizeRows, rowBlock, rowSquaredNorms, toMatrix, type Matrix } from '../matrix.js';
import { rankingFromScores, type Ranking } from '../eval/ranking.js';
import { mergeTopK } from './topk.js';

export type Metric = 'euclidean' | 'cosine';
export const METRICS: readonly Metric[] = ['euclidean', 'cosine'];

/** Rows that can be read in blocks: an in-memory matrix or a file. */
export interface RowSource {
  readonly rows: number;
  readonly cols: number;
  /** Human-readable origin, used in error messages. */
  readonly name: string;
  read(start: number, count: number): Matrix;
}

export function matrixSource(m: Matrix, name = 'database'): RowSource {
  return { rows: m.rows, cols: m.cols, name, read: (start, count) => rowBlock(m, start, count) };
}

/** Streams a 2-d `.npy` file block by block (any numeric dtype, converted to float32). */
export function npySource(file: NpyFile): RowSource {
  if (file.shape.length !== 2) {
    throw new UserError(`${file.path}: expected a 2-d array (items × dimensions), got shape (${file.shape.join(', ')})`);
  }
  return {
    rows: file.rows,
    cols: file.rowLength,
    name: file.path,
    read: (start, count) => toMatrix(file.readRows(start, count), file.path),
  };
}

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

function prepareBlock(m: Matrix, metric: Metric, name: string, firstRow: number): Matrix {
  const bad = firstNonFiniteRow(m);
  if (bad >= 0) throw new UserError(`${name}: row ${firstRow + bad} contains NaN or infinite values; remove or repair that row`);
  if (metric !== 'cosine') return m;
  return l2NormalizeRows(m, (row) => {
    throw new UserError(`${name}: row ${firstRow + row} is a zero vector, which has no cosine distance; remove it or use --metric euclidean`);
  });
}

export interface BlockedTopK {
  /** queries × k values 2·q·x − ‖x‖², best (largest) first; ‖q − x‖² = ‖q‖² − value. */
  readonly values: Float32Array;
  readonly indices: Int32Array;
  /** Per query, ‖q‖². */
  readonly queryNorms: Float32Array;
  /** Per query, the largest squared distance to any database row. */
  readonly maxSquaredDistance: Float32Array;
  readonly engine: string;
}

/**
 * The k nearest database rows of each query by Euclidean distance, computed block by block over
 * the database and merged, plus each query's farthest squared distance. `prepare` may check or
 * transform each database block (first row index given) before use.
 */
export async function blockedTopK(
  queries: Matrix,
  source: RowSource,
  k: number,
  opts: {
    engine?: EngineChoice;
    blockElements?: number;
    onProgress?: (done: number, total: number) => void;
    prepare?: (block: Matrix, firstRow: number) => Matrix;
  } = {},
): Promise<BlockedTopK> {
  const engine = await denseEngine(opts.engine);
  const n = source.rows;
  // Copy shared memory once here rather than on every product call.
  const q = { ...queries, data: unshared(queries.data) };
  const nq = q.rows;
  const queryNorms = rowSquaredNorms(q);
  const budget = opts.blockElements ?? 32 * 1024 * 1024;
  const qBlock = Math.max(1, Math.min(nq, 1024));
  const dbBlock = Math.max(1, Math.min(n, Math.floor(budget / qBlock)));
  const values = new Float32Array(nq * k);
  const indices = new Int32Array(nq * k);
  const minimum = new Float32Array(nq).fill(Infinity);
  let bestLen = 0;
  const nextVals = new Float32Array(nq * k);
  const nextIdx = new Int32Array(nq * k);
  for (let start = 0; start < n; start += dbBlock) {
    const count = Math.min(dbBlock, n - start);
    const raw = source.read(start, count);
    const prepared = opts.prepare ? opts.prepare(raw, start) : raw;
    const x = { ...prepared, data: unshared(prepared.data) };
    const xNorms = rowSquaredNorms(x);
    const blockK = Math.min(k, count);
    let newLen = 0;
    for (let qs = 0; qs < nq; qs += qBlock) {
      const qc = Math.min(qBlock, nq - qs);
      const res = await engine.topK(rowBlock(q, qs, qc), x, xNorms, blockK);
      for (let i = 0; i < qc; i++) {
        const row = qs + i;
        if (res.minimum[i]! < minimum[row]!) minimum[row] = res.minimum[i]!;
        const bIdx = res.indices.subarray(i * blockK, (i + 1) * blockK);
        for (let j = 0; j < blockK; j++) bIdx[j]! += start;
        newLen = mergeTopK(
          values.subarray(row * k, row * k + bestLen), indices.subarray(row * k, row * k + bestLen),
          res.values.subarray(i * blockK, (i + 1) * blockK), bIdx,
          k, nextVals.subarray(row * k, (row + 1) * k), nextIdx.subarray(row * k, (row + 1) * k),
        );
      }
    }
    bestLen = newLen;
    values.set(nextVals);
    indices.set(nextIdx);
    opts.onProgress?.(start + count, n);
  }
  const maxSquaredDistance = new Float32Array(nq);
  for (let i = 0; i < nq; i++) maxSquaredDistance[i] = Math.max(0, queryNorms[i]! - minimum[i]!);
  return { values, indices, queryNorms, maxSquaredDistance, engine: engine.name };
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

/**
 * Full rankings (every database item, nearest first) of each query, for evaluation protocols that
 * need the complete list. Computed by query blocks of dense products; ties keep the lower index.
 */
export async function fullRanking(db: Matrix, queries: Matrix | null, metric: Metric = 'cosine', engine?: EngineChoice): Promise<Ranking> {
  const x = prepareBlock(db, metric, 'database', 0);
  const q = queries === null ? x : prepareBlock(queries, metric, 'queries', 0);
  if (q.cols !== x.cols) {
    throw new UserError(`queries have ${q.cols} dimensions but the database has ${x.cols}; use descriptors from the same extractor`);
  }
  const e = await denseEngine(engine);
  const xNorms = metric === 'euclidean' ? rowSquaredNorms(x) : null;
  const n = x.rows;
  const indices = new Int32Array(q.rows * n);
  const qBlock = Math.max(1, Math.floor((16 * 1024 * 1024) / n));
  for (let qs = 0; qs < q.rows; qs += qBlock) {
    const qc = Math.min(qBlock, q.rows - qs);
    const scores = await e.abt(rowBlock(q, qs, qc), x);
    // Larger is nearer: cos for cosine, 2·q·x − ‖x‖² for Euclidean.
    if (xNorms) for (let i = 0; i < qc; i++) for (let j = 0; j < n; j++) scores[i * n + j] = 2 * scores[i * n + j]! - xNorms[j]!;
    indices.set(rankingFromScores(scores, qc, n, 'descending').indices, qs * n);
  }
  return { queries: q.rows, length: n, dbSize: n, indices };
}
