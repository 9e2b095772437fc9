/**
 * The k-nearest-neighbour graph every diffusion starts from: for each item, its L nearest items
 * by squared Euclidean distance, itself first, plus its farthest squared distance (CAS divides
 * each row of distances by its maximum).
 */
import type { EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { blockedTopK, matrixSource } from '../backend/blockedTopK.js';

export interface NeighbourGraph {
  /** Number of items. */
  readonly n: number;
  /** Neighbours per item (self included). */
  readonly L: number;
  /** n × L item indices, nearest first; column 0 is the item itself. */
  readonly indices: Int32Array;
  /** n × L squared Euclidean distances matching `indices` (0 for self). */
  readonly sqDist: Float64Array;
  /** Per item, the largest squared distance to any item. */
  readonly rowMax: Float64Array;
}

/**
 * Exact L-nearest-neighbour lists of every row of X (blocked dense products). The item itself is
 * always placed first, even when duplicates tie with it.
 */
export async function neighbourGraph(
  x: Matrix,
  L: number,
  opts: { engine?: EngineChoice; onProgress?: (done: number, total: number) => void } = {},
): Promise<NeighbourGraph> {
  const n = x.rows;
  if (L > n) throw new UserError(`the neighbour graph needs ${L} neighbours per item but there are only ${n} items; use smaller k parameters or more data`);
  const best = await blockedTopK(x, matrixSource(x, 'descriptors'), L, opts);
  const indices = best.indices;
  const sqDist = new Float64Array(n * L);
  const rowMax = Float64Array.from(best.maxSquaredDistance);
  for (let i = 0; i < n; i++) {
    const o = i * L;
    let at = -1;
    for (let r = 0; r < L; r++) if (indices[o + r] === i) at = r;
    // Move self to the front (dropping the last entry when self was not listed at all).
    const from = at >= 0 ? at : L - 1;
    for (let r = from; r > 0; r--) {
      indices[o + r] = indices[o + r - 1]!;
      best.values[o + r] = best.values[o + r - 1]!;
    }
    indices[o] = i;
    sqDist[o] = 0;
    for (let r = 1; r < L; r++) sqDist[o + r] = Math.max(0, best.queryNorms[i]! - best.values[o + r]!);
  }
  return { n, L, indices, sqDist, rowMax };
}
