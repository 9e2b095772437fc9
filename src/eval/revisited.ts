/**
 * Revisited Oxford/Paris evaluation (Radenović et al., CVPR 2018), as revisitop's `compute_map`:
 * Easy (positives easy; ignored junk ∪ hard), Medium (positives easy ∪ hard; ignored junk),
 * Hard (positives hard; ignored junk ∪ easy). Queries without positives are left out of the mean.
 */
import { UserError } from '../errors.js';
import type { RevisitedGroundTruth } from '../io/groundTruth.js';
import { removeIgnored, revisitopPrecisionAt, trapezoidAp } from './ap.js';
import { rankPositions, sortedPositions, type Ranking } from './ranking.js';

export const REVISITED_KAPPAS = [1, 5, 10] as const;
export type Protocol = 'easy' | 'medium' | 'hard';
export const PROTOCOLS: readonly Protocol[] = ['easy', 'medium', 'hard'];

export interface ProtocolResult {
  /** Mean AP over queries with at least one positive, in [0, 1]. */
  readonly mAP: number;
  /** Mean precision at k (revisitop definition), k ∈ REVISITED_KAPPAS. */
  readonly mP: Readonly<Record<number, number>>;
  /** Per-query AP; NaN for queries without positives. */
  readonly aps: Float64Array;
}

export type RevisitedResult = Readonly<Record<Protocol, ProtocolResult>>;

function concat(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function split(gnd: RevisitedGroundTruth['gnd'][number], protocol: Protocol): { ok: Int32Array; junk: Int32Array } {
  switch (protocol) {
    case 'easy':
      return { ok: gnd.easy, junk: concat(gnd.junk, gnd.hard) };
    case 'medium':
      return { ok: concat(gnd.easy, gnd.hard), junk: gnd.junk };
    case 'hard':
      return { ok: gnd.hard, junk: concat(gnd.junk, gnd.easy) };
  }
}

/**
 * Scores a ranking (one row per ground-truth query, in `qimlist` order) under the three protocols.
 */
export function revisitedMap(r: Ranking, gt: RevisitedGroundTruth): RevisitedResult {
  if (r.queries !== gt.gnd.length) {
    throw new UserError(`the ranking has ${r.queries} queries but the ground truth has ${gt.gnd.length}; give one row per query in qimlist order`);
  }
  if (r.dbSize !== gt.imlist.length) {
    throw new UserError(`the ranking is over ${r.dbSize} database items but the ground truth lists ${gt.imlist.length}; use the descriptors of imlist, in order`);
  }
  const positions = new Int32Array(r.dbSize);
  const perProtocol = PROTOCOLS.map(() => ({
    aps: new Float64Array(r.queries).fill(NaN),
    pr: new Float64Array(REVISITED_KAPPAS.length),
    counted: 0,
  }));
  for (let q = 0; q < r.queries; q++) {
    rankPositions(r, q, positions);
    PROTOCOLS.forEach((protocol, p) => {
      const { ok, junk } = split(gt.gnd[q]!, protocol);
      if (ok.length === 0) return;
      const acc = perProtocol[p]!;
      const pos = removeIgnored(sortedPositions(positions, ok), sortedPositions(positions, junk));
      acc.aps[q] = trapezoidAp(pos, ok.length);
      REVISITED_KAPPAS.forEach((k, j) => (acc.pr[j]! += revisitopPrecisionAt(pos, k)));
      acc.counted++;
    });
  }
  const out = {} as Record<Protocol, ProtocolResult>;
  PROTOCOLS.forEach((protocol, p) => {
    const acc = perProtocol[p]!;
    let sum = 0;
    for (const ap of acc.aps) if (!Number.isNaN(ap)) sum += ap;
    const mP: Record<number, number> = {};
    REVISITED_KAPPAS.forEach((k, j) => (mP[k] = acc.counted ? acc.pr[j]! / acc.counted : NaN));
    out[protocol] = { mAP: acc.counted ? sum / acc.counted : NaN, mP, aps: acc.aps };
  });
  return out;
}
