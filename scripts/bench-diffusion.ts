/**
 * Diffusion speed and memory on a 2-core CPU.
 *
 *   npm run bench:diffusion                 # everything below (about 15 minutes)
 *   npm run bench:diffusion -- --quick      # small sizes only
 *
 * 1. CAS query re-ranking at revisited-Oxford size: 70 queries + 4,993 database items, 2048-d,
 *    default parameters, full ranking, wall time including the neighbour graph.
 * 2. CAS database self-ranking (top-300 per item, default parameters) of n × 512-d items for
 *    n = 1k … 100k, in truncated mode (rows of the diffusion kept to their 200 largest entries),
 *    and in dense mode up to 10k. Each size runs in a fresh process, whose peak RSS is reported.
 * 3. The issue-13 target: CAS query re-ranking of the real revisited-Oxford descriptors (70 + 4,993,
 *    128-d, `../shared/data/roxford5k`; clustered 128-d data of that size when absent), full
 *    ranking, time inside the run (as `ddistill diffuse --top-k all` reports it).
 * Data: random clustered descriptors (centres + Gaussian noise, about 50 items per cluster).
 * Last line: {"roxfordSeconds", "selfRanking100kSeconds"} (null for sizes a --quick run skips).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readMatrix } from '../src/matrix.js';
import { fileURLToPath } from 'node:url';
import { cas } from '../src/diffusion/cas.js';
import { clustered } from './clustered.js';

const args = process.argv.slice(2);
const child = args.indexOf('--child');
if (child >= 0) {
  // One measurement in this process: --child query|self n mode
  const [kind, nText, mode] = args.slice(child + 1);
  const n = Number(nText);
  // The data is made before the clock starts.
  const rox = join(fileURLToPath(new URL('../../shared/data/roxford5k', import.meta.url)));
  const real = kind === 'roxford' && existsSync(rox);
  const db = real ? readMatrix(join(rox, 'lopq-caffenet-pca128.db.npy')) : kind === 'roxford' ? clustered(n, 128, 50, 3) : kind === 'query' ? clustered(n, 2048, 50, 1) : clustered(n, 512, 50, 2);
  // Same centres (same seed), fresh noise.
  const q = real ? readMatrix(join(rox, 'lopq-caffenet-pca128.query.npy')) : kind === 'roxford' ? clustered(70, 128, 50, 3) : kind === 'query' ? clustered(70, 2048, 50, 1) : null;
  const t0 = performance.now();
  const res = q
    ? await cas(db, q, {}, { topK: n })
    : await cas(db, null, mode === 'truncated' ? { denseLimit: 1 } : {}, { topK: 300 });
  const timings = res.timings;
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ seconds, peakMB: process.resourceUsage().maxRSS / 1024, timings }));
  process.exit(0);
}

const script = fileURLToPath(import.meta.url);
function measure(kind: string, n: number, mode: string): { seconds: number; peakMB: number; timings: Record<string, number> } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, '--child', kind, String(n), mode], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}
const stages = (t: Record<string, number>) =>
  Object.entries(t)
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ');

const quick = args.includes('--quick');
console.log(`node ${process.version}, ${(await import('node:os')).availableParallelism()} cores`);
console.log('\n## CAS query re-ranking, 70 queries + 4,993 database items, 2048-d (full ranking)\n');
const q = measure('query', quick ? 1000 : 4993, 'default');
console.log(`wall ${q.seconds.toFixed(2)} s, peak RSS ${q.peakMB.toFixed(0)} MB; stages (s): ${stages(q.timings)}`);

console.log('\n## CAS database self-ranking, 512-d, top-300 per item\n');
console.log('| n | mode | wall time | peak RSS | stages (s) |');
console.log('|---|---|---|---|---|');
const sizes = quick ? [1000, 2000] : [1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000];
let self100k: number | null = null;
for (const mode of ['truncated', 'dense']) {
  for (const n of sizes) {
    if (mode === 'dense' && n > 10_000) continue;
    const r = measure('self', n, mode);
    if (n === 100_000 && mode === 'truncated') self100k = r.seconds;
    console.log(`| ${n.toLocaleString('en')} | ${mode} | ${r.seconds.toFixed(1)} s | ${(r.peakMB / 1024).toFixed(2)} GB | ${stages(r.timings)} |`);
  }
}

console.log('\n## CAS query re-ranking of revisited Oxford, 70 + 4,993 items, 128-d (full ranking)\n');
const rox = measure('roxford', 4993, 'default');
console.log(`${rox.seconds.toFixed(2)} s, peak RSS ${rox.peakMB.toFixed(0)} MB; stages (s): ${stages(rox.timings)}`);
console.log(JSON.stringify({ roxfordSeconds: Number(rox.seconds.toFixed(2)), selfRanking100kSeconds: self100k === null ? null : Number(self100k.toFixed(1)) }));
