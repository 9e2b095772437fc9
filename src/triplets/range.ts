/**
 * A data-aware triplet range (docs/algorithms.md §4, "The triplet range from the data"): the range
 * k must reach just past an item's relevant set, which the tool does not know. The teacher's own
 * distances tell it: along an item's ranked list they rise slowly inside its cluster and jump
 * where the cluster ends. The median position of each item's largest jump estimates the relevant
 * set's size; k is a fixed multiple of it.
 */
import { UserError } from '../errors.js';

/** How far each list is scanned for its largest jump, and how k follows from the estimate. */
export const RANGE_RULE = Object.freeze({ scan: 300, multiple: 8, min: 10 });

/**
 * How the contrastive positives follow from the same jumps: `core` × the median jump position
 * among the items whose largest jump comes after position `duplicate` (a jump right after the
 * first or second neighbour marks a near-duplicate, not the end of a set). The core stays inside
 * the set, where the teacher's ranking is surest (docs/algorithms.md, "Positives").
 */
export const POSITIVES_RULE = Object.freeze({ core: 0.8, duplicate: 2 });

export interface TripletRange {
  /** The median position of the largest jump in the teacher's distances: the relevant-set estimate. */
  readonly relevantSet: number;
  /** Quartiles of the per-item estimates. */
  readonly quartiles: readonly [number, number];
  /** The triplet range: multiple × relevantSet, within [min, the ranking's length]. */
  readonly k: number;
  /** The contrastive positives: POSITIVES_RULE's core of the sets past near-duplicates (at least 2). */
  readonly positives: number;
  readonly how: string;
}

/** The position (1-based count of items before it) of the largest rise in one list of ascending distances. */
function largestJump(scores: Float32Array, start: number, length: number): number {
  let best = -Infinity;
  let at = 1;
  for (let j = 0; j + 1 < length; j++) {
    const gap = scores[start + j + 1]! - scores[start + j]!;
    if (gap > best) {
      best = gap;
      at = j + 1;
    }
  }
  return at;
}

/**
 * The triplet range for a self-ranking whose `scores` (rows × length) are distances in ascending
 * order, best first (as `ddistill diffuse` writes them for CAS, LCDP and Iscen).
 */
export function tripletRange(scores: Float32Array, rows: number, order: 'ascending' | 'descending' = 'ascending'): TripletRange {
  if (rows < 1 || scores.length % rows !== 0) throw new RangeError(`${scores.length} scores cannot be split into ${rows} rows`);
  const length = scores.length / rows;
  if (length < 3) throw new UserError(`the teacher lists ${length} neighbours per item; --triplet-range auto needs at least 3 (rank more with --top-k)`);
  const values = order === 'ascending' ? scores : scores.map((s) => -s);
  const scan = Math.min(length, RANGE_RULE.scan);
  const jumps = Array.from({ length: rows }, (_, i) => largestJump(values, i * length, scan)).sort((a, b) => a - b);
  const at = (p: number) => jumps[Math.floor((rows - 1) * p)]!;
  const relevantSet = at(0.5);
  const k = Math.max(2, Math.min(length, Math.max(RANGE_RULE.min, RANGE_RULE.multiple * relevantSet)));
  const past = jumps.filter((j) => j > POSITIVES_RULE.duplicate);
  const setSize = past.length > 0 ? past[Math.floor((past.length - 1) / 2)]! : relevantSet;
  const positives = Math.max(2, Math.min(length, Math.round(POSITIVES_RULE.core * setSize)));
  const how =
    `median position of the largest jump in the teacher's distances over its first ${scan} neighbours: ${relevantSet} (quartiles ${at(0.25)}–${at(0.75)}); k = ${RANGE_RULE.multiple} × ${relevantSet}, at least ${RANGE_RULE.min}, at most the ranking's ${length}; ` +
    `positives = ${POSITIVES_RULE.core} × ${setSize} (the median past position ${POSITIVES_RULE.duplicate}, ${past.length} of ${rows} items) = ${positives}`;
  return { relevantSet, quartiles: [at(0.25), at(0.75)], k, positives, how };
}
