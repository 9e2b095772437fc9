/**
 * A locality order of the items of a neighbour graph: breadth-first over each item's nearest
 * neighbours, so items close in the graph come close in the order. Work done item after item in
 * this order (a bounded graph search from each) keeps touching the same memory, which the caches
 * then hold; in index order, consecutive items lie anywhere in the collection.
 */
import type { NeighbourGraph } from './knn.js';

/** Nearest neighbours followed per item: enough to keep clusters together, cheap to walk. */
const FOLLOWED = 10;

/**
 * The items first … first + count − 1 (graph nodes), as offsets from `first`, in breadth-first
 * order over the graph; components are taken in index order of their first item.
 */
export function localityOrder(graph: NeighbourGraph, first: number, count: number): Int32Array {
  const { n, L, indices } = graph;
  const followed = Math.min(FOLLOWED, L);
  const seen = new Uint8Array(n);
  const queue = new Int32Array(n);
  const out = new Int32Array(count);
  let head = 0;
  let tail = 0;
  let at = 0;
  for (let start = 0; start < n; start++) {
    if (seen[start]) continue;
    seen[start] = 1;
    queue[tail++] = start;
    while (head < tail) {
      const u = queue[head++]!;
      if (u >= first && u < first + count) out[at++] = u - first;
      for (let r = 1; r < followed; r++) {
        const v = indices[u * L + r]!;
        if (!seen[v]) {
          seen[v] = 1;
          queue[tail++] = v;
        }
      }
    }
  }
  return out;
}
