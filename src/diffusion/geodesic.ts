/** Shortest paths on a sparse, undirected, non-negatively weighted graph (Dijkstra). */

export interface WeightedGraph {
  readonly n: number;
  readonly indptr: Int32Array;
  readonly neighbours: Int32Array;
  readonly weights: Float64Array;
}

/**
 * Geodesic distances from `source` to every node, where every pair is also joined by a direct edge
 * of cost `cap` (so distances never exceed it): min(cap, shortest path).
 */
export function shortestPaths(g: WeightedGraph, source: number, cap: number): Float64Array {
  return settleInOrder(g, source, cap, () => true);
}

/**
 * Dijkstra from `source`, calling `settled(node, distance)` for each node in order of increasing
 * distance (below `cap`); stops early when the callback returns false. Returns the distances
 * found so far (cap for nodes not settled).
 */
export function settleInOrder(
  g: WeightedGraph,
  source: number,
  cap: number,
  settled: (node: number, distance: number) => boolean,
): Float64Array {
  const dist = new Float64Array(g.n).fill(cap);
  const done = new Uint8Array(g.n);
  // Binary heap of (distance, node) with lazy deletion.
  let hd = new Float64Array(64);
  let hn = new Int32Array(64);
  let size = 0;
  const push = (d: number, v: number) => {
    if (size === hd.length) {
      const nd = new Float64Array(size * 2);
      nd.set(hd);
      const nn = new Int32Array(size * 2);
      nn.set(hn);
      hd = nd;
      hn = nn;
    }
    let i = size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (hd[parent]! <= d) break;
      hd[i] = hd[parent]!;
      hn[i] = hn[parent]!;
      i = parent;
    }
    hd[i] = d;
    hn[i] = v;
  };
  const pop = () => {
    const v = hn[0]!;
    const last = --size;
    const d = hd[last]!;
    const n = hn[last]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && hd[c + 1]! < hd[c]!) c++;
      if (hd[c]! >= d) break;
      hd[i] = hd[c]!;
      hn[i] = hn[c]!;
      i = c;
    }
    hd[i] = d;
    hn[i] = n;
    return v;
  };
  dist[source] = 0;
  push(0, source);
  while (size > 0) {
    const du = hd[0]!;
    const u = pop();
    if (done[u]) continue;
    done[u] = 1;
    if (du >= cap) break;
    if (!settled(u, du)) break;
    for (let q = g.indptr[u]!; q < g.indptr[u + 1]!; q++) {
      const v = g.neighbours[q]!;
      const nd = du + g.weights[q]!;
      if (nd < dist[v]!) {
        dist[v] = nd;
        push(nd, v);
      }
    }
  }
  return dist;
}
