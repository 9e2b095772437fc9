import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { openCollection } from '../src/collection/collection.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { trainImages } from '../src/train/images.js';
import { captureOutput, gaussian, rng, withTempDir } from './helpers.js';

const { out, err } = captureOutput();
const run = (...args: string[]) => main(['node', 'ddistill', ...args]);

/** `n` 16 × 16 PNGs named from `first`: a bright quadrant (class i % 4) over noise. */
async function photos(dir: string, first: number, n: number, seed: number): Promise<string[]> {
  const r = rng(seed);
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (let i = first; i < first + n; i++) {
    const c = i % 4;
    const data = Buffer.alloc(16 * 16 * 3);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
      const inside = (y < 8) === (c < 2) && (x < 8) === (c % 2 === 0);
      for (let k = 0; k < 3; k++) data[(y * 16 + x) * 3 + k] = Math.round((inside ? 160 : 40) + 60 * r());
    }
    const path = join(dir, `${String(i).padStart(3, '0')}.png`);
    await sharp(data, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path);
    paths.push(path);
  }
  return paths;
}

/** A small image model trained on 24 photos with a class-aware teacher. */
async function trainedModel(dir: string): Promise<string> {
  await photos(join(dir, 'train'), 0, 24, 1);
  const ranks = new Int32Array(24 * 23);
  for (let a = 0; a < 24; a++) ranks.set([...Array(24).keys()].filter((b) => b !== a).sort((p, q) => Number(q % 4 === a % 4) - Number(p % 4 === a % 4) || p - q), a * 23);
  writeNpy(join(dir, 'teacher', 'indices.npy'), { dtype: 'int32', shape: [24, 23], data: ranks });
  await trainImages({
    images: join(dir, 'train'), backbone: 'small', widths: [4, 8], size: 16, whiten: 6, ranks: join(dir, 'teacher'), backend: 'wasm', out: join(dir, 'run'),
    train: { batch: 8, lr: 0.05, epochs: 1, microBatch: 4, batchNorm: 'frozen', triplets: { k: 12, m0: 0.2, perAnchor: 2 } },
  });
  return join(dir, 'run');
}

describe('collections: ddistill index and query', () => {
  it('a query by image gets the top-k of ddistill embed + exact ddistill search, by CLI and API; appended images are found', async () => {
    await withTempDir(async (dir) => {
      const model = await trainedModel(dir);
      const db = await photos(join(dir, 'db'), 100, 30, 2);
      const q = await photos(join(dir, 'q'), 200, 3, 3);
      const coll = join(dir, 'coll');
      expect(await run('index', '--model', model, '--images', join(dir, 'db'), '--out', coll, '--backend', 'wasm')).toBe(0);
      // The independent answer: embed database and queries, then exact Euclidean search.
      writeFileSync(join(dir, 'q.txt'), q.join('\n') + '\n');
      expect(await run('embed', '--model', model, '--images', join(dir, 'db'), '--out', join(dir, 'emb-db'), '--backend', 'wasm')).toBe(0);
      expect(await run('embed', '--model', model, '--images', join(dir, 'q.txt'), '--out', join(dir, 'emb-q'), '--backend', 'wasm')).toBe(0);
      expect(await run('search', '--db', join(dir, 'emb-db', 'images.npy'), '--queries', join(dir, 'emb-q', 'images.npy'), '--top-k', '5', '--metric', 'euclidean', '--out', join(dir, 'res'))).toBe(0);
      const want = readNpy(join(dir, 'res', 'indices.npy')).data as Int32Array;
      out.length = 0;
      expect(await run('query', '--collection', coll, '--image', ...q, '--top-k', '5', '--json', '--backend', 'wasm')).toBe(0);
      const got = out.map((l) => JSON.parse(l) as { query: string; neighbours: { id: number; path: string; distance: number }[] });
      expect(got).toHaveLength(3);
      got.forEach((g, r) => {
        expect(g.query).toBe(q[r]);
        expect(g.neighbours.map((h) => h.id)).toEqual(Array.from(want.subarray(r * 5, (r + 1) * 5)));
        expect(g.neighbours.map((h) => h.path)).toEqual(g.neighbours.map((h) => db[h.id]));
      });
      // The library API answers the same.
      const c = await openCollection(coll, { backend: 'wasm' });
      expect(c.count).toBe(30);
      const api = await c.query({ images: q }, { k: 5 });
      expect(api.map((hits) => hits.map((h) => h.id))).toEqual(got.map((g) => g.neighbours.map((h) => h.id)));
      c.close();

      // Append: copies of three query photos join the collection; each query then finds its copy first, at distance ≈ 0.
      mkdirSync(join(dir, 'more'));
      q.forEach((p, i) => copyFileSync(p, join(dir, 'more', `copy-${i}.png`)));
      expect(await run('index', '--images', join(dir, 'more'), '--out', coll, '--append', '--backend', 'wasm')).toBe(0);
      const manifest = JSON.parse(readFileSync(join(coll, 'collection.json'), 'utf8'));
      expect(manifest.count).toBe(33);
      out.length = 0;
      expect(await run('query', '--collection', coll, '--image', ...q, '--top-k', '3', '--json', '--backend', 'wasm')).toBe(0);
      out.map((l) => JSON.parse(l)).forEach((g: { neighbours: { id: number; path: string; distance: number }[] }, r: number) => {
        expect(g.neighbours[0]).toMatchObject({ id: 30 + r, path: join(dir, 'more', `copy-${r}.png`) });
        expect(g.neighbours[0]!.distance).toBeLessThan(1e-3); // float32 rounding of ‖a‖² + ‖b‖² − 2a·b
      });
    });
  });

  it('above the ANN threshold: appending extends the HNSW index, which finds each new vector first, as exact search does', async () => {
    await withTempDir(async (dir) => {
      // A descriptor-free check of the index path: embeddings given as they are.
      const model = await trainedModel(dir);
      const g = gaussian(rng(5));
      const n = 400;
      const unit = (rows: number) => {
        const d = Float32Array.from({ length: rows * 6 }, g);
        for (let i = 0; i < rows; i++) {
          let s = 0;
          for (let l = 0; l < 6; l++) s += d[i * 6 + l]! ** 2;
          for (let l = 0; l < 6; l++) d[i * 6 + l]! /= Math.sqrt(s);
        }
        return d;
      };
      writeNpy(join(dir, 'e.npy'), { dtype: 'float32', shape: [n, 6], data: unit(n) });
      const coll = join(dir, 'coll');
      expect(await run('index', '--model', model, '--embeddings', join(dir, 'e.npy'), '--out', coll, '--ann-threshold', '100')).toBe(0);
      const more = unit(50);
      writeNpy(join(dir, 'more.npy'), { dtype: 'float32', shape: [50, 6], data: more });
      expect(await run('index', '--embeddings', join(dir, 'more.npy'), '--out', coll, '--append')).toBe(0);
      const c = await openCollection(coll);
      expect(c.approximate).toBe(true);
      expect(c.manifest.index?.size).toBe(450);
      const queries = { rows: 50, cols: 6, data: more };
      const approx = await c.query({ embeddings: queries }, { k: 1 });
      const exact = await c.query({ embeddings: queries }, { k: 10, exact: true });
      // Each appended vector is its own nearest item, in both answers.
      approx.forEach((hits, r) => expect(hits[0]!.id).toBe(400 + r));
      exact.forEach((hits, r) => expect(hits[0]!.id).toBe(400 + r));
      c.close();
    });
  });

  it('refuses bad input in one line before any work', async () => {
    await withTempDir(async (dir) => {
      const model = await trainedModel(dir);
      const other = await trainedModel(join(dir, 'other'));
      await photos(join(dir, 'db'), 0, 4, 4);
      const coll = join(dir, 'coll');
      expect(await run('index', '--model', model, '--images', join(dir, 'db'), '--out', coll, '--backend', 'wasm')).toBe(0);
      writeFileSync(join(dir, 'bad.jpg'), 'not an image');
      writeFileSync(join(dir, 'two.txt'), 'a\nb\n');
      writeNpy(join(dir, 'v5.npy'), { dtype: 'float32', shape: [1, 5], data: new Float32Array(5) });
      const cases: [string[], RegExp][] = [
        [['query', '--collection', coll, '--image', join(dir, 'bad.jpg')], /bad\.jpg: cannot decode this image/],
        [['query', '--collection', coll, '--vector', join(dir, 'v5.npy')], /this collection's model embeds images; query with --image/],
        [['query', '--collection', coll, '--embedding', join(dir, 'v5.npy')], /query embeddings are 5-d but the collection holds 6-d embeddings/],
        [['query', '--collection', join(dir, 'db'), '--image', join(dir, 'bad.jpg')], /not a collection \(no collection\.json\)/],
        [['index', '--model', model, '--images', join(dir, 'db'), '--out', coll], /already a collection; pass --append/],
        [['index', '--model', model, '--db', join(dir, 'v5.npy'), '--out', join(dir, 'c2')], /this model embeds images; give --images/],
        [['index', '--model', other, '--images', join(dir, 'db'), '--out', coll, '--append'], /not the model this collection was built with/],
        [['index', '--model', model, '--images', join(dir, 'db'), '--labels', join(dir, 'two.txt'), '--out', join(dir, 'c3')], /two\.txt: 2 labels for 4 items; give one label per item/],
      ];
      for (const [args, pattern] of cases) {
        err.length = 0;
        expect(await run(...args)).toBe(1);
        expect(err.join('')).toMatch(pattern);
        expect(err.join('').trim().split('\n')).toHaveLength(1);
      }
    });
  });
});
