import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { meanPrecisionRecall } from '../src/eval/pr.js';
import { ranking } from '../src/eval/ranking.js';
import { bootstrap } from '../src/pipeline/bootstrap.js';
import { trainingSubset } from '../src/pipeline/stages.js';
import type { RunManifest } from '../src/report/manifest.js';
import { renderReport } from '../src/report/html.js';
import { bruteClassMap, gaussian, ROOT, rng, unitRows, withTempDir } from './helpers.js';

/** Four classes in 16-d: the class in the signs of dimensions 0 and 1, under noise in all 16. */
function writeToy(dir: string, perClass = 60, queriesPerClass = 5): Record<'db' | 'queries' | 'labels' | 'queryLabels', string> {
  const g = gaussian(rng(17));
  const make = (rows: number) => {
    const data = new Float32Array(rows * 16);
    for (let i = 0; i < rows; i++) {
      const c = i % 4;
      for (let j = 0; j < 16; j++) data[i * 16 + j] = j < 2 ? ((c >> j) & 1 ? 1.2 : -1.2) + 0.4 * g() : 1.2 * g();
    }
    return data;
  };
  const files = { db: join(dir, 'db.npy'), queries: join(dir, 'q.npy'), labels: join(dir, 'l.txt'), queryLabels: join(dir, 'ql.txt') };
  writeNpy(files.db, { dtype: 'float32', shape: [4 * perClass, 16], data: make(4 * perClass) });
  writeNpy(files.queries, { dtype: 'float32', shape: [4 * queriesPerClass, 16], data: make(4 * queriesPerClass) });
  writeFileSync(files.labels, Array.from({ length: 4 * perClass }, (_, i) => i % 4).join('\n'));
  writeFileSync(files.queryLabels, Array.from({ length: 4 * queriesPerClass }, (_, i) => i % 4).join('\n'));
  return files;
}

/** A label file and a float32 .npy, as the test reads them back. */
const labels = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map(Number);
const matrix = (f: string) => {
  const a = readNpy(f);
  return { rows: a.shape[0]!, cols: a.shape[1]!, data: a.data as Float32Array };
};

/**
 * Run-folder mechanics, without the label-free selection (test/selection.test.ts covers it): with
 * these tiny CAS neighbourhoods the teacher is barely better than the input (46.74 vs 46.00), and
 * the verdict rightly keeps the input after iteration 1.
 */
const small = {
  selection: { holdOut: 0 },
  method: 'cas' as const,
  params: { k1: 8, k2: 4, k3: 8, k4: 4, k5: 8 },
  head: { kind: 'residual' as const, dim: 8, hidden: 16 },
  train: { batch: 32, lr: 0.05, epochs: 6, triplets: { k: 150, m0: 0.3, perAnchor: 10 } },
  backend: 'wasm' as const,
  engine: 'js' as const,
};

describe('precision–recall curves', () => {
  it('interpolates precision at 11 recall levels (hand-worked)', () => {
    // One query, positives {5, 7} at ranks 0 and 2: precision 1 then 2/3.
    const r = ranking(Int32Array.from([5, 1, 7, 0, 2, 3, 4, 6]), 1, 8);
    const curve = meanPrecisionRecall(r, () => ({ positives: [5, 7] }));
    expect(curve).toEqual([1, 1, 1, 1, 1, 1, 0.6667, 0.6667, 0.6667, 0.6667, 0.6667]);
    // Ignoring item 1 (ranked before 7) lifts the second precision to 2/2.
    expect(meanPrecisionRecall(r, () => ({ positives: [5, 7], ignored: [1] }))).toEqual(new Array(11).fill(1));
  });
});

describe('bootstrap', () => {
  it('runs two iterations: baseline, re-ranking, per-iteration metrics, run folder and report', async () => {
    await withTempDir(async (dir) => {
      const files = writeToy(dir);
      const out = join(dir, 'run');
      const m = await bootstrap({ ...files, out, iterations: 2, ...small });
      expect(m.status).toBe('done');
      // The baseline is Euclidean search on the L2-normalised input; the iterations, on their embeddings.
      const [dbl, ql] = [labels(files.labels), labels(files.queryLabels)];
      expect(Math.abs(m.baseline!.metrics.mAP! - bruteClassMap(unitRows(matrix(files.db)), unitRows(matrix(files.queries)), dbl, ql))).toBeLessThan(0.006);
      for (const r of m.iterations) {
        const e = (name: string) => matrix(join(out, `iter-${r.iteration}`, 'emb', name));
        expect(Math.abs(r.metrics.mAP! - bruteClassMap(e('db.npy'), e('queries.npy'), dbl, ql))).toBeLessThan(0.006);
      }
      expect(m.reranking!.method).toBe('cas');
      expect(m.iterations.map((r) => r.iteration)).toEqual([1, 2]);
      for (const r of m.iterations) {
        expect(r.metrics.mAP).toBeGreaterThan(m.baseline!.metrics.mAP!);
        expect(r.pr).toHaveLength(11);
        expect(r.loss).toHaveLength(6);
        expect(r.querySeconds).toBeGreaterThan(0);
        for (const part of ['teacher/diffusion.json', 'train/model/manifest.json', 'emb/db.npy', 'emb/queries.npy', 'eval.json']) {
          expect(existsSync(join(out, `iter-${r.iteration}`, part)), part).toBe(true);
        }
      }
      // Iteration 2 diffuses the embeddings of iteration 1 and continues from its weights.
      const teacher2 = JSON.parse(readFileSync(join(out, 'iter-2', 'teacher', 'diffusion.json'), 'utf8'));
      expect(teacher2.db).toBe(join(out, 'iter-1', 'emb', 'db.npy'));
      const model2 = JSON.parse(readFileSync(join(out, 'iter-2', 'train', 'model', 'manifest.json'), 'utf8'));
      expect(model2.provenance.initFrom).toBe(join(out, 'iter-1', 'train'));
      const saved = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as RunManifest;
      expect(saved.iterations).toEqual(m.iterations);
      expect(saved.versions.backend).toMatch(/^wasm/);
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      expect(html).toContain(`<td class="num">${m.iterations[1]!.metrics.mAP!.toFixed(2)}</td>`);
      // Starting again in the same folder needs --resume; resuming a finished run changes nothing.
      await expect(bootstrap({ ...files, out, iterations: 2, ...small })).rejects.toThrow(/--resume/);
      const again = await bootstrap({ ...files, out, iterations: 2, ...small, resume: true });
      expect(again.iterations).toEqual(m.iterations);
      await expect(bootstrap({ ...files, out, iterations: 2, ...small, train: { ...small.train, lr: 0.1 }, resume: true })).rejects.toThrow(/other data or options/);
    });
  });

  it('--train-fraction trains on a seeded subset and evaluates on the whole database', async () => {
    await withTempDir(async (dir) => {
      const files = writeToy(dir);
      const out = join(dir, 'run');
      const m = await bootstrap({ ...files, out, iterations: 1, trainFraction: 0.3, ...small, train: { ...small.train, triplets: { ...small.train.triplets, k: 60 } }, compare: false });
      expect(m.trainItems).toBe(72);
      const subset = readNpy(join(out, 'subset', 'indices.npy')).data as Int32Array;
      expect(Array.from(subset)).toEqual(Array.from(trainingSubset(240, 0.3, 0)));
      expect(new Set(subset).size).toBe(72);
      expect(readNpy(join(out, 'iter-1', 'teacher', 'indices.npy')).shape[0]).toBe(72);
      expect(readNpy(join(out, 'iter-1', 'emb', 'db.npy')).shape).toEqual([240, 8]);
      expect(m.baseline).toBeNull();
      // Trained on 30 % of the items, it still beats Euclidean search on the input (brute force).
      const baseline = bruteClassMap(unitRows(matrix(files.db)), unitRows(matrix(files.queries)), labels(files.labels), labels(files.queryLabels));
      expect(Math.abs(m.iterations[0]!.metrics.mAP! - bruteClassMap(matrix(join(out, 'iter-1', 'emb', 'db.npy')), matrix(join(out, 'iter-1', 'emb', 'queries.npy')), labels(files.labels), labels(files.queryLabels)))).toBeLessThan(0.006);
      expect(m.iterations[0]!.metrics.mAP!).toBeGreaterThan(baseline); // 50.33 against 46.00, measured
    });
  });

  it('a run killed with SIGKILL during training resumes and ends with the uninterrupted result', async () => {
    await withTempDir(async (dir) => {
      const files = writeToy(dir, 100);
      const args = [
        'bootstrap', '--db', files.db, '--queries', files.queries, '--labels', files.labels, '--query-labels', files.queryLabels,
        '--iterations', '2', '--params', JSON.stringify(small.params), '--dim', '8', '--hidden', '16', '--batch', '16', '--lr', '0.05',
        '--epochs', '8', '-k', '150', '--m0', '0.3', '--hold-out', '0', '--backend', 'wasm', '--engine', 'js',
      ];
      const killed = join(dir, 'killed');
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'cliEntry.ts'), ...args, '--out', killed], { cwd: ROOT, stdio: 'ignore' });
      const checkpoint = join(killed, 'iter-1', 'train', 'checkpoint', 'checkpoint.json');
      await new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          if (existsSync(checkpoint)) {
            clearInterval(timer);
            child.kill('SIGKILL');
            resolve();
          }
        }, 10);
        child.on('exit', () => {
          clearInterval(timer);
          reject(new Error('the run ended before it could be killed'));
        });
      });
      await new Promise((resolve) => child.on('exit', resolve));
      const atKill = JSON.parse(readFileSync(join(killed, 'manifest.json'), 'utf8')) as RunManifest;
      expect(atKill.status).toBe('running');
      expect(atKill.iterations).toHaveLength(0); // killed inside iteration 1's training
      expect(existsSync(join(killed, 'iter-1', 'train', 'model'))).toBe(false);

      const { main } = await import('../src/cli/main.js');
      const quiet = { write: process.stderr.write, out: process.stdout.write };
      process.stderr.write = (() => true) as typeof process.stderr.write;
      process.stdout.write = (() => true) as typeof process.stdout.write;
      try {
        expect(await main(['node', 'ddistill', ...args, '--out', killed, '--resume'])).toBe(0);
        expect(await main(['node', 'ddistill', ...args, '--out', join(dir, 'straight')])).toBe(0);
        // The run's config.json is a --config file that runs it again.
        expect(await main(['node', 'ddistill', 'bootstrap', '--config', join(dir, 'straight', 'config.json'), '--out', join(dir, 'again')])).toBe(0);
      } finally {
        process.stderr.write = quiet.write;
        process.stdout.write = quiet.out;
      }
      const resumed = JSON.parse(readFileSync(join(killed, 'manifest.json'), 'utf8')) as RunManifest;
      const straight = JSON.parse(readFileSync(join(dir, 'straight', 'manifest.json'), 'utf8')) as RunManifest;
      expect(resumed.status).toBe('done');
      expect(resumed.iterations.map((r) => r.metrics)).toEqual(straight.iterations.map((r) => r.metrics));
      expect(resumed.iterations.map((r) => r.loss)).toEqual(straight.iterations.map((r) => r.loss));
      expect(readFileSync(join(killed, 'iter-2', 'emb', 'queries.npy'))).toEqual(readFileSync(join(dir, 'straight', 'iter-2', 'emb', 'queries.npy')));
      const again = JSON.parse(readFileSync(join(dir, 'again', 'manifest.json'), 'utf8')) as RunManifest;
      expect(again.iterations.map((r) => r.metrics)).toEqual(straight.iterations.map((r) => r.metrics));
      expect(JSON.parse(readFileSync(join(dir, 'straight', 'config.json'), 'utf8'))).toMatchObject({ db: files.db, iterations: 2, dim: 8, hidden: 16, k: 150, lr: 0.05 });
    });
  });
});

describe('report.html', () => {
  const manifest: RunManifest = {
    format: 'diffusion-distill-run', version: 1, status: 'done', options: { db: 'db.npy', iterations: 2, head: { kind: 'residual' } }, fingerprint: 'x',
    versions: { package: '0.1.0', backend: 'wasm' }, databaseSize: 9500, trainItems: 9500,
    baseline: { metrics: { mAP: 44.84 }, pr: [1, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.1], querySeconds: 0.5, queries: 500 },
    reranking: { method: 'cas', metrics: { mAP: 78.32 }, pr: new Array(11).fill(0.8), querySeconds: 23.3, queries: 500 },
    iterations: [
      { iteration: 1, metrics: { mAP: 67.5 }, pr: new Array(11).fill(0.7), querySeconds: 0.2, queries: 500, seconds: { diffuse: 60, train: 200 }, loss: [0.09, 0.08, 0.07] },
      { iteration: 2, metrics: { mAP: 68.25 }, pr: new Array(11).fill(0.72), querySeconds: 0.2, queries: 500, seconds: { diffuse: 50, train: 200 }, loss: [0.06, 0.055] },
    ],
    seconds: 590,
  };

  it('is one self-contained page with the table, three plots and the timings', () => {
    const html = renderReport(manifest, 'MNIST <demo>');
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).toContain('<title>MNIST &lt;demo&gt;</title>');
    for (const cell of ['44.84', '78.32', '67.50', '68.25', '23.30 s (46.60 ms/query)', 'distilled, iteration 2', 'CAS query re-ranking']) expect(html).toContain(cell);
    expect(html.match(/<svg /g)).toHaveLength(3);
    for (const title of ['Accuracy per iteration', 'Training loss', 'Precision–recall']) expect(html).toContain(title);
    // The loss plot has one point per epoch over both iterations.
    const lossSvg = html.slice(html.indexOf('Training loss'), html.indexOf('</svg>', html.indexOf('Training loss')));
    expect(lossSvg.match(/<circle /g)).toHaveLength(5);
    // No scripts and nothing fetched: the only URL is the SVG namespace.
    expect(html).not.toMatch(/<script|<link|src=|href=|url\(/i);
    expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:/);
  });
});
