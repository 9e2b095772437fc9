/**
 * `npm run bench:ann`: exact vs approximate search over a collection of 100,000 unit-length
 * 128-d embeddings (clustered synthetic: 1,000 clusters, as distilled embeddings of a photo
 * collection group by object), in one run. The collection's own parts are measured: the LanceDB
 * table (src/collection/store.ts), the HNSW index (usearch, src/collection/ann.ts) and exact search
 * (src/search/exact.ts); LanceDB's own HNSW index (hnswSq) is measured alongside, as the
 * alternative. Queries are 1,000 held-out points of the same clusters.
 * Last line: {"n", "recall10", "speedup", "p50ms"} (speedup: single-query throughput, ANN / exact).
 */
import * as lancedb from '@lancedb/lancedb';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnnIndex, ANN_DEFAULTS } from '../src/collection/ann.js';
import { itemRows, ItemStore, TABLE } from '../src/collection/store.js';
import { l2NormalizeRows, rowBlock, type Matrix } from '../src/matrix.js';
import { exactSearch } from '../src/search/exact.js';
import { clustered } from './clustered.js';

const n = Number(process.env.ANN_N ?? 100_000);
const d = 128;
const nq = 1000;
const k = 10;
const all = clustered(n + nq, d, (n + nq) / 1000, 7);
l2NormalizeRows(all, () => { throw new Error('zero row'); }, all.data);
const db: Matrix = { rows: n, cols: d, data: all.data.subarray(0, n * d) };
const queries: Matrix = { rows: nq, cols: d, data: all.data.subarray(n * d) };
const threads = availableParallelism();
const dir = mkdtempSync(join(tmpdir(), 'bench-ann-'));
const seconds = (t: number) => (performance.now() - t) / 1000;
const sizeOf = (p: string): number => (statSync(p).isDirectory() ? readdirSync(p).reduce((s, f) => s + sizeOf(join(p, f)), 0) : statSync(p).size);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const recall = (got: Int32Array, want: Int32Array, rows: number) => {
  let hit = 0;
  for (let r = 0; r < rows; r++) {
    const truth = new Set(want.subarray(r * k, (r + 1) * k));
    for (let t = 0; t < k; t++) if (truth.has(got[r * k + t]!)) hit++;
  }
  return hit / (rows * k);
};
/** Per-query latencies (ms) of `fn` over the first `count` queries, and queries per second. */
async function singleQueries(count: number, fn: (q: number) => unknown): Promise<{ p50: number; p99: number; qps: number }> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let q = 0; q < count; q++) {
    const t = performance.now();
    await fn(q);
    lat.push(performance.now() - t);
  }
  const qps = count / seconds(t0);
  lat.sort((a, b) => a - b);
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), qps };
}
const row = (q: number) => queries.data.subarray(q * d, (q + 1) * d);

try {
  console.log(`${n} × ${d} embeddings (1,000 clusters), ${nq} held-out queries, k = ${k}, ${threads} threads`);
  let t = performance.now();
  const store = await ItemStore.open(join(dir, 'items.lance'));
  for (let b = 0; b < n; b += 20_000) await store.append(itemRows(rowBlock(db, b, Math.min(20_000, n - b)), b));
  const writeS = seconds(t);
  store.close();

  // Exact: the ground truth (batched), then one query at a time.
  t = performance.now();
  const truth = (await exactSearch(db, queries, { k, metric: 'euclidean' })).indices;
  const exactBatchQps = nq / seconds(t);
  const exactSingle = await singleQueries(200, (q) => exactSearch(db, { rows: 1, cols: d, data: row(q) }, { k, metric: 'euclidean' }));

  // usearch HNSW, as a collection builds it.
  t = performance.now();
  const ann = AnnIndex.empty(d, ANN_DEFAULTS);
  ann.add(db, 0, threads);
  const buildS = seconds(t);
  ann.save(join(dir, 'index.usearch'));
  const annIds = new Int32Array(nq * k);
  const annSingle = await singleQueries(nq, (q) => annIds.set(ann.search(row(q), k).ids, q * k));
  t = performance.now();
  ann.searchMany(queries, k, threads);
  const annBatchQps = nq / seconds(t);
  const recall10 = recall(annIds, truth, nq);

  // LanceDB's own index on the same table, for comparison.
  const lance = await lancedb.connect(join(dir, 'items.lance'));
  const table = await lance.openTable(TABLE);
  t = performance.now();
  await table.createIndex('vector', { config: lancedb.Index.hnswSq({ distanceType: 'l2' }) });
  const lanceBuildS = seconds(t);
  const lanceIds = new Int32Array(nq * k);
  const lanceSingle = await singleQueries(300, async (q) => {
    const hits = (await table.vectorSearch(Array.from(row(q))).distanceType('l2').limit(k).toArray()) as { id: number }[];
    lanceIds.set(hits.map((h) => h.id), q * k);
  });
  const lanceRecall = recall(lanceIds, truth, 300);
  lance.close();

  const rssMB = process.resourceUsage().maxRSS / 1024;
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  console.log('| search | recall@10 | single-query q/s | p50 ms | p99 ms | batched q/s | build s | disk MB |');
  console.log('|---|---|---|---|---|---|---|---|');
  console.log(`| exact (src/search/exact.ts) | 1.000 | ${exactSingle.qps.toFixed(0)} | ${exactSingle.p50.toFixed(2)} | ${exactSingle.p99.toFixed(2)} | ${exactBatchQps.toFixed(0)} | — | — |`);
  console.log(`| HNSW, usearch (the collection's index) | ${recall10.toFixed(3)} | ${annSingle.qps.toFixed(0)} | ${annSingle.p50.toFixed(3)} | ${annSingle.p99.toFixed(3)} | ${annBatchQps.toFixed(0)} | ${buildS.toFixed(1)} | ${mb(sizeOf(join(dir, 'index.usearch')))} |`);
  console.log(`| HNSW-SQ, LanceDB (300 queries) | ${lanceRecall.toFixed(3)} | ${lanceSingle.qps.toFixed(0)} | ${lanceSingle.p50.toFixed(2)} | ${lanceSingle.p99.toFixed(2)} | — | ${lanceBuildS.toFixed(1)} | — |`);
  console.log(`LanceDB table: written in ${writeS.toFixed(1)} s, ${mb(sizeOf(join(dir, 'items.lance')))} MB on disk with its index; peak RSS ${rssMB.toFixed(0)} MB`);
  console.log(JSON.stringify({ n, recall10: Number(recall10.toFixed(4)), speedup: Number((annSingle.qps / exactSingle.qps).toFixed(1)), p50ms: Number(annSingle.p50.toFixed(4)) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
