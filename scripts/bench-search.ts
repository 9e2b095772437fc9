/**
 * Exact-search throughput: ddistill's blocked search (onnxruntime-node when installed) against a
 * plain JavaScript triple loop measured in the same run, on random clustered data.
 *
 *   npm run bench:search            # both sizes
 *   npm run bench:search -- --quick # smaller sizes, for a smoke test
 *
 * The triple loop is timed on a subset of the queries (it takes ~1 min per 1,000 queries at the
 * large size) and its throughput in queries/s is compared with ours.
 */
import { exactSearch } from '../src/search/exact.js';
import type { Matrix } from '../src/matrix.js';
import { clustered } from './clustered.js';
import { denseEngine } from '../src/backend/dense.js';

/** The baseline: for each query, every distance by a triple loop, then a full sort. */
function tripleLoop(db: Matrix, q: Matrix, k: number): Int32Array {
  const out = new Int32Array(q.rows * k);
  const dist = new Float64Array(db.rows);
  const order = Array.from({ length: db.rows }, (_, i) => i);
  for (let i = 0; i < q.rows; i++) {
    for (let j = 0; j < db.rows; j++) {
      let s = 0;
      for (let l = 0; l < q.cols; l++) {
        const d = q.data[i * q.cols + l]! - db.data[j * db.cols + l]!;
        s += d * d;
      }
      dist[j] = s;
    }
    order.sort((a, b) => dist[a]! - dist[b]! || a - b);
    for (let t = 0; t < k; t++) out[i * k + t] = order[t]!;
  }
  return out;
}

const quick = process.argv.includes('--quick');
const k = 100;
const sizes = quick
  ? [{ nq: 70, n: 2000, d: 256, loopQueries: 10 }]
  : [
      { nq: 70, n: 5000, d: 2048, loopQueries: 10 },
      { nq: 1000, n: 100_000, d: 512, loopQueries: 5 },
    ];

const engine = await denseEngine();
console.log(`engine: ${engine.name}; node ${process.version}; k = ${k}; Euclidean distance`);
console.log('| queries × database × dim | ddistill search | queries/s | GFLOP/s | JS triple loop queries/s | speed-up | top-k agree |');
console.log('|---|---|---|---|---|---|---|');
for (const { nq, n, d, loopQueries } of sizes) {
  const db = clustered(n, d, 100, 1, 0.5);
  const q = clustered(nq, d, 100, 2, 0.5);
  await exactSearch(db, { rows: Math.min(nq, 8), cols: d, data: q.data.subarray(0, Math.min(nq, 8) * d) }, { k, metric: 'euclidean' }); // warm up
  const t0 = performance.now();
  const res = await exactSearch(db, q, { k, metric: 'euclidean' });
  const ours = (performance.now() - t0) / 1000;
  const sub: Matrix = { rows: loopQueries, cols: d, data: q.data.subarray(0, loopQueries * d) };
  const t1 = performance.now();
  const loop = tripleLoop(db, sub, k);
  const loopSeconds = (performance.now() - t1) / 1000;
  let agree = 0;
  for (let i = 0; i < loop.length; i++) if (loop[i] === res.indices[i]) agree++;
  const qps = nq / ours;
  const loopQps = loopQueries / loopSeconds;
  console.log(
    `| ${nq} × ${n.toLocaleString('en')} × ${d} | ${ours.toFixed(2)} s | ${qps.toFixed(0)} | ${((2 * nq * n * d) / ours / 1e9).toFixed(1)} | ` +
      `${loopQps.toFixed(2)} (${loopQueries} queries, ${loopSeconds.toFixed(1)} s) | ${(qps / loopQps).toFixed(0)}× | ${((agree / loop.length) * 100).toFixed(1)} % |`,
  );
}
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
