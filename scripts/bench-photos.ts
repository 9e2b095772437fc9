/**
 * Photographs with the one-liner and nothing else: `ddistill bootstrap --images …` with only the
 * flags that name the queries and the ground truth, on three collections of `../shared/data`:
 *   flowers     Flowers-17, 170 queries (the first 10 of each class) / 1,190 database photos, class mAP
 *   caltech50   Caltech-50, 250 queries (the first 5 of each class) / 1,731 database photos, class mAP
 *   ukbench400  UKBench-400, every photo queries all 400 (N-S; no CAS query re-ranking)
 * `distilled` is the figure of the run's result (what a user gets: the kept iteration, or the
 * input), `seconds` the one-liner's wall time. It runs through the CLI's own entry point.
 *
 *   npm run bench:photos                      all three
 *   npm run bench:photos -- --sets caltech50  some of them (comma-separated)
 *
 * Last line: {"flowers":{"pretrained","cas","distilled","seconds"},"caltech50":{…},"ukbench400":{"pretrained","distilled","seconds"}}.
 * Skipped when ../shared is absent.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../src/cli/main.js';
import { mainFigure, resultFigure } from '../src/report/html.js';
import type { RunManifest } from '../src/report/manifest.js';
import { arg } from './args.js';
import { flowersSplit } from './flowers17.js';

const data = resolve(import.meta.dirname, '..', '..', 'shared', 'data');
const SETS = ['flowers', 'caltech50', 'ukbench400'] as const;
type SetName = (typeof SETS)[number];
const wanted = arg('sets', SETS.join(',')).split(',') as SetName[];
for (const s of wanted) if (!SETS.includes(s)) throw new Error(`--sets: unknown set ${s} (${SETS.join(', ')})`);
const folders: Record<SetName, string> = { flowers: join(data, 'flowers17'), caltech50: join(data, 'caltech50'), ukbench400: join(data, 'ukbench400') };
const missing = wanted.filter((s) => !existsSync(folders[s]));
if (missing.length > 0) {
  console.log(`skipped: ${data} lacks ${missing.join(', ')} (the photographs live in ../shared)`);
  process.exit(0);
}

/** Caltech-50's split: the first 5 photos of each class (files.txt order) are the queries. */
function caltechSplit(folder: string, dir: string): string[] {
  const files = readFileSync(join(folder, 'files.txt'), 'utf8').trim().split('\n');
  const labels = readFileSync(join(folder, 'labels.txt'), 'utf8').trim().split('\n');
  const seen = new Map<string, number>();
  const split = { db: [] as number[], queries: [] as number[] };
  files.forEach((_, i) => {
    const n = seen.get(labels[i]!) ?? 0;
    seen.set(labels[i]!, n + 1);
    (n < 5 ? split.queries : split.db).push(i);
  });
  const write = (name: string, lines: string[]) => {
    writeFileSync(join(dir, name), lines.join('\n') + '\n');
    return join(dir, name);
  };
  return [
    '--images', write('db.txt', split.db.map((i) => join(folder, 'images', files[i]!))),
    '--query-images', write('queries.txt', split.queries.map((i) => join(folder, 'images', files[i]!))),
    '--labels', write('db-labels.txt', split.db.map((i) => labels[i]!)),
    '--query-labels', write('query-labels.txt', split.queries.map((i) => labels[i]!)),
  ];
}

const dir = mkdtempSync(join(tmpdir(), 'ddistill-photos-'));
const results: Record<string, Record<string, number | null>> = {};
try {
  for (const name of wanted) {
    const work = join(dir, name);
    mkdirSync(work);
    const args =
      name === 'flowers' ? flowersSplit(folders.flowers, work).args
      : name === 'caltech50' ? caltechSplit(folders.caltech50, work)
      : ['--images', join(folders.ukbench400, 'images'), '--groups', join(folders.ukbench400, 'groups.txt')];
    const out = join(work, 'run');
    const started = performance.now();
    const code = await main([process.argv[0]!, 'ddistill', 'bootstrap', ...args, '--out', out]);
    if (code !== 0) throw new Error(`ddistill bootstrap (${name}) exited with ${code}`);
    const seconds = Number(((performance.now() - started) / 1000).toFixed(1));
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as RunManifest;
    const iterations = m.iterations.map((r) => `${mainFigure(r)}${r.kept === false ? ' (not kept)' : ''}`).join(' → ');
    console.log(`${name}: pretrained ${mainFigure(m.baseline)}, CAS ${mainFigure(m.reranking) ?? '—'}, iterations ${iterations}, result ${resultFigure(m)} (${m.result!.iteration === 0 ? 'the input' : `iteration ${m.result!.iteration}`}), ${seconds} s`);
    results[name] = name === 'ukbench400'
      ? { pretrained: mainFigure(m.baseline), distilled: resultFigure(m), seconds }
      : { pretrained: mainFigure(m.baseline), cas: mainFigure(m.reranking), distilled: resultFigure(m), seconds };
  }
  console.log(JSON.stringify(results));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
