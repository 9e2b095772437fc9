/**
 * `npm run bench:ann`: exact vs approximate search over a collection of 100,000 unit-length
 * 128-d embeddings (clustered synthetic: 1,000 clusters, as distilled embeddings of a photo
 * collection group by object), in one run. The collection's own parts are measured: the LanceDB
 * table (src/collection/store.ts), the HNSW index (usearch, src/collection/ann.ts) and exact search
 * (src/search/exact.ts); LanceDB's own HNSW index (hnswSq) is measured alongside, as the
 * alternative. Queries are 1,000 held-out points of the same clusters. A second set, when
 * ../shared is present: the real revisited-Oxford descriptors grown to n with noisy copies.
 * Last line: {"n", "recall10", "speedup", "p50ms"} (speedup: single-query throughput, ANN / exact).
 */
import * as lancedb from '@lancedb/lancedb';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnnIndex, ANN_DEFAULTS } from '../src/collection/ann.js';
import { itemRows, ItemStore, TABLE } from '../src/collection/store.js';
import { l2NormalizeRows, readMatrix, rowBlock, type Matrix } from '../src/matrix.js';
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
/** Exact vs usearch HNSW (vs LanceDB's own index when `lanceToo`) on one set; the JSON fields. */
async function measureSet(label: string, db: Matrix, queries: Matrix, lanceToo: boolean): Promise<{ recall10: number; speedup: number; p50ms: number }> {
  const n = db.rows;
  const nq = queries.rows;
  const row = (q: number) => queries.data.subarray(q * d, (q + 1) * d);
  console.log(`\n## ${label}: ${n} × ${d} embeddings, ${nq} queries, k = ${k}, ${threads} threads\n`);
  const sub = join(dir, label.replace(/\W+/g, '-'));
  let t = performance.now();
  const store = await ItemStore.open(join(sub, 'items.lance'));
  for (let b = 0; b < n; b += 20_000) await store.append(itemRows(rowBlock(db, b, Math.min(20_000, n - b)), b));
  const writeS = seconds(t);
  store.close();

  // Exact: the ground truth (batched), then one query at a time.
  t = performance.now();
  const truth = (await exactSearch(db, queries, { k, metric: 'euclidean' })).indices;
  const exactBatchQps = nq / seconds(t);
  const exactSingle = await singleQueries(Math.min(200, nq), (q) => exactSearch(db, { rows: 1, cols: d, data: row(q) }, { k, metric: 'euclidean' }));

  // usearch HNSW, as a collection builds it.
  t = performance.now();
  const ann = AnnIndex.empty(d, ANN_DEFAULTS);
  ann.add(db, 0, threads);
  const buildS = seconds(t);
  ann.save(join(sub, 'index.usearch'));
  const annIds = new Int32Array(nq * k);
  const annSingle = await singleQueries(nq, (q) => annIds.set(ann.search(row(q), k).ids, q * k));
  t = performance.now();
  ann.searchMany(queries, k, threads);
  const annBatchQps = nq / seconds(t);
  const recall10 = recall(annIds, truth, nq);
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  console.log('| search | recall@10 | single-query q/s | p50 ms | p99 ms | batched q/s | build s | disk MB |');
  console.log('|---|---|---|---|---|---|---|---|');
  console.log(`| exact (src/search/exact.ts) | 1.000 | ${exactSingle.qps.toFixed(0)} | ${exactSingle.p50.toFixed(2)} | ${exactSingle.p99.toFixed(2)} | ${exactBatchQps.toFixed(0)} | — | — |`);
  console.log(`| HNSW, usearch (the collection's index) | ${recall10.toFixed(4)} | ${annSingle.qps.toFixed(0)} | ${annSingle.p50.toFixed(3)} | ${annSingle.p99.toFixed(3)} | ${annBatchQps.toFixed(0)} | ${buildS.toFixed(1)} | ${mb(sizeOf(join(sub, 'index.usearch')))} |`);

  if (lanceToo) {
    // LanceDB's own index on the same table, for comparison.
    const lance = await lancedb.connect(join(sub, 'items.lance'));
    const table = await lance.openTable(TABLE);
    t = performance.now();
    await table.createIndex('vector', { config: lancedb.Index.hnswSq({ distanceType: 'l2' }) });
    const lanceBuildS = seconds(t);
    const lanceIds = new Int32Array(nq * k);
    const count = Math.min(300, nq);
    const lanceSingle = await singleQueries(count, async (q) => {
      const hits = (await table.vectorSearch(Array.from(row(q))).distanceType('l2').limit(k).toArray()) as { id: number }[];
      lanceIds.set(hits.map((h) => h.id), q * k);
    });
    console.log(`| HNSW-SQ, LanceDB (${count} queries) | ${recall(lanceIds, truth, count).toFixed(3)} | ${lanceSingle.qps.toFixed(0)} | ${lanceSingle.p50.toFixed(2)} | ${lanceSingle.p99.toFixed(2)} | — | ${lanceBuildS.toFixed(1)} | — |`);
    lance.close();
  }
  console.log(`\nLanceDB table: written in ${writeS.toFixed(1)} s, ${mb(sizeOf(join(sub, 'items.lance')))} MB on disk`);
  return { recall10: Number(recall10.toFixed(4)), speedup: Number((annSingle.qps / exactSingle.qps).toFixed(1)), p50ms: Number(annSingle.p50.toFixed(4)) };
}

/**
 * Real descriptors grown to n: the revisited-Oxford CaffeNet/PCA-128 vectors (4,993 + 70), each
 * database row copied with Gaussian noise (σ = 0.02 per coordinate on unit vectors) until there are
 * n rows; the 70 real query vectors query it. Null when ../shared is absent.
 */
function roxfordGrown(): { db: Matrix; queries: Matrix } | null {
  const dirRox = fileURLToPath(new URL('../../shared/data/roxford5k', import.meta.url));
  if (!existsSync(dirRox)) return null;
  const base = readMatrix(join(dirRox, 'lopq-caffenet-pca128.db.npy'));
  const queries = readMatrix(join(dirRox, 'lopq-caffenet-pca128.query.npy'));
  l2NormalizeRows(base, () => { throw new Error('zero row'); }, base.data);
  l2NormalizeRows(queries, () => { throw new Error('zero row'); }, queries.data);
  let seed = 11;
  const uniform = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) + 0.5) / 4294967296;
  const gauss = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const src = i % base.rows;
    for (let l = 0; l < d; l++) data[i * d + l] = base.data[src * d + l]! + (i < base.rows ? 0 : 0.02 * gauss());
  }
  const db: Matrix = { rows: n, cols: d, data };
  l2NormalizeRows(db, () => { throw new Error('zero row'); }, db.data);
  return { db, queries };
}

try {
  const synthetic = await measureSet('clustered synthetic', db, queries, true);
  const real = roxfordGrown();
  if (real) await measureSet('revisited-Oxford descriptors grown with noise', real.db, real.queries, false);
  else console.log('\n(../shared is absent: the revisited-Oxford set is skipped)');
  console.log(`\npeak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  console.log(JSON.stringify({ n, ...synthetic }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
