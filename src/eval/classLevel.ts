/** Class-level retrieval (relevant = same label) and the UKBench N-S score. */
import { UserError } from '../errors.js';
import { standardAp } from './ap.js';
import { rankPositions, sortedPositions, type Ranking } from './ranking.js';

export interface ClassMapResult {
  /** Mean non-interpolated AP over queries with at least one relevant item, in [0, 1]. */
  readonly mAP: number;
  /** Per-query AP (NaN when the query has no relevant item). */
  readonly aps: Float64Array;
}

function checkSizes(r: Ranking, queryLabels: Int32Array, dbLabels: Int32Array, what: string): void {
  if (queryLabels.length !== r.queries) throw new UserError(`${r.queries} queries but ${queryLabels.length} query ${what}; give one per query row`);
  if (dbLabels.length !== r.dbSize) throw new UserError(`${r.dbSize} database items but ${dbLabels.length} database ${what}; give one per database row`);
}

/**
 * Class mAP. `selfIndex[q]` is the database index of query q itself (self-retrieval), which is
 * then removed from its ranking and from its relevant set; -1 or omitted when queries are separate.
 */
export function classMap(r: Ranking, queryLabels: Int32Array, dbLabels: Int32Array, selfIndex?: Int32Array): ClassMapResult {
  checkSizes(r, queryLabels, dbLabels, 'labels');
  const byLabel = new Map<number, number[]>();
  dbLabels.forEach((l, i) => {
    let list = byLabel.get(l);
    if (!list) byLabel.set(l, (list = []));
    list.push(i);
  });
  const positions = new Int32Array(r.dbSize);
  const aps = new Float64Array(r.queries).fill(NaN);
  let sum = 0;
  let counted = 0;
  for (let q = 0; q < r.queries; q++) {
    const self = selfIndex ? selfIndex[q]! : -1;
    const relevant = (byLabel.get(queryLabels[q]!) ?? []).filter((i) => i !== self);
    if (relevant.length === 0) continue;
    rankPositions(r, q, positions);
    let ranks = sortedPositions(positions, relevant);
    if (self >= 0) {
      const selfPos = positions[self]!;
      ranks = ranks.map((p) => (p > selfPos ? p - 1 : p));
    }
    aps[q] = standardAp(ranks, relevant.length);
    sum += aps[q]!;
    counted++;
  }
  return { mAP: counted ? sum / counted : NaN, aps };
}

/**
 * N-S score (Nistér & Stewénius): the mean number of the query's group members among its top
 * `top` results (4 for UKBench, where the query itself counts), so 4 is perfect.
 */
export function nsScore(r: Ranking, queryGroups: Int32Array, dbGroups: Int32Array, top = 4): number {
  checkSizes(r, queryGroups, dbGroups, 'group ids');
  if (r.length < top) throw new UserError(`the N-S score needs the top ${top} results per query; the ranking lists ${r.length}`);
  let total = 0;
  for (let q = 0; q < r.queries; q++) {
    for (let p = 0; p < top; p++) if (dbGroups[r.indices[q * r.length + p]!] === queryGroups[q]) total++;
  }
  return total / r.queries;
}
