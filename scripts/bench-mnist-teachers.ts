/**
 * Diffusion teachers on the MNIST split (500 query digits against 9,500 database digits, pixels
 * L2-normalised): class mAP of query re-ranking and its time, for the cosine baseline, CAS with
 * and without geodesic refinement, LCDP and Iscen et al.
 *
 *   npm run bench:mnist-teachers
 */
import { diffuse, type DiffusionMethod } from '../src/diffusion/index.js';
import { classMap } from '../src/eval/classLevel.js';
import { ranking } from '../src/eval/ranking.js';
import { loadMnistSplit } from '../src/io/mnist.js';
import { fullRanking } from '../src/eval/fullRanking.js';

const split = loadMnistSplit();
const mAP = (r: Parameters<typeof classMap>[0]) => (classMap(r, split.queryLabels, split.dbLabels).mAP * 100).toFixed(2);
console.log('| method | class mAP | time |');
console.log('|---|---|---|');
let t0 = performance.now();
const base = await fullRanking(split.db, split.queries, 'cosine');
console.log(`| cosine on pixels | ${mAP(base)} | ${((performance.now() - t0) / 1000).toFixed(1)} s |`);
const runs: [string, DiffusionMethod, object][] = [
  ['CAS, no geodesic', 'cas', { geodesic: false }],
  ['CAS, geodesic (default)', 'cas', {}],
  ['LCDP (defaults)', 'lcdp', {}],
  ['Iscen et al. (defaults)', 'iscen', {}],
];
for (const [name, method, params] of runs) {
  t0 = performance.now();
  const res = await diffuse(method, split.db, split.queries, params, { topK: split.db.rows });
  console.log(`| ${name} | ${mAP(ranking(res.indices, res.rows, split.db.rows))} | ${((performance.now() - t0) / 1000).toFixed(1)} s |`);
}
