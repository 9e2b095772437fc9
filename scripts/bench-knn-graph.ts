/**
 * Does an approximate (HNSW, usearch) neighbour graph pay for CAS self-ranking? The exact graph
 * (src/graph/knn.ts: blocked dense products) against an HNSW index built over the same items and
 * searched for every item's L nearest, on n clustered 512-d unit vectors (CAS's bench data),
 * measured in one run: time of each, and the recall of the HNSW lists against the exact ones.
 *
 *   npm run bench:knn-graph [-- --n 100000] [-- --L 100]
 *
 * Last line: {"n", "L", "exactSeconds", "hnswSeconds", "recall"}.
 */
import { availableParallelism } from 'node:os';
import { AnnIndex, ANN_DEFAULTS } from '../src/collection/ann.js';
import { neighbourGraph } from '../src/graph/knn.js';
import { l2NormalizeRows } from '../src/matrix.js';
import { arg } from './args.js';
import { clustered } from './clustered.js';

const n = Number(arg('n', '100000'));
const L = Number(arg('L', '100'));
const threads = availableParallelism();
const x = l2NormalizeRows(clustered(n, 512, 50, 2), () => {});
console.log(`${n.toLocaleString('en')} × 512 clustered unit vectors, ${L} neighbours per item, ${threads} threads`);

let t0 = performance.now();
const exact = await neighbourGraph(x, L);
const exactSeconds = (performance.now() - t0) / 1000;
console.log(`exact graph (blocked dense products): ${exactSeconds.toFixed(1)} s`);

t0 = performance.now();
const index = AnnIndex.empty(512, ANN_DEFAULTS);
index.add(x, 0, threads);
const built = (performance.now() - t0) / 1000;
const lists = index.searchMany(x, L, threads);
const hnswSeconds = (performance.now() - t0) / 1000;
console.log(`HNSW graph (usearch, connectivity ${ANN_DEFAULTS.connectivity}, expansion ${ANN_DEFAULTS.expansionAdd}/${ANN_DEFAULTS.expansionSearch}): build ${built.toFixed(1)} s, search ${(hnswSeconds - built).toFixed(1)} s, ${hnswSeconds.toFixed(1)} s in all`);

let hits = 0;
const mark = new Int32Array(n).fill(-1);
for (let i = 0; i < n; i++) {
  for (let r = 0; r < L; r++) mark[exact.indices[i * L + r]!] = i;
  for (let r = 0; r < L; r++) if (mark[lists[i * L + r]!] === i) hits++;
}
const recall = hits / (n * L);
console.log(`recall of the HNSW lists against the exact ones: ${recall.toFixed(4)}`);
console.log(JSON.stringify({ n, L, exactSeconds: Number(exactSeconds.toFixed(1)), hnswSeconds: Number(hnswSeconds.toFixed(1)), recall: Number(recall.toFixed(4)) }));
