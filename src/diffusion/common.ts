/** What every diffusion shares: its output, progress/timing hooks, and input preparation. */
import { denseEngine, type EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { firstNonFiniteRow, l2NormalizeRows, rowBlock, rowSquaredNorms, type Matrix } from '../matrix.js';
import { selectTopK } from '../backend/topk.js';

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
 * similarities ('descending'), `exclude` left out — as row r of out. Equal scores are ordered by
 * `base(j)`, the base (Euclidean) distance to item j, when given, and then by index: items a
 * truncated diffusion never reached all share one score, and the base similarity, not the file
 * order, decides which of them complete the list (docs/algorithms.md §5).
 */
export function keepBest(
  scores: Float64Array,
  k: number,
  out: DiffusionResultBuffers,
  r: number,
  order: 'ascending' | 'descending',
  exclude = -1,
  base?: (j: number) => number,
): void {
  const sign = order === 'ascending' ? -1 : 1;
  const keyed = new Float64Array(scores.length);
  for (let j = 0; j < scores.length; j++) keyed[j] = j === exclude ? -Infinity : sign * scores[j]!;
  const vals = new Float64Array(k);
  const idx = new Int32Array(k);
  selectTopK(keyed, k, vals, idx);
  if (base) breakTiesByBase(keyed, vals, idx, exclude, base);
  out.indices.set(idx, r * k);
  for (let t = 0; t < k; t++) out.scores[r * k + t] = sign * vals[t]!;
}

/**
 * Reorders a top-k list (vals best first, ties by index) so that equal scores go by base distance:
 * every item scoring at least the k-th score (the list, and all that tie with its last place) is
 * sorted by (score, base distance, index), and the first k are kept. The scores by position do not
 * change.
 */
function breakTiesByBase(keyed: Float64Array, vals: Float64Array, idx: Int32Array, exclude: number, base: (j: number) => number): void {
  const k = idx.length;
  if (k === 0) return;
  const last = vals[k - 1]!;
  let tiedWithLast = 0;
  for (let j = 0; j < keyed.length; j++) if (keyed[j] === last && j !== exclude) tiedWithLast++;
  let tiedInside = false;
  for (let t = 1; t < k - 1 && !tiedInside; t++) tiedInside = vals[t] === vals[t - 1];
  if (tiedWithLast === 1 && !tiedInside) return; // no equal scores: the order is already final
  const candidates: number[] = [];
  for (let j = 0; j < keyed.length; j++) if (keyed[j]! >= last && j !== exclude) candidates.push(j);
  const d = new Map(candidates.map((j) => [j, base(j)]));
  candidates.sort((a, b) => keyed[b]! - keyed[a]! || d.get(a)! - d.get(b)! || a - b);
  idx.set(candidates.slice(0, k));
}

/** Squared Euclidean distance from node `node` to database item j (nodes: queries, then the database). */
export function baseDistance(x: Matrix, nq: number, node: number): (j: number) => number {
  const d = x.cols;
  const o = node * d;
  return (j) => {
    const p = (nq + j) * d;
    let s = 0;
    for (let l = 0; l < d; l++) {
      const v = x.data[o + l]! - x.data[p + l]!;
      s += v * v;
    }
    return s;
  };
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
