/**
 * The one-liner at scale: `ddistill bootstrap --images list.txt` (no ground truth: the label-free
 * verdict) on 1,000 and 10,000 photos, made from Flowers-17 and Caltech-50 (../shared/data) and,
 * past their 3,341 photos, their mirror images and centre crops (written to a temporary folder).
 * Prints, per size, each stage's seconds and the process's peak memory (RSS) while it ran, and a
 * JSON last line {"<photos>":{"seconds":{stage:…},"peakMiB":{stage:…},"total":…}}. docs/design.md
 * ("Scale") projects these figures to 100,000 and 1,000,000 photos.
 *
 *   npm run bench:scale                          1,000 and 10,000 photos
 *   npm run bench:scale -- --photos 2000         other sizes (comma-separated)
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { main } from '../src/cli/main.js';
import type { RunManifest } from '../src/report/manifest.js';
import { arg } from './args.js';

const data = resolve(import.meta.dirname, '..', '..', 'shared', 'data');
const sources = ['flowers17', 'caltech50'].map((s) => join(data, s));
if (sources.some((s) => !existsSync(s))) {
  console.log(`skipped: ${data} lacks flowers17 or caltech50 (the photographs live in ../shared)`);
  process.exit(0);
}
const sizes = arg('photos', '1000,10000').split(',').map(Number);
const originals = sources.flatMap((s) => readFileSync(join(s, 'files.txt'), 'utf8').trim().split('\n').map((f) => join(s, 'images', f)));

/** Variant v of a photo: 0 itself, 1 mirrored, 2 centre crop (80 %), 3 mirrored centre crop. */
async function variant(path: string, v: number, out: string): Promise<void> {
  let img = sharp(path);
  if (v >= 2) {
    const m = await sharp(path).metadata();
    const [w, h] = [m.width!, m.height!];
    img = img.extract({ left: Math.round(w * 0.1), top: Math.round(h * 0.1), width: Math.round(w * 0.8), height: Math.round(h * 0.8) });
  }
  if (v % 2 === 1) img = img.flop();
  await img.jpeg({ quality: 90 }).toFile(out);
}

/** Peak RSS per stage: the stage is read off the pipeline's stage lines on stderr. */
function stageMemory() {
  const peak: Record<string, number> = {};
  let stage = 'start';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const m = /^\[(?:iteration \d+\] )?(\w+)[\]:]/.exec(String(chunk)) ?? /^\[(\w+)\]/.exec(String(chunk));
    if (m) stage = m[1]!;
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  const timer = setInterval(() => {
    peak[stage] = Math.max(peak[stage] ?? 0, process.memoryUsage().rss);
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      process.stderr.write = write;
      return Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / 2 ** 20)]));
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'ddistill-scale-'));
const results: Record<string, unknown> = {};
try {
  for (const n of sizes) {
    if (n > originals.length * 4) throw new Error(`--photos ${n}: at most ${originals.length * 4} (four variants of ${originals.length} photos)`);
    const folder = join(dir, `photos-${n}`);
    mkdirSync(folder, { recursive: true });
    const list: string[] = [];
    for (let start = 0; start < n; start += 64) {
      const batch = Array.from({ length: Math.min(64, n - start) }, (_, j) => start + j);
      await Promise.all(batch.map((i) => variant(originals[i % originals.length]!, Math.floor(i / originals.length), join(folder, `${i}.jpg`))));
      list.push(...batch.map((i) => join(folder, `${i}.jpg`)));
    }
    writeFileSync(join(dir, `list-${n}.txt`), list.join('\n') + '\n');
    const out = join(dir, `run-${n}`);
    const memory = stageMemory();
    const started = performance.now();
    const code = await main([process.argv[0]!, 'ddistill', 'bootstrap', '--images', join(dir, `list-${n}.txt`), '--out', out]);
    const total = (performance.now() - started) / 1000;
    const peakMiB = memory.stop();
    if (code !== 0) throw new Error(`bootstrap on ${n} photos exited with ${code}`);
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as RunManifest;
    const seconds: Record<string, number> = { features: Object.values(m.features ?? {}).reduce((s, f) => s + f.seconds, 0) };
    for (const r of m.iterations) for (const [k, v] of Object.entries(r.seconds)) seconds[k] = (seconds[k] ?? 0) + v;
    const rounded = Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, +v.toFixed(1)]));
    console.log(`${n} photos: ${total.toFixed(0)} s in all; seconds ${JSON.stringify(rounded)}; peak RSS (MiB) ${JSON.stringify(peakMiB)}`);
    results[n] = { seconds: rounded, peakMiB, total: +total.toFixed(1) };
    rmSync(folder, { recursive: true, force: true });
  }
  console.log(JSON.stringify(results));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
