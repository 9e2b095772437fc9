/** Mean interpolated precision–recall curves (for reports). */
import { removeIgnored } from './ap.js';
import { rankPositions, sortedPositions, type Ranking } from './ranking.js';

export interface QueryRelevance {
  readonly positives: ArrayLike<number>;
  /** Items removed from the ranking before measuring (revisited junk). */
  readonly ignored?: ArrayLike<number>;
}

/**
 * Precision interpolated at recall levels 0, 1/(points−1), …, 1 (the maximum precision at any
 * recall ≥ the level), averaged over queries with at least one positive.
 */
export function meanPrecisionRecall(r: Ranking, relevanceOf: (q: number) => QueryRelevance, points = 11): number[] {
  const curve = new Float64Array(points);
  const positions = new Int32Array(r.dbSize);
  let counted = 0;
  for (let q = 0; q < r.queries; q++) {
    const rel = relevanceOf(q);
    if (rel.positives.length === 0) continue;
    rankPositions(r, q, positions);
    let ranks = sortedPositions(positions, rel.positives);
    if (rel.ignored && rel.ignored.length > 0) ranks = removeIgnored(ranks, sortedPositions(positions, rel.ignored));
    const P = ranks.length;
    // precision at each positive, then the running maximum from the end (interpolation).
    const prec = Float64Array.from(ranks, (rank, j) => (j + 1) / (rank + 1));
    for (let j = P - 2; j >= 0; j--) prec[j] = Math.max(prec[j]!, prec[j + 1]!);
    for (let i = 0; i < points; i++) {
      const level = i / (points - 1);
      const j = Math.max(0, Math.ceil(level * P - 1e-9) - 1); // first positive reaching the level
      curve[i]! += prec[j]!;
    }
    counted++;
  }
  return Array.from(curve, (v) => (counted ? Number((v / counted).toFixed(4)) : NaN));
}
