/**
 * Distillation that never makes retrieval worse: the defaults a user gets
 * (`ddistill bootstrap --images …` with no other flag, two iterations) on a collection where
 * diffusion has much to add and on one where it has nothing to add.
 *   Flowers-17   1,360 photos, 17 classes; the first 10 per class are the 170 queries, the other
 *                1,190 the database; class mAP of the queries (`../shared/data/flowers17`)
 *   UKBench-400  400 photos, 100 objects × 4 views; each image queries all 400, itself included;
 *                N-S score out of 4 (`../shared/data/ukbench400`)
 * "distilled" is what the pipeline finally returns (its manifest's result: an iteration, or the
 * input descriptors when no iteration beat them by the label-free check).
 *
 *   npm run bench:no-harm
 *
 * Last line: {"flowersPretrained": …, "flowersDistilled": …, "ukbenchPretrained": …,
 * "ukbenchDistilled": …}. Skipped when ../shared is absent.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../src/cli/main.js';
import type { RunManifest } from '../src/report/manifest.js';
import { mainFigure, resultFigure } from '../src/report/html.js';
import { flowersSplit } from './flowers17.js';

const data = resolve(import.meta.dirname, '..', '..', 'shared', 'data');
const flowers = join(data, 'flowers17');
const ukbench = join(data, 'ukbench400');
if (!existsSync(join(flowers, 'files.txt')) || !existsSync(join(ukbench, 'groups.txt'))) {
  console.log(`skipped: ${data} lacks flowers17/ or ukbench400/ (the photographs live in ../shared)`);
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'ddistill-no-harm-'));

async function run(name: string, args: string[]): Promise<RunManifest & { wall: number }> {
  const started = performance.now();
  const out = join(dir, name);
  const code = await main([process.argv[0]!, 'ddistill', 'bootstrap', ...args, '--out', out]);
  if (code !== 0) throw new Error(`ddistill bootstrap (${name}) exited with ${code}`);
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as RunManifest;
  return { ...m, wall: (performance.now() - started) / 1000 };
}

try {
  // Flowers-17: the benchmark split of bench:flowers17.
  const f = await run('flowers17', flowersSplit(flowers, dir).args);
  const u = await run('ukbench400', ['--images', join(ukbench, 'images'), '--groups', join(ukbench, 'groups.txt')]);

  console.log('| collection | pretrained | CAS re-ranking | iteration 1 | iteration 2 | returned | k (auto) | minutes |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [name, m] of [['Flowers-17 (class mAP)', f], ['UKBench-400 (N-S)', u]] as const) {
    const it = (i: number) => {
      const r = m.iterations.find((x) => x.iteration === i);
      return r ? `${mainFigure(r)}${r.kept === false ? ' (not kept)' : ''}` : '—';
    };
    const ks = m.iterations.map((r) => r.selection?.k ?? '?').join(', ');
    console.log(`| ${name} | ${mainFigure(m.baseline)} | ${mainFigure(m.reranking) ?? '—'} | ${it(1)} | ${it(2)} | ${resultFigure(m)} (${m.result!.iteration === 0 ? 'input' : `iteration ${m.result!.iteration}`}) | ${ks} | ${(m.wall / 60).toFixed(1)} |`);
  }
  console.log(JSON.stringify({ flowersPretrained: mainFigure(f.baseline), flowersDistilled: resultFigure(f), ukbenchPretrained: mainFigure(u.baseline), ukbenchDistilled: resultFigure(u) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
