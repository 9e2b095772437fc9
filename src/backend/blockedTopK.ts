/**
 * The k nearest rows of a source (a matrix, or a `.npy` file streamed block by block) for each
 * query, by Euclidean distance: dense products block by block over the database, each block's
 * top k merged into the running one. What exact search and the neighbour graph are built on.
 */
import { UserError } from '../errors.js';
import { NpyFile } from '../io/npy.js';
import { rowBlock, rowSquaredNorms, toMatrix, type Matrix } from '../matrix.js';
import { denseEngine, type EngineChoice } from './dense.js';
import { unshared } from './ort.js';
import { mergeTopK } from './topk.js';

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
