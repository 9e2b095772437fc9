/**
 * Rankings: for each query, database indices best first. A ranking may be truncated to its top-K
 * (as search and diffusion write them); evaluation then completes it with the unlisted database
 * items after the listed ones: by their base (Euclidean) distance to the query when the ranking
 * carries a `tail` (the standard for truncated re-ranking, docs/algorithms.md §6), else in index
 * order, the pessimistic-but-deterministic reading of "not retrieved".
 */
import { UserError } from '../errors.js';

export interface Ranking {
  /** Number of queries. */
  readonly queries: number;
  /** Entries per query (K ≤ dbSize). */
  readonly length: number;
  /** Size of the database the indices point into. */
  readonly dbSize: number;
  /** queries × length database indices, best first. */
  readonly indices: Int32Array;
  /**
   * The order of the items a truncated list leaves out (e.g. by base distance): `order(q)` lists
   * database items best first; listed items are skipped. Absent: index order.
   */
  readonly tail?: (q: number) => ArrayLike<number>;
}

export function ranking(indices: Int32Array, queries: number, dbSize: number): Ranking {
  if (queries <= 0 || indices.length % queries !== 0) {
    throw new RangeError(`ranking of ${indices.length} entries cannot be split into ${queries} queries`);
  }
  const length = indices.length / queries;
  if (length > dbSize) throw new UserError(`ranking lists ${length} items per query but the database has only ${dbSize}`);
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i]!;
    if (v < 0 || v >= dbSize || !Number.isInteger(v)) {
      throw new UserError(`ranking entry ${i} (query ${Math.floor(i / length)}) = ${v} is not a database index in 0..${dbSize - 1}`);
    }
  }
  return { queries, length, dbSize, indices };
}

/**
 * Position (0-based) of every database item in query q's ranking, completing a truncated ranking
 * with the unlisted items in `tail` order, or index order. Writes into `out` (length dbSize).
 */
export function rankPositions(r: Ranking, q: number, out = new Int32Array(r.dbSize)): Int32Array {
  out.fill(-1);
  const base = q * r.length;
  for (let p = 0; p < r.length; p++) {
    const idx = r.indices[base + p]!;
    if (out[idx] !== -1) throw new UserError(`ranking of query ${q} lists database item ${idx} twice`);
    out[idx] = p;
  }
  let next = r.length;
  if (next < r.dbSize && r.tail) {
    const order = r.tail(q);
    for (let t = 0; t < order.length; t++) if (out[order[t]!] === -1) out[order[t]!] = next++;
  }
  if (next < r.dbSize) for (let i = 0; i < r.dbSize; i++) if (out[i] === -1) out[i] = next++;
  return out;
}

/** Sorted positions of the given items in a query's ranking, read from `rankPositions` output. */
export function sortedPositions(positions: Int32Array, items: ArrayLike<number>): Int32Array {
  const out = new Int32Array(items.length);
  for (let i = 0; i < items.length; i++) out[i] = positions[items[i]!]!;
  return out.sort();
}

/**
 * Full rankings from a dense queries × n score matrix, by ascending (distances) or descending
 * (similarities) score; ties keep the lower index first.
 */
export function rankingFromScores(scores: Float32Array, queries: number, n: number, order: 'ascending' | 'descending'): Ranking {
  if (scores.length !== queries * n) throw new RangeError(`score matrix has ${scores.length} values, expected ${queries}×${n}`);
  const indices = new Int32Array(queries * n);
  const idx = new Uint32Array(n);
  const sign = order === 'ascending' ? 1 : -1;
  for (let q = 0; q < queries; q++) {
    const row = scores.subarray(q * n, (q + 1) * n);
    for (let i = 0; i < n; i++) idx[i] = i;
    idx.sort((a, b) => sign * (row[a]! - row[b]!) || a - b);
    indices.set(idx, q * n);
  }
  return { queries, length: n, dbSize: n, indices };
}
