/**
 * Soft-margin triplets from a diffusion self-ranking (Zhao et al., BMVC 2018, §2.2; docs/algorithms.md
 * §4): for an anchor a, two items drawn at random from its top-k by diffusion; the better-ranked
 * is the closer c, the other the farther f; the margin is (|r_f − r_c| / k)·m0.
 */
import { UserError } from '../errors.js';

export interface TripletOptions {
  /** Range of the anchor's diffusion ranking that triplets are drawn from (paper: 300). */
  readonly k: number;
  /** Margin scale m0 (paper: 0.1). */
  readonly m0: number;
  /** Triplets drawn per anchor. */
  readonly perAnchor: number;
  /** Seed of the pseudo-random draws; the same seed gives the same triplets. */
  readonly seed: number;
  /** The item each row of the ranking belongs to (default: row i is item i); held-out items have no row. */
  readonly anchors?: Int32Array;
}

export const TRIPLET_DEFAULTS: TripletOptions = Object.freeze({ k: 300, m0: 0.1, perAnchor: 10, seed: 0 });

export interface Triplets {
  readonly count: number;
  /** count × 3 item indices: anchor, closer, farther. */
  readonly items: Int32Array;
  /** count margins (|r_f − r_c| / k)·m0. */
  readonly margins: Float32Array;
  /** count × 2 diffusion ranks (0-based) of the closer and the farther. */
  readonly ranks: Int32Array;
  /** The k actually used (capped at the ranking's length). */
  readonly k: number;
}

/** A small, fast, seedable generator (mulberry32): uniform floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Mines triplets from a self-ranking: `neighbours` is rows × length (best first, the anchor
 * itself left out), as `ddistill diffuse` writes it without queries.
 */
export function mineTriplets(neighbours: Int32Array, rows: number, options: Partial<TripletOptions> = {}): Triplets {
  const o = { ...TRIPLET_DEFAULTS, ...options };
  if (rows < 1 || neighbours.length % rows !== 0) throw new RangeError(`${neighbours.length} neighbours cannot be split into ${rows} rows`);
  const length = neighbours.length / rows;
  if (!Number.isInteger(o.k) || o.k < 2) throw new UserError(`triplet range k must be an integer ≥ 2, got ${o.k}`);
  if (!Number.isInteger(o.perAnchor) || o.perAnchor < 1) throw new UserError(`triplets per anchor must be a positive integer, got ${o.perAnchor}`);
  if (!(o.m0 >= 0)) throw new UserError(`margin scale m0 must be non-negative, got ${o.m0}`);
  if (length < 2) throw new UserError(`the ranking lists ${length} neighbour per item; triplets need at least 2`);
  if (o.anchors && o.anchors.length !== rows) throw new RangeError(`${o.anchors.length} anchors for ${rows} ranking rows`);
  const k = Math.min(o.k, length);
  const rand = seededRandom(o.seed);
  const count = rows * o.perAnchor;
  const items = new Int32Array(count * 3);
  const margins = new Float32Array(count);
  const ranks = new Int32Array(count * 2);
  let t = 0;
  for (let a = 0; a < rows; a++) {
    for (let p = 0; p < o.perAnchor; p++, t++) {
      // Two distinct ranks, uniform over the pairs of [0, k).
      const r1 = Math.floor(rand() * k);
      let r2 = Math.floor(rand() * (k - 1));
      if (r2 >= r1) r2++;
      const rc = Math.min(r1, r2);
      const rf = Math.max(r1, r2);
      items[3 * t] = o.anchors ? o.anchors[a]! : a;
      items[3 * t + 1] = neighbours[a * length + rc]!;
      items[3 * t + 2] = neighbours[a * length + rf]!;
      ranks[2 * t] = rc;
      ranks[2 * t + 1] = rf;
      margins[t] = ((rf - rc) / k) * o.m0;
    }
  }
  return { count, items, margins, ranks, k };
}

/** Anchor–positive pairs for the contrastive loss. */
export interface Pairs {
  readonly count: number;
  /** count × 2 item indices: anchor, positive. */
  readonly items: Int32Array;
}

/**
 * Mines `perAnchor` anchor–positive pairs per row of a self-ranking: the positive drawn uniformly
 * from the anchor's top `positives` (capped at the list's length). The contrastive loss takes
 * every other positive of a batch as a negative, so no negative is drawn here.
 */
export function minePairs(neighbours: Int32Array, rows: number, o: { readonly positives: number; readonly perAnchor: number; readonly seed: number; readonly anchors?: Int32Array }): Pairs {
  if (rows < 1 || neighbours.length % rows !== 0) throw new RangeError(`${neighbours.length} neighbours cannot be split into ${rows} rows`);
  if (!Number.isInteger(o.positives) || o.positives < 1) throw new UserError(`positives per anchor must be a positive integer, got ${o.positives}`);
  if (!Number.isInteger(o.perAnchor) || o.perAnchor < 1) throw new UserError(`pairs per anchor must be a positive integer, got ${o.perAnchor}`);
  if (o.anchors && o.anchors.length !== rows) throw new RangeError(`${o.anchors.length} anchors for ${rows} ranking rows`);
  const length = neighbours.length / rows;
  const top = Math.min(o.positives, length);
  const rand = seededRandom(o.seed);
  const count = rows * o.perAnchor;
  const items = new Int32Array(count * 2);
  let t = 0;
  for (let a = 0; a < rows; a++) {
    for (let p = 0; p < o.perAnchor; p++, t++) {
      items[2 * t] = o.anchors ? o.anchors[a]! : a;
      items[2 * t + 1] = neighbours[a * length + Math.floor(rand() * top)]!;
    }
  }
  return { count, items };
}
