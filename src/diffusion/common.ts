/** What every diffusion shares: its output, progress/timing hooks, and input preparation. */
import { denseEngine, type EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { firstNonFiniteRow, l2NormalizeRows, rowBlock, rowSquaredNorms, type Matrix } from '../matrix.js';
import { selectTopK } from '../search/topk.js';

/**
 * Ranked neighbours by diffusion. Query re-ranking: one row per query, database indices.
 * Self-ranking: one row per database item, the other items (itself left out).
 */
export interface DiffusionResult {
  readonly mode: 'query' | 'self';
  readonly rows: number;
  readonly k: number;
  /** rows × k database indices, best first. */
  readonly indices: Int32Array;
  /** rows × k scores matching `indices`; see `order`. */
  readonly scores: Float32Array;
  /** 'ascending': scores are distances (smaller is better); 'descending': similarities. */
  readonly order: 'ascending' | 'descending';
  /** Seconds spent per stage, in order. */
  readonly timings: Record<string, number>;
  /** Values the method chose from the data (σ, iterations run, …), for the manifest. */
  readonly info?: Record<string, number | string | boolean>;
}

export interface DiffusionRunOptions {
  /** Neighbours kept per output row (capped at the database size; default: 1,000). */
  readonly topK?: number;
  readonly engine?: EngineChoice;
  /** L2-normalise the descriptors first (default true). */
  readonly normalize?: boolean;
  /** Progress of the current stage, for long runs. */
  readonly onProgress?: (stage: string, done: number, total: number) => void;
}

export const DEFAULT_TOP_K = 1000;

/** Times named stages. */
export class StageTimer {
  readonly timings: Record<string, number> = {};
  private last = performance.now();

  lap(stage: string): void {
    const now = performance.now();
    this.timings[stage] = Number(((now - this.last) / 1000).toFixed(3));
    this.last = now;
  }
}

/**
 * Checks and stacks the inputs: X = [queries; database] (queries are graph nodes, as in the CAS
 * reference code), L2-normalised unless told otherwise.
 */
export function prepareNodes(db: Matrix, queries: Matrix | null, normalize = true): { x: Matrix; nq: number; ndb: number } {
  if (queries && queries.cols !== db.cols) {
    throw new UserError(`queries have ${queries.cols} dimensions but the database has ${db.cols}; use descriptors from the same extractor`);
  }
  for (const [m, name] of [[db, 'database'], [queries, 'queries']] as const) {
    if (!m) continue;
    const bad = firstNonFiniteRow(m);
    if (bad >= 0) throw new UserError(`${name}: row ${bad} contains NaN or infinite values; remove or repair that row`);
  }
  const nq = queries?.rows ?? 0;
  const d = db.cols;
  // One copy, in shared memory (worker kernels read it), normalised in place.
  const data = new Float32Array(new SharedArrayBuffer(Math.max(4, (nq + db.rows) * d * 4)), 0, (nq + db.rows) * d);
  if (queries) data.set(queries.data);
  data.set(db.data, nq * d);
  const x: Matrix = { rows: nq + db.rows, cols: d, data };
  if (normalize) {
    l2NormalizeRows(x, (row) => {
      const what = row < nq ? `query row ${row}` : `database row ${row - nq}`;
      throw new UserError(`${what} is a zero vector and cannot be L2-normalised; remove it or pass normalize=false (--no-normalize)`);
    }, data);
  }
  return { x, nq, ndb: db.rows };
}

/**
 * Rows [first, first + count) of the squared-distance matrix between nodes and the nodes
 * [colStart, colStart + colCount), each row divided by the node's farthest squared distance
 * (rowMax) — the D of the CAS paper — or left as they are when rowMax is null.
 */
export async function normalizedDistanceRows(
  x: Matrix,
  first: number,
  count: number,
  colStart: number,
  colCount: number,
  rowMax: Float64Array | null,
  engine?: EngineChoice,
): Promise<Float64Array> {
  const e = await denseEngine(engine);
  const a = rowBlock(x, first, count);
  const b = rowBlock(x, colStart, colCount);
  const dots = await e.abt(a, b);
  const an = rowSquaredNorms(a);
  const bn = rowSquaredNorms(b);
  const out = new Float64Array(count * colCount);
  for (let i = 0; i < count; i++) {
    const max = rowMax ? rowMax[first + i]! || 1 : 1;
    for (let j = 0; j < colCount; j++) {
      const node = colStart + j;
      out[i * colCount + j] = node === first + i ? 0 : Math.max(0, an[i]! + bn[j]! - 2 * dots[i * colCount + j]!) / max;
    }
  }
  return out;
}

/**
 * Keeps the k best of a row of scores — smallest for distances ('ascending'), largest for
 * similarities ('descending'), ties to the lower index, `exclude` left out — as row r of out.
 */
export function keepBest(
  scores: Float64Array,
  k: number,
  out: DiffusionResultBuffers,
  r: number,
  order: 'ascending' | 'descending',
  exclude = -1,
): void {
  const sign = order === 'ascending' ? -1 : 1;
  const keyed = new Float64Array(scores.length);
  for (let j = 0; j < scores.length; j++) keyed[j] = j === exclude ? -Infinity : sign * scores[j]!;
  const vals = new Float64Array(k);
  const idx = new Int32Array(k);
  selectTopK(keyed, k, vals, idx);
  out.indices.set(idx, r * k);
  for (let t = 0; t < k; t++) out.scores[r * k + t] = sign * vals[t]!;
}

export interface DiffusionResultBuffers {
  indices: Int32Array;
  scores: Float32Array;
}

/** v·ln v for each value (0 for 0), the per-entry term of the Jensen–Shannon kernels. */
export function xLogX(values: Float64Array, out: Float64Array = new Float64Array(values.length)): Float64Array {
  for (let q = 0; q < values.length; q++) out[q] = values[q]! > 0 ? values[q]! * Math.log(values[q]!) : 0;
  return out;
}
