/**
 * The geodesic ranking kernel against a plain Dijkstra: settle nodes one by one in order of
 * (distance, index) by scanning every node, keep the first `searchLimit`, and rank the database
 * nodes among them by (1 − λ)·G + λ·D. Edge weights of exactly 1 make ties common, as CAS's
 * Jensen–Shannon graph does for pairs without shared support.
 */
import { describe, expect, it } from 'vitest';
import { geodesicRank } from '../src/diffusion/casKernels.js';
import { localityOrder } from '../src/graph/order.js';
import { rng } from './helpers.js';

function instance(n: number, d: number, L: number, seed: number) {
  const rand = rng(seed);
  const x = Float32Array.from({ length: n * d }, () => rand() * 2 - 1);
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let l = 0; l < d; l++) norms[i]! += x[i * d + l]! ** 2;
  const sq = (a: number, b: number) => {
    let s = 0;
    for (let l = 0; l < d; l++) s += (x[a * d + l]! - x[b * d + l]!) ** 2;
    return s;
  };
  // Neighbour lists (self first) and each row's largest squared distance.
  const lists = new Int32Array(n * L);
  const sqDist = new Float64Array(n * L);
  const rowMax = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => (a === i ? -1 : b === i ? 1 : sq(i, a) - sq(i, b)));
    for (let r = 0; r < L; r++) {
      lists[i * L + r] = order[r]!;
      sqDist[i * L + r] = r === 0 ? 0 : sq(i, order[r]!);
    }
    rowMax[i] = sq(i, order[n - 1]!);
  }
  // A symmetric graph: each node linked to 6 random others; most weights are exactly 1, so many
  // nodes tie in distance.
  const adj: Map<number, number>[] = Array.from({ length: n }, () => new Map());
  for (let i = 0; i < n; i++) {
    for (let e = 0; e < 6; e++) {
      const j = Math.floor(rand() * n);
      if (j === i || adj[i]!.has(j)) continue;
      const w = rand() < 0.8 ? 1 : rand() < 0.5 ? 0.5 : rand();
      adj[i]!.set(j, w);
      adj[j]!.set(i, w);
    }
  }
  const gIndptr = new Int32Array(n + 1);
  adj.forEach((m, i) => (gIndptr[i + 1] = gIndptr[i]! + m.size));
  const gNbr = new Int32Array(gIndptr[n]!);
  const gW = new Float64Array(gIndptr[n]!);
  adj.forEach((m, i) => [...m].forEach(([j, w], t) => ((gNbr[gIndptr[i]! + t] = j), (gW[gIndptr[i]! + t] = w))));
  return { n, d, L, x, norms, lists, sqDist, rowMax, adj, sq, gIndptr, gNbr, gW };
}

/** Reference: rows ranked by a scan-every-node Dijkstra that settles at most `limit` nodes. */
function reference(g: ReturnType<typeof instance>, k: number, limit: number, lam: number, cap: number) {
  const out: { idx: number[]; score: number[] }[] = [];
  for (let s = 0; s < g.n; s++) {
    const dist = new Array<number>(g.n).fill(Infinity);
    const done = new Array<boolean>(g.n).fill(false);
    dist[s] = 0;
    const settled: number[] = [];
    while (settled.length < limit) {
      let u = -1;
      for (let v = 0; v < g.n; v++) if (!done[v] && dist[v]! < Infinity && (u < 0 || dist[v]! < dist[u]! || (dist[v] === dist[u] && v < u))) u = v;
      if (u < 0) break;
      done[u] = true;
      settled.push(u);
      for (const [v, w] of g.adj[u]!) if (!done[v] && dist[u]! + w < dist[v]!) dist[v] = dist[u]! + w;
    }
    const D = (u: number) => g.sq(s, u) / g.rowMax[s]!;
    const cands = settled.filter((u) => u !== s).map((u) => ({ u, f: (1 - lam) * dist[u]! + lam * D(u) }));
    if (cands.length < k) for (let u = 0; u < g.n; u++) if (u !== s && !done[u]) cands.push({ u, f: (1 - lam) * cap + lam * D(u) });
    cands.sort((a, b) => a.f - b.f || a.u - b.u);
    out.push({ idx: cands.slice(0, k).map((c) => c.u), score: cands.slice(0, k).map((c) => c.f) });
  }
  return out;
}

describe('geodesic ranking (CAS truncated mode)', () => {
  const g = instance(300, 6, 20, 5);
  const k = 15;
  const run = (limit: number, order: Int32Array | null) => {
    const outIdx = new Int32Array(g.n * k);
    const outScore = new Float32Array(g.n * k);
    geodesicRank({
      from: 0, to: g.n, n: g.n, nq: 0, ndb: g.n, L: g.L, k, lam: 0.3, cap: 50, searchLimit: limit, selfMode: true,
      gIndptr: g.gIndptr, gNbr: g.gNbr, gW: g.gW, lists: g.lists, sqDist: g.sqDist, rowMax: g.rowMax,
      x: g.x, d: g.d, norms: g.norms, D: null, dFirst: 0, outIdx, outScore, order,
    });
    return { outIdx, outScore };
  };

  it.each([30, 80, 300])('settles the first %i nodes by (distance, index) and ranks them as a plain Dijkstra does', (limit) => {
    const want = reference(g, k, limit, 0.3, 50);
    const got = run(limit, null);
    want.forEach((w, s) => {
      expect(Array.from(got.outIdx.subarray(s * k, (s + 1) * k))).toEqual(w.idx);
      w.score.forEach((f, t) => expect(got.outScore[s * k + t]).toBeCloseTo(f, 5));
    });
  });

  it('ranking the rows in locality order changes nothing', () => {
    const graph = { n: g.n, L: g.L, indices: g.lists, sqDist: g.sqDist, rowMax: g.rowMax };
    const order = localityOrder(graph, 0, g.n);
    expect(Array.from(order).sort((a, b) => a - b)).toEqual(Array.from({ length: g.n }, (_, i) => i));
    const plain = run(80, null);
    const ordered = run(80, order);
    expect(Array.from(ordered.outIdx)).toEqual(Array.from(plain.outIdx));
    expect(Array.from(ordered.outScore)).toEqual(Array.from(plain.outScore));
  });
});
