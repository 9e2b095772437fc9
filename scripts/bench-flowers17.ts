/**
 * Photographs, out of the box: Oxford Flowers-17 (`../shared/data/flowers17`, 1,360 photos,
 * 17 classes × 80). The first 10 images of each class are the 170 queries, the other 1,190 the
 * database; relevance = same class (class mAP, Euclidean search). Rows:
 *   pretrained      the shipped backbone's GeM descriptors (the run's features/)
 *   CAS re-ranking  the teacher applied at query time to those descriptors
 *   iteration N     the distilled network after each bootstrap iteration, trained on the
 *                   database only (the queries are never seen)
 * It runs `ddistill bootstrap --images db --query-images queries --labels … --query-labels …`
 * through the CLI's own entry point with no other flag: the defaults a user gets.
 *
 *   npm run bench:flowers17
 *
 * Last line: {"pretrained": …, "cas": …, "distilled": [one figure per iteration], "seconds": …}. Skipped when
 * ../shared is absent.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../src/cli/main.js';
import type { RunManifest } from '../src/report/manifest.js';
import { flowersSplit } from './flowers17.js';

const data = resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'flowers17');
if (!existsSync(join(data, 'files.txt'))) {
  console.log(`skipped: ${data} is absent (the Flowers-17 photographs live in ../shared)`);
  process.exit(0);
}
const started = performance.now();
const dir = mkdtempSync(join(tmpdir(), 'ddistill-flowers17-'));
try {
  const split = flowersSplit(data, dir);
  const out = join(dir, 'run');
  const code = await main([
    process.argv[0]!, 'ddistill', 'bootstrap',
    ...split.args, '--out', out,
  ]);
  if (code !== 0) throw new Error(`ddistill bootstrap exited with ${code}`);
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as RunManifest;
  const seconds = Number(((performance.now() - started) / 1000).toFixed(1));
  const train = m.iterations.reduce((s, r) => s + (r.seconds.train ?? 0), 0);
  const figure = (x: { metrics: Record<string, number> } | null) => x?.metrics.mAP ?? null;
  console.log(`Flowers-17: ${split.queries} queries, ${split.database} database photos; ${m.versions.backend}; features ${Object.values(m.features ?? {}).reduce((s, f) => s + f.seconds, 0).toFixed(0)} s, training ${train.toFixed(0)} s, ${seconds} s in all`);
  console.log('| method | class mAP | training (s) |');
  console.log('|---|---|---|');
  console.log(`| pretrained backbone (GeM) | ${figure(m.baseline)} | — |`);
  console.log(`| CAS query re-ranking | ${figure(m.reranking)} | — |`);
  for (const r of m.iterations) console.log(`| distilled, iteration ${r.iteration} | ${figure(r)} | ${(r.seconds.train ?? 0).toFixed(0)} |`);
  console.log(JSON.stringify({ pretrained: figure(m.baseline), cas: figure(m.reranking), distilled: m.iterations.map(figure), seconds }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
