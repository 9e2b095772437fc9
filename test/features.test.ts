/**
 * Features at the machine's speed: the image network written as ONNX gives the tfjs network's
 * rows (within 1e-4 per element after L2 normalisation, the acceptance's bound), for the shipped
 * MobileNet, a ResNet (residual adds, padding, pooling, whitening) and a backbone with a trained
 * head behind it; the photo pass keeps input order, skips or refuses unreadable photos, and
 * computes nothing twice across an interrupted run (keys: path, size, modification time).
 */
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { loadImageBytes, type ImageBytes } from '../src/io/images.js';
import { chain } from '../src/model/compose.js';
import { FeatureCache, photoKey } from '../src/model/featureCache.js';
import { buildHead, normalizedHead } from '../src/model/head.js';
import { buildImageModel, defaultScale } from '../src/model/image.js';
import { imageModelToOnnx } from '../src/model/onnxImage.js';
import { photoPass } from '../src/model/photoPass.js';
import { photoRunner, type PhotoRunner } from '../src/model/photoRunner.js';
import { buildResNet } from '../src/model/resnet.js';
import { featureFiles, featurePartsFolder } from '../src/model/run.js';
import { readNpy } from '../src/io/npy.js';
import { rng, withTempDir } from './helpers.js';

/** Random photos as bytes: `count` of each shape. */
function randomPhotos(shapes: readonly [number, number][], count: number, seed: number): ImageBytes[] {
  const r = rng(seed);
  return shapes.flatMap(([height, width]) => Array.from({ length: count }, () => ({ height, width, data: Uint8Array.from({ length: height * width * 3 }, () => Math.floor(256 * r())) })));
}

/** The largest difference of one element between two runners' rows for `photos`, run one shape at a time. */
async function largestDifference(a: PhotoRunner, b: PhotoRunner, photos: readonly ImageBytes[]): Promise<number> {
  let worst = 0;
  const shapes = [...new Set(photos.map((p) => `${p.height}x${p.width}`))];
  for (const s of shapes) {
    const group = photos.filter((p) => `${p.height}x${p.width}` === s);
    const [x, y] = [await a.run(group), await b.run(group)];
    expect(x.length).toBe(group.length * a.dim);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  }
  return worst;
}

describe('image networks on onnxruntime', async () => {
  await initBackend('wasm');
  const photos = randomPhotos([[48, 64], [64, 40]], 2, 7);

  it('the shipped MobileNet: the same rows as tfjs, batched by shape', async () => {
    const model = await buildImageModel({ backbone: 'mobilenet_v1_0.75', size: 64, resize: 'longer', channels: 3, whiten: null, seed: 0, scale: defaultScale('mobilenet_v1_0.75') });
    const [onnx, tfjs] = [await photoRunner(model, 'onnxruntime'), await photoRunner(model, 'tfjs')];
    expect([onnx.engine, tfjs.engine, onnx.dim]).toEqual(['onnxruntime', 'tfjs', 768]);
    expect(await largestDifference(onnx, tfjs, photos)).toBeLessThan(1e-4);
    await onnx.dispose();
    model.dispose();
  });

  it('a ResNet (adds, zero padding, max pooling, GeM, whitening): the same rows', async () => {
    for (const layout of ['plain', 'keras'] as const) {
      const model = buildResNet({ arch: 'small', size: null, channels: 3, whiten: 16, widths: [8, 16], seed: 3, layout });
      const [onnx, tfjs] = [await photoRunner(model, 'onnxruntime'), await photoRunner(model, 'tfjs')];
      expect(onnx.engine).toBe('onnxruntime');
      expect(await largestDifference(onnx, tfjs, photos)).toBeLessThan(1e-4);
      await onnx.dispose();
      model.dispose();
    }
  });

  it('a backbone with a trained head behind it (nested models, L2 normalisation, dense layers): the same rows', async () => {
    const backbone = await buildImageModel({ backbone: 'mobilenet_v1_0.75', size: 64, resize: 'longer', channels: 3, whiten: null, seed: 0, scale: 'symmetric' });
    const head = buildHead({ kind: 'residual', inputDim: 768, outputDim: 32, hidden: 24, init: 'random', seed: 5 });
    const whole = chain([backbone, normalizedHead(head)], 'image_embedder');
    const [onnx, tfjs] = [await photoRunner(whole, 'onnxruntime'), await photoRunner(whole, 'tfjs')];
    expect([onnx.engine, onnx.dim]).toEqual(['onnxruntime', 32]);
    expect(await largestDifference(onnx, tfjs, photos)).toBeLessThan(1e-4);
    await onnx.dispose();
    backbone.dispose();
    head.dispose();
  });

  it('a layer without an ONNX counterpart: auto keeps tfjs and says why, onnxruntime refuses', async () => {
    const input = tf.input({ shape: [null, null, 3] });
    const pooled = tf.layers.globalMaxPooling2d({ name: 'gmp' }).apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: pooled });
    expect(imageModelToOnnx(model)).toEqual({ unsupported: 'layer gmp (GlobalMaxPooling2D)' });
    const auto = await photoRunner(model, 'auto');
    expect([auto.engine, auto.why]).toEqual(['tfjs', 'layer gmp (GlobalMaxPooling2D)']);
    await expect(photoRunner(model, 'onnxruntime')).rejects.toThrow(/cannot run this network on onnxruntime: layer gmp .*--engine tfjs/);
    model.dispose();
  });
});

/** A runner that counts its calls: each photo's row is its mean byte and its height. */
function countingRunner(): PhotoRunner & { photos: number } {
  const r = {
    engine: 'tfjs' as const,
    dim: 2,
    photos: 0,
    run: async (batch: readonly ImageBytes[]) => {
      r.photos += batch.length;
      expect(new Set(batch.map((p) => `${p.height}x${p.width}`)).size).toBe(1);
      return Float32Array.from(batch.flatMap((p) => [p.data.reduce((s, v) => s + v, 0) / p.data.length, p.height]));
    },
    dispose: async () => undefined,
  };
  return r;
}

describe('the photo pass', () => {
  /** Six photos: grey levels 0, 50, …, 250, heights 8 and 16 alternating; and an unreadable one third. */
  async function photoFiles(dir: string): Promise<string[]> {
    mkdirSync(dir, { recursive: true });
    const paths: string[] = [];
    for (let i = 0; i < 6; i++) {
      const p = join(dir, `${i}.png`);
      await sharp({ create: { width: 16, height: i % 2 ? 16 : 8, channels: 3, background: { r: 50 * i, g: 50 * i, b: 50 * i } } }).png().toFile(p);
      paths.push(p);
    }
    writeFileSync(join(dir, 'bad.jpg'), 'not a jpeg');
    paths.splice(2, 0, join(dir, 'bad.jpg'));
    return paths;
  }

  it('keeps input order across shapes and windows, skips or refuses the unreadable photo', async () => {
    await withTempDir(async (dir) => {
      const paths = await photoFiles(dir);
      const runner = countingRunner();
      const skipped: string[] = [];
      const r = await photoPass(runner, paths, { size: 16, mode: 'longer', skipBad: true, window: 3, batch: 2, onSkip: (p) => skipped.push(p) });
      expect(skipped).toEqual([join(dir, 'bad.jpg')]);
      expect(r.kept).toEqual(paths.filter((p) => !p.endsWith('bad.jpg')));
      // Rows are the photos' own (grey level, height), in input order, whatever the batching.
      expect(Array.from(r.matrix.data)).toEqual([0, 8, 50, 16, 100, 8, 150, 16, 200, 8, 250, 16]);
      await expect(photoPass(countingRunner(), paths, { size: 16, mode: 'longer' })).rejects.toThrow(/bad\.jpg: cannot decode this image/);
    });
  });

  it('a cache computes each photo once, and again only when its file changed or the settings differ', async () => {
    await withTempDir(async (dir) => {
      const paths = (await photoFiles(join(dir, 'photos'))).filter((p) => !p.endsWith('bad.jpg'));
      const parts = join(dir, 'parts');
      const first = countingRunner();
      const a = await photoPass(first, paths, { size: 16, mode: 'longer', cache: new FeatureCache(parts, { size: 16 }) });
      expect([first.photos, a.cached]).toEqual([6, 0]);
      // A rerun (as after a crash) reads the parts back: nothing is computed.
      const second = countingRunner();
      const b = await photoPass(second, paths, { size: 16, mode: 'longer', cache: new FeatureCache(parts, { size: 16 }) });
      expect([second.photos, b.cached]).toEqual([0, 6]);
      expect(b.matrix.data).toEqual(a.matrix.data);
      // One photo touched since: only it is computed again.
      const key = photoKey(paths[4]!, null);
      utimesSync(paths[4]!, new Date(), new Date(Date.now() + 5000));
      expect(photoKey(paths[4]!, null)).not.toBe(key);
      const third = countingRunner();
      await photoPass(third, paths, { size: 16, mode: 'longer', cache: new FeatureCache(parts, { size: 16 }) });
      expect(third.photos).toBe(1);
      // Other settings: every photo again.
      const fourth = countingRunner();
      await photoPass(fourth, paths, { size: 8, mode: 'longer', cache: new FeatureCache(parts, { size: 8 }) });
      expect(fourth.photos).toBe(6);
    });
  });

  it('features: rows kept in <out>.parts while computed, read back by a rerun, removed when written', async () => {
    await withTempDir(async (dir) => {
      const paths = (await photoFiles(join(dir, 'photos'))).filter((p) => !p.endsWith('bad.jpg'));
      writeFileSync(join(dir, 'list.txt'), paths.join('\n'));
      const out = join(dir, 'f.npy');
      // An interrupted run left the rows of the first three photos (as its parts would hold them).
      const settings = { backbone: 'mobilenet_v1_0.75', cut: null, size: 32, resize: 'longer', scale: 'symmetric', weights: null, crops: null };
      const model = await buildImageModel({ backbone: 'mobilenet_v1_0.75', size: 32, resize: 'longer', channels: 3, whiten: null, seed: 0, scale: 'symmetric' });
      const runner = await photoRunner(model, 'tfjs');
      const early = new FeatureCache(featurePartsFolder(out), settings);
      for (const p of paths.slice(0, 3)) early.add(photoKey(p, null), await runner.run([await loadImageBytes(p, { size: 32, mode: 'longer' })]));
      early.flush();
      model.dispose();
      const r = await featureFiles({ images: join(dir, 'list.txt'), backbone: 'mobilenet_v1_0.75', size: 32, out });
      expect([r.rows, r.cached]).toEqual([6, 3]);
      const fresh = await featureFiles({ images: join(dir, 'list.txt'), backbone: 'mobilenet_v1_0.75', size: 32, out: join(dir, 'g.npy') });
      expect(fresh.cached).toBe(0);
      const [x, y] = [readNpy(out).data as Float32Array, readNpy(join(dir, 'g.npy')).data as Float32Array];
      expect(Math.max(...x.map((v, i) => Math.abs(v - y[i]!)))).toBeLessThan(1e-4);
      expect(existsSync(featurePartsFolder(out))).toBe(false);
    });
  });
});
