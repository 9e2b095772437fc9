/**
 * The trainer's acceptance protocol on MNIST, end to end through the file-level stages (the same
 * code as `ddistill diffuse`, `train` and `embed`): 500 query digits against 9,500 database digits,
 * L2-normalised pixels, relevance = same digit, non-interpolated AP over the whole database.
 *
 *   baseline   Euclidean search on pixels (independent figure: 44.84)
 *   cas        CAS query re-ranking, the tool's default (with geodesic refinement)
 *   distilled  Euclidean search on the embeddings of the queries (never seen in training) by a
 *              head trained on triplets from a CAS self-ranking of the database
 * Also printed: CAS without geodesic refinement (independent figure: 63.22) and timings.
 *
 *   npm run bench:mnist [-- --steps N]
 *
 * The last line is one JSON object: {"baseline": …, "cas": …, "distilled": …} (mAP in percent).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffuse } from '../src/diffusion/index.js';
import { diffuseFiles } from '../src/diffusion/run.js';
import { classMap } from '../src/eval/classLevel.js';
import { ranking } from '../src/eval/ranking.js';
import { evaluateFiles } from '../src/eval/run.js';
import { loadMnistSplit, writeMnistFiles } from '../src/io/mnist.js';
import { l2NormalizeRows } from '../src/matrix.js';
import { embedFiles } from '../src/model/run.js';
import { fullRanking } from '../src/eval/fullRanking.js';
import { trainFiles } from '../src/train/descriptors.js';
import { MNIST_RECIPE } from '../src/train/options.js';
import { arg } from './args.js';

const steps = Number(arg('steps', String(MNIST_RECIPE.train.steps!)));
const split = loadMnistSplit();
const pct = (x: number) => Number((x * 100).toFixed(2));
const mAP = (r: Parameters<typeof classMap>[0]) => pct(classMap(r, split.queryLabels, split.dbLabels).mAP);
const seconds = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(1));
const dir = mkdtempSync(join(tmpdir(), 'ddistill-bench-mnist-'));
try {
  let t0 = performance.now();
  // Euclidean search on L2-normalised pixels (the protocol's descriptors).
  const baseline = mAP(await fullRanking(l2NormalizeRows(split.db), l2NormalizeRows(split.queries), 'euclidean'));
  const tBaseline = seconds(t0);
  t0 = performance.now();
  const casRes = await diffuse('cas', split.db, split.queries, {}, { topK: split.db.rows });
  const cas = mAP(ranking(casRes.indices, casRes.rows, split.db.rows));
  const tCas = seconds(t0);
  const plain = await diffuse('cas', split.db, split.queries, { geodesic: false }, { topK: split.db.rows });
  const casNoGeodesic = mAP(ranking(plain.indices, plain.rows, split.db.rows));

  const files = writeMnistFiles(dir, split);
  t0 = performance.now();
  await diffuseFiles({ method: 'cas', db: files.db, out: join(dir, 'teacher'), topK: MNIST_RECIPE.teacherTopK });
  const tTeacher = seconds(t0);
  t0 = performance.now();
  const run = await trainFiles({
    db: files.db,
    ranks: join(dir, 'teacher'),
    out: join(dir, 'run'),
    head: MNIST_RECIPE.head,
    train: { ...MNIST_RECIPE.train, steps },
    backend: 'auto',
    onBackend: (b) => console.error(`backend: ${b.backend} (${b.source})`),
    onEpoch: (r) => console.error(`  epoch ${r.epoch + 1}: loss ${r.loss.toFixed(4)}, ${Math.round(r.tripletsPerSecond)} triplets/s`),
  });
  const tTrain = seconds(t0);
  await embedFiles({ model: join(dir, 'run'), db: files.db, queries: files.queries, out: join(dir, 'emb') });
  t0 = performance.now();
  const rep = await evaluateFiles({ db: join(dir, 'emb', 'db.npy'), query: join(dir, 'emb', 'queries.npy'), metric: 'euclidean', labels: files.labels, queryLabels: files.queryLabels });
  const tSearch = seconds(t0);
  const distilled = rep.protocol === 'class' ? rep.mAP : NaN;

  console.log(`MNIST split: ${split.queries.rows} queries × ${split.db.rows} database digits; ${MNIST_RECIPE.description}; ${run.steps} steps on ${run.backend.backend}`);
  console.log('| method | class mAP | time |');
  console.log('|---|---|---|');
  console.log(`| Euclidean on pixels (baseline) | ${baseline} | ${tBaseline} s |`);
  console.log(`| CAS query re-ranking, geodesic (default) | ${cas} | ${tCas} s |`);
  console.log(`| CAS query re-ranking, no geodesic | ${casNoGeodesic} | |`);
  console.log(`| distilled embeddings, Euclidean | ${distilled} | teacher ${tTeacher} s + training ${tTrain} s; search ${tSearch} s |`);
  console.log(`distilled − baseline = ${(distilled - baseline).toFixed(2)} points (bar: ≥ 15); distilled / CAS = ${((100 * distilled) / cas).toFixed(1)} % (bar: ≥ 85 %); / CAS without geodesic = ${((100 * distilled) / casNoGeodesic).toFixed(1)} %`);
  console.log(JSON.stringify({ baseline, cas, distilled }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
