import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, program } from '../src/cli/main.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { bruteClassMap, captureOutput, HAS_SHARED, ROOT, SHARED, gaussian, rng, withTempDir } from './helpers.js';

const { out, err } = captureOutput();

const run = (...args: string[]) => main(['node', 'ddistill', ...args]);

function writeRandom(path: string, rows: number, cols: number, seed: number): Float32Array {
  const g = gaussian(rng(seed));
  const data = Float32Array.from({ length: rows * cols }, g);
  writeNpy(path, { dtype: 'float32', shape: [rows, cols], data });
  return data;
}

describe.skipIf(!HAS_SHARED)('ddistill eval on revisited Oxford (shared data)', () => {
  const rox = join(SHARED, 'data', 'roxford5k');
  const base = ['eval', '--db', join(rox, 'lopq-caffenet-pca128.db.npy'), '--query', join(rox, 'lopq-caffenet-pca128.query.npy')];
  it.each(['gnd_roxford5k.pkl', 'gnd_roxford5k.json'])('prints E 28.89 / M 21.13 / H 4.60 with %s', async (gnd) => {
    expect(await run(...base, '--gnd', join(rox, gnd))).toBe(0);
    expect(out[0]).toBe('E 28.89 / M 21.13 / H 4.60\n');
  });
  it('--json prints one machine-readable line', async () => {
    expect(await run(...base, '--gnd', join(rox, 'gnd_roxford5k.pkl'), '--json')).toBe(0);
    expect(out).toHaveLength(1);
    const rep = JSON.parse(out[0]!);
    expect(rep.mAP).toEqual({ easy: 28.89, medium: 21.13, hard: 4.6 });
    expect(rep.queries).toBe(70);
  });
  it('--gnd roxford5k names the ground truth shipped in data/: the same figures, no path', async () => {
    expect(await run(...base, '--gnd', 'roxford5k')).toBe(0);
    expect(out[0]).toBe('E 28.89 / M 21.13 / H 4.60\n');
  });
  it('a truncated CAS ranking (top 50) is completed by cosine distance: the mAP of its 50 items followed by the cosine ranking', async () => {
    await withTempDir(async (dir) => {
      expect(await run('diffuse', '--db', base[2]!, '--queries', base[4]!, '--top-k', '50', '--out', join(dir, 'cas'))).toBe(0);
      out.length = 0;
      expect(await run('eval', '--ranks', join(dir, 'cas'), '--gnd', 'roxford5k', '--json')).toBe(0);
      const completedByBase = JSON.parse(out[0]!);
      expect(completedByBase.completion).toBe('base distance');
      const cas = readNpy(join(dir, 'cas', 'indices.npy')).data as Int32Array;
      expect(await run('search', '--db', base[2]!, '--queries', base[4]!, '--top-k', '4993', '--out', join(dir, 'cos'))).toBe(0);
      const full = readNpy(join(dir, 'cos', 'indices.npy')).data as Int32Array;
      const joined = new Int32Array(70 * 4993);
      for (let q = 0; q < 70; q++) {
        const head = Array.from(cas.subarray(q * 50, (q + 1) * 50));
        const inHead = new Set(head);
        const tail = Array.from(full.subarray(q * 4993, (q + 1) * 4993)).filter((j) => !inHead.has(j));
        joined.set([...head, ...tail], q * 4993);
      }
      writeNpy(join(dir, 'joined.npy'), { dtype: 'int32', shape: [70, 4993], data: joined });
      out.length = 0;
      expect(await run('eval', '--ranks', join(dir, 'joined.npy'), '--gnd', 'roxford5k', '--json')).toBe(0);
      expect(completedByBase.mAP).toEqual(JSON.parse(out[0]!).mAP);
    });
  });
  it('names both files when the descriptors do not match the ground truth', async () => {
    await withTempDir(async (dir) => {
      writeRandom(join(dir, 'db.npy'), 100, 128, 1);
      expect(await run('eval', '--db', join(dir, 'db.npy'), '--query', base[4]!, '--gnd', join(rox, 'gnd_roxford5k.pkl'))).toBe(1);
      expect(err.join('')).toMatch(/^ddistill: error: .*db\.npy has 100 rows but the ground truth describes 4993 database items.*\n$/);
    });
  });
});

describe('ddistill search then eval', () => {
  it('writes indices/distances/search.json and evaluates them with class labels', async () => {
    await withTempDir(async (dir) => {
      // Two well-separated classes: every neighbour list of length 4 stays in its class.
      const g = gaussian(rng(7));
      const data = Float32Array.from({ length: 20 * 3 }, (_, i) => (Math.floor(i / 30) === 0 ? 10 : -10) + g() * 0.1);
      writeNpy(join(dir, 'db.npy'), { dtype: 'float32', shape: [20, 3], data });
      writeFileSync(join(dir, 'labels.txt'), Array.from({ length: 20 }, (_, i) => (i < 10 ? 'a' : 'b')).join('\n') + '\n');
      expect(await run('search', '--db', join(dir, 'db.npy'), '-k', '9', '--exclude-self', '--metric', 'euclidean', '--out', join(dir, 'res'))).toBe(0);
      expect(readdirSync(join(dir, 'res')).sort()).toEqual(['distances.npy', 'indices.npy', 'search.json']);
      const idx = readNpy(join(dir, 'res', 'indices.npy'));
      expect(idx.dtype).toBe('int32');
      expect(idx.shape).toEqual([20, 9]);
      out.length = 0;
      expect(await run('eval', '--ranks', join(dir, 'res'), '--labels', join(dir, 'labels.txt'), '--json')).toBe(0);
      expect(JSON.parse(out[0]!)).toMatchObject({ protocol: 'class', mAP: 100, queries: 20 });
      out.length = 0;
      expect(await run('eval', '--db', join(dir, 'db.npy'), '--groups', '10', '--json')).toBe(0);
      expect(JSON.parse(out[0]!)).toMatchObject({ protocol: 'ns', nsScore: 4 });
    });
  });
});

describe('bad input: one line naming the file, exit 1, no output left behind', () => {
  const cases: [string, (dir: string) => string[], RegExp][] = [
    ['missing database', (d) => ['search', '--db', join(d, 'nope.npy'), '--out', join(d, 'o')], /nope\.npy: cannot open \(ENOENT\)/],
    ['k larger than n', (d) => ['search', '--db', join(d, 'db.npy'), '-k', '50', '--out', join(d, 'o')], /k = 50 is larger than the 30 database items available in .*db\.npy/],
    ['query dimension', (d) => ['search', '--db', join(d, 'db.npy'), '--query', join(d, 'q5.npy'), '--out', join(d, 'o')], /queries have 5 dimensions but .*db\.npy has 8/],
    ['NaN row', (d) => ['search', '--db', join(d, 'nan.npy'), '-k', '3', '--out', join(d, 'o')], /nan\.npy: row 4 contains NaN/],
    ['labels count', (d) => ['eval', '--db', join(d, 'db.npy'), '--labels', join(d, 'labels.txt')], /db\.npy has 30 rows but the ground truth describes 3 database items/],
    ['no ground truth', (d) => ['eval', '--db', join(d, 'db.npy')], /exactly one kind of ground truth/],
    ['unknown benchmark', (d) => ['eval', '--db', join(d, 'db.npy'), '--gnd', 'roxford'], /roxford: no such ground-truth file or benchmark; give a gnd_\*\.pkl\/\.json file or one of roxford5k, rparis6k/],
  ];
  it.each(cases)('%s', async (_name, args, message) => {
    await withTempDir(async (dir) => {
      writeRandom(join(dir, 'db.npy'), 30, 8, 1);
      writeRandom(join(dir, 'q5.npy'), 4, 5, 2);
      const nan = writeRandom(join(dir, 'nan.npy'), 6, 8, 3);
      nan[4 * 8 + 2] = NaN;
      writeNpy(join(dir, 'nan.npy'), { dtype: 'float32', shape: [6, 8], data: nan });
      writeFileSync(join(dir, 'labels.txt'), 'a\nb\na\n');
      expect(await run(...args(dir))).toBe(1);
      const text = err.join('');
      expect(text).toMatch(message);
      expect(text.trimEnd().split('\n')).toHaveLength(1);
      expect(existsSync(join(dir, 'o'))).toBe(false);
    });
  });

  it('rejects a non-integer k before doing any work', async () => {
    expect(await run('search', '--db', 'x.npy', '-k', 'ten', '--out', 'o')).toBe(1);
    expect(err.join('')).toMatch(/expected a positive integer/);
  });
});

describe('--help documents every option', () => {
  it.each([
    ['search', ['--db', '--queries', '--top-k', '--metric', '--exclude-self', '--out', '--engine', '--json', 'Examples']],
    ['eval', ['--db', '--queries', '--metric', '--ranks', '--scores', '--order', '--gnd', '--labels', '--query-labels', '--groups', '--query-groups', '--json', 'Examples']],
    ['triplets', ['--ranks', '--out', '--triplet-range', '--m0', '--per-anchor', '--seed', '--json', 'Example']],
    ['diffuse', ['--method', '--db', '--queries', '--out', '--top-k', '--preset', '--params', '--no-geodesic', '--converged', '--no-normalize', '--engine', '--json', 'Examples', 'k1=6']],
  ] as const)('%s', async (cmd, options) => {
    expect(await run(cmd, '--help')).toBe(0);
    const text = out.join('');
    for (const o of options) expect(text).toContain(o);
  });
});

describe('one vocabulary across commands', () => {
  it('query descriptors are --queries, result counts --top-k, the triplet range --triplet-range; --query and -k are hidden', async () => {
    for (const cmd of ['search', 'eval', 'diffuse', 'train', 'embed', 'bootstrap', 'triplets']) {
      out.length = 0;
      expect(await run(cmd, '--help')).toBe(0);
      const text = out.join('');
      expect(text, cmd).not.toMatch(/--query </);
      expect(text, cmd).not.toMatch(/-k, --k/);
      if (['search', 'eval', 'diffuse', 'train', 'embed', 'bootstrap'].includes(cmd)) expect(text, cmd).toContain('--queries <file.npy>');
      if (['train', 'bootstrap', 'triplets'].includes(cmd)) expect(text, cmd).toContain('--triplet-range <n');
    }
  });

  it('the old spellings give the same result as the new ones', async () => {
    await withTempDir(async (dir) => {
      const r = rng(3);
      writeNpy(join(dir, 'db.npy'), { dtype: 'float32', shape: [20, 4], data: Float32Array.from({ length: 80 }, () => r()) });
      writeNpy(join(dir, 'q.npy'), { dtype: 'float32', shape: [3, 4], data: Float32Array.from({ length: 12 }, () => r()) });
      expect(await run('search', '--db', join(dir, 'db.npy'), '--queries', join(dir, 'q.npy'), '--top-k', '5', '--out', join(dir, 'new'))).toBe(0);
      expect(await run('search', '--db', join(dir, 'db.npy'), '--query', join(dir, 'q.npy'), '-k', '5', '--out', join(dir, 'old'))).toBe(0);
      const indices = (f: string) => Array.from(readNpy(join(dir, f, 'indices.npy')).data as Int32Array);
      expect(indices('old')).toEqual(indices('new'));
      expect(indices('new')).toHaveLength(15);
    });
  });
});

describe('help text layout', () => {
  it('keeps command descriptions within 80 columns (commander re-wraps longer lines)', () => {
    const prog = program();
    for (const c of [prog, ...prog.commands]) {
      for (const line of c.description().split('\n')) expect(line.length, `${c.name()}: ${line}`).toBeLessThanOrEqual(80);
    }
  });
});

const HAS_DIST = existsSync(join(ROOT, 'dist', 'cli', 'main.js'));
if (!HAS_DIST) console.warn(`${join(ROOT, 'dist')} is absent: skipping the installed-bin tests (npm run build, or npm ci, builds it)`);
describe.skipIf(!HAS_DIST)('the installed bin', () => {
  it('runs as a process and exits 1 with one line on bad input', () => {
    const bin = join(ROOT, 'bin', 'ddistill.js');
    expect(execFileSync('node', [bin, '--version']).toString().trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const res = spawnSync('node', [bin, 'eval', '--db', 'missing.npy', '--groups', '4']);
    expect(res.status).toBe(1);
    expect(res.stderr.toString()).toBe('ddistill: error: missing.npy: cannot open (ENOENT); check the path\n');
  });
});

describe('ddistill diffuse', () => {
  it('self-ranks with LCDP, writes the three files, and eval reads the folder', async () => {
    await withTempDir(async (dir) => {
      // Three tight clusters of 20: every top-10 list stays inside its cluster.
      const g = gaussian(rng(5));
      const data = Float32Array.from({ length: 60 * 4 }, (_, i) => (Math.floor(i / 4) % 3 === Math.floor((i % 4) / 2) ? 5 : 0) + g() * 0.05 + 1);
      writeNpy(join(dir, 'db.npy'), { dtype: 'float32', shape: [60, 4], data });
      writeFileSync(join(dir, 'labels.json'), JSON.stringify(Array.from({ length: 60 }, (_, i) => i % 3)));
      expect(await run('diffuse', '--method', 'lcdp', '--db', join(dir, 'db.npy'), '--top-k', '10', '--out', join(dir, 'd'), '--json')).toBe(0);
      const manifest = JSON.parse(out[0]!);
      expect(manifest).toMatchObject({ method: 'lcdp', mode: 'self', rows: 60, k: 10, order: 'descending' });
      expect(manifest.parameters.k).toBe(10);
      expect(Object.keys(manifest.timings)).toContain('diffusion');
      expect(readdirSync(join(dir, 'd')).sort()).toEqual(['diffusion.json', 'indices.npy', 'scores.npy']);
      out.length = 0;
      expect(await run('eval', '--ranks', join(dir, 'd'), '--labels', join(dir, 'labels.json'), '--json')).toBe(0);
      expect(JSON.parse(out[0]!).mAP).toBeGreaterThan(30);
      out.length = 0;
      expect(await run('triplets', '--ranks', join(dir, 'd'), '-k', '8', '--per-anchor', '2', '--out', join(dir, 't'), '--json')).toBe(0);
      expect(JSON.parse(out[0]!)).toMatchObject({ anchors: 60, count: 120, k: 8 });
      expect(readdirSync(join(dir, 't')).sort()).toEqual(['margins.npy', 'triplets.json', 'triplets.npy']);
    });
  });

  it('checks its output folder before any work: a file on the way is one line', async () => {
    await withTempDir(async (dir) => {
      writeRandom(join(dir, 'db.npy'), 40, 4, 1);
      writeFileSync(join(dir, 'some-file.npy'), 'x');
      expect(await run('diffuse', '--db', join(dir, 'db.npy'), '--preset', 'small', '--out', join(dir, 'some-file.npy', 'sub'))).toBe(1);
      expect(err.join('')).toMatch(/^ddistill: error: --out \S+sub: \S+some-file\.npy is a file, not a folder; choose another --out\n$/);
    });
  });

  it('rejects unknown parameters and CAS-only flags for other methods', async () => {
    await withTempDir(async (dir) => {
      writeRandom(join(dir, 'db.npy'), 40, 4, 1);
      expect(await run('diffuse', '--db', join(dir, 'db.npy'), '--preset', 'small', '--params', '{"k9": 3}', '--out', join(dir, 'o'))).toBe(1);
      expect(err.join('')).toMatch(/--params: unknown cas parameter 'k9'; known: sigma, k1/);
      expect(await run('diffuse', '--method', 'iscen', '--db', join(dir, 'db.npy'), '--no-geodesic', '--out', join(dir, 'o'))).toBe(1);
      expect(err.join('')).toMatch(/apply to CAS only/);
      expect(await run('diffuse', '--db', join(dir, 'db.npy'), '--out', join(dir, 'o'))).toBe(1);
      expect(err.join('')).toMatch(/needs 70 neighbours per item but there are only 40 items; use the small preset/);
      expect(existsSync(join(dir, 'o'))).toBe(false);
    });
  });
});

describe('ddistill train, embed and export', () => {
  /** Three clusters of 40 in 6-d (well separated), and 12 queries drawn apart from them, written with labels. */
  function clusters(dir: string): void {
    const g = gaussian(rng(8));
    const draw = (rows: number) => Float32Array.from({ length: rows * 6 }, (_, i) => (Math.floor(i / 6) % 3 === (i % 6) % 3 ? 3 : 0) + g() * 0.3 + 0.5);
    writeNpy(join(dir, 'db.npy'), { dtype: 'float32', shape: [120, 6], data: draw(120) });
    writeNpy(join(dir, 'q.npy'), { dtype: 'float32', shape: [12, 6], data: draw(12) });
    writeFileSync(join(dir, 'labels.txt'), Array.from({ length: 120 }, (_, i) => i % 3).join('\n'));
    writeFileSync(join(dir, 'qlabels.txt'), Array.from({ length: 12 }, (_, i) => i % 3).join('\n'));
  }

  it('diffuse → train (config file, validation) → embed → eval, and export', async () => {
    await withTempDir(async (dir) => {
      clusters(dir);
      expect(await run('diffuse', '--db', join(dir, 'db.npy'), '--preset', 'small', '--top-k', '60', '--out', join(dir, 'teacher'))).toBe(0);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ dim: 4, hidden: 8, epochs: 2, batch: 16, k: 50, lr: 0.5, backend: 'wasm', engine: 'js' }));
      out.length = 0;
      err.length = 0;
      const train = ['train', '--db', join(dir, 'db.npy'), '--ranks', join(dir, 'teacher'), '--out', join(dir, 'run'), '--config', join(dir, 'config.json')];
      const validation = ['--queries', join(dir, 'q.npy'), '--labels', join(dir, 'labels.txt'), '--query-labels', join(dir, 'qlabels.txt')];
      expect(await run(...train, '--lr', '0.05', ...validation, '--json')).toBe(0);
      expect(err.join('')).toMatch(/^backend: wasm/);
      expect(err.join('')).toMatch(/epoch 2: loss [\d.]+, active hinges [\d.]+ %, \d+ triplets\/s, .*validation mAP [\d.]+/);
      const summary = JSON.parse(out[0]!);
      expect(summary).toMatchObject({ backend: 'wasm', steps: 2 * Math.ceil(1200 / 16), tripletRange: 50 });
      const record = JSON.parse(readFileSync(join(dir, 'run', 'train.json'), 'utf8'));
      // The flag given on the command line wins over the config file; the rest come from it.
      expect(record.options).toMatchObject({ lr: 0.05, batch: 16, epochs: 2, triplets: { k: 50, m0: 0.1, perAnchor: 10 } });
      expect(record.head).toMatchObject({ kind: 'residual', dim: 4, hidden: 8 });
      expect(readdirSync(join(dir, 'run')).sort()).toEqual(['checkpoint', 'model', 'train.json']);
      expect(readdirSync(join(dir, 'run', 'model')).sort()).toEqual(['manifest.json', 'model.json', 'weights.bin']);
      out.length = 0;
      expect(await run('embed', '--model', join(dir, 'run'), '--db', join(dir, 'db.npy'), '--queries', join(dir, 'q.npy'), '--out', join(dir, 'emb'), '--backend', 'wasm')).toBe(0);
      expect(readNpy(join(dir, 'emb', 'db.npy')).shape).toEqual([120, 4]);
      out.length = 0;
      expect(await run('eval', '--db', join(dir, 'emb', 'db.npy'), '--query', join(dir, 'emb', 'queries.npy'), '--metric', 'euclidean', '--labels', join(dir, 'labels.txt'), '--query-labels', join(dir, 'qlabels.txt'), '--json')).toBe(0);
      // The figure is Euclidean search on the embeddings of unseen queries (brute force), and the
      // well-separated clusters stay separated.
      const npy = (f: string) => {
        const a = readNpy(join(dir, 'emb', f));
        return { rows: a.shape[0]!, cols: a.shape[1]!, data: a.data as Float32Array };
      };
      const labelsOf = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map(Number);
      const brute = bruteClassMap(npy('db.npy'), npy('queries.npy'), labelsOf('labels.txt'), labelsOf('qlabels.txt'));
      expect(Math.abs(JSON.parse(out[0]!).mAP - brute)).toBeLessThan(0.006);
      expect(brute).toBeGreaterThan(90);
      out.length = 0;
      expect(await run('export', '--model', join(dir, 'run'), '--out', join(dir, 'exported'), '--backend', 'wasm')).toBe(0);
      expect(out[0]).toMatch(/6-d descriptors → 4-d embeddings/);
      // Training again into the same folder needs --resume; resuming a finished run only re-saves it.
      expect(await run(...train)).toBe(1);
      expect(err.join('')).toMatch(/already holds a training checkpoint; add --resume/);
      expect(await run(...train, '--lr', '0.05', '--resume')).toBe(0);
    });
  });

  it('rejects bad config files and mismatched inputs with one line', async () => {
    await withTempDir(async (dir) => {
      clusters(dir);
      expect(await run('diffuse', '--db', join(dir, 'db.npy'), '--preset', 'small', '--top-k', '60', '--out', join(dir, 'teacher'))).toBe(0);
      const train = ['train', '--db', join(dir, 'db.npy'), '--ranks', join(dir, 'teacher'), '--out', join(dir, 'run'), '--backend', 'wasm'];
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ learningRate: 0.1 }));
      err.length = 0;
      expect(await run(...train, '--config', join(dir, 'bad.json'))).toBe(1);
      expect(err.join('')).toMatch(/bad\.json: unknown option 'learningRate'; use the long flag names in camelCase/);
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ head: 'cnn' }));
      expect(await run(...train, '--config', join(dir, 'bad.json'))).toBe(1);
      expect(err.join('')).toMatch(/option 'head'.*Allowed choices are residual, linear, mlp/);
      expect(await run(...train, '--dim', '7')).toBe(1);
      expect(err.join('')).toMatch(/cannot output 7 dimensions from 6-d descriptors; use --dim ≤ 6 or --init random/);
      expect(existsSync(join(dir, 'run'))).toBe(false);
      expect(await run('train', '--db', join(dir, 'q.npy'), '--ranks', join(dir, 'teacher'), '--out', join(dir, 'run2'))).toBe(1);
      expect(err.join('')).toMatch(/ranks 120 items but .*q\.npy has 12 rows/);
      expect(existsSync(join(dir, 'run2'))).toBe(false);
      // Image mode: one source of database items, queries of the same kind, sizes in pixels or presets.
      err.length = 0;
      expect(await run('bootstrap', '--db', join(dir, 'db.npy'), '--images', dir, '--out', join(dir, 'run3'))).toBe(1);
      expect(err.join('')).toMatch(/give either --db \(descriptors\) or --images/);
      expect(await run('bootstrap', '--images', join(dir, 'none'), '--out', join(dir, 'run3'))).toBe(1);
      expect(err.join('')).toMatch(/none: no such folder or list file/);
      expect(await run('features', '--images', dir, '--backbone', 'small', '--image-size', 'huge', '--out', join(dir, 'f.npy'))).toBe(1);
      expect(err.join('')).toMatch(/expected pixels \(an integer ≥ 8\) or a preset \(paper = 600, cpu = 224\)/);
      expect(existsSync(join(dir, 'run3'))).toBe(false);
    });
  });
});
