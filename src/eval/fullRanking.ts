/**
 * Full rankings: every database item of each query, nearest first, for evaluation protocols that
 * need the complete list.
 */
import { denseEngine, type EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { rowBlock, rowSquaredNorms, type Matrix } from '../matrix.js';
import { prepareBlock, type Metric } from '../search/exact.js';
import { rankingFromScores, type Ranking } from './ranking.js';

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
