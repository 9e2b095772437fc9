/**
 * Photos out of the box: the shipped backbone, the default head on its frozen descriptors, and
 * the checks that run before any expensive stage.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/tfjs.js';
import { listImages } from '../src/io/images.js';
import { readMatrix } from '../src/matrix.js';
import { backboneFile, SHIPPED_BACKBONES } from '../src/model/backbones.js';
import { buildImageModel } from '../src/model/image.js';
import { loadModelFolder } from '../src/model/io.js';
import { embedImageList } from '../src/model/run.js';
import { bootstrap } from '../src/pipeline/bootstrap.js';
import type { RunManifest } from '../src/report/manifest.js';
import { colourImages, withTempDir } from './helpers.js';

const tinyCas = { params: { k1: 4, k2: 3, k3: 4, k4: 3, k5: 4 }, backend: 'wasm' as const, engine: 'js' as const };

describe('the shipped backbone', () => {
  it('is found by name, takes [-1, 1] input and gives 768-d GeM features; unknown names list the choices', async () => {
    await initBackend('wasm');
    expect(existsSync(backboneFile('mobilenet_v1_0.75'))).toBe(true);
    const model = await buildImageModel({ backbone: 'mobilenet_v1_0.75', size: 64, resize: 'longer', channels: 3, scale: SHIPPED_BACKBONES['mobilenet_v1_0.75']!.scale, whiten: null, seed: 0 });
    expect(model.outputs[0]!.shape).toEqual([null, 768]);
    expect(model.getLayer('image_scale')).toBeTruthy();
    model.dispose();
    expect(() => backboneFile('mobilenet_v9')).toThrow(/unknown backbone 'mobilenet_v9'.*shipped: mobilenet_v1_0\.75; built-in .*resnet50/);
  });
});

describe('image lists', () => {
  it('a single image file is one image, not a list file', async () => {
    await withTempDir(async (dir) => {
      const [photo] = await colourImages(join(dir, 'photos'), 1);
      expect(listImages(photo!)).toEqual([photo]);
      writeFileSync(join(dir, 'list.txt'), 'photos/00.jpg\n');
      expect(listImages(join(dir, 'list.txt'))).toEqual([photo]);
    });
  });
});

describe('bootstrap --images with the defaults', () => {
  it('trains a head on the frozen backbone; the saved image network embeds the photos as the run did from features/', async () => {
    await withTempDir(async (dir) => {
      const paths = await colourImages(join(dir, 'photos'), 16);
      const out = join(dir, 'run');
      const m: RunManifest = await bootstrap({ images: join(dir, 'photos'), groups: '4', out, iterations: 1, ...tinyCas, head: { dim: 8, hidden: 16 }, train: { steps: 6, batch: 16 } });
      expect(m.iterations).toHaveLength(1);
      const loaded = await loadModelFolder(join(out, 'iter-1', 'train'));
      expect(loaded.manifest.inputKind).toBe('images');
      expect(loaded.manifest.head).toMatchObject({ backbone: 'mobilenet_v1_0.75', freezeUntil: 'all', descriptorHead: { kind: 'residual', dim: 8, hidden: 16 } });
      expect(loaded.manifest.preprocess.image?.size).toBe(224); // the wasm default
      expect((loaded.manifest.provenance as { optimiser: { lr: number } }).optimiser.lr).toBe(0.05); // the photo recipe's
      const fromImages = (await embedImageList(loaded, paths)).matrix;
      const fromFeatures = readMatrix(join(out, 'iter-1', 'emb', 'db.npy'));
      expect(fromImages.cols).toBe(8);
      let worst = 0;
      for (let i = 0; i < fromImages.data.length; i++) worst = Math.max(worst, Math.abs(fromImages.data[i]! - fromFeatures.data[i]!));
      expect(worst).toBeLessThan(1e-4);
      loaded.model.dispose();
    });
  }, 120_000);

  it('refuses bad input before computing anything: an unreadable photo, too few photos for CAS, a head wider than the descriptors, an --out that is a file', async () => {
    await withTempDir(async (dir) => {
      await colourImages(join(dir, 'photos'), 12);
      writeFileSync(join(dir, 'photos', '05.jpg'), 'not a jpeg');
      const out = join(dir, 'run');
      await expect(bootstrap({ images: join(dir, 'photos'), out, iterations: 1, ...tinyCas })).rejects.toThrow(/05\.jpg: cannot read this image .*remove or replace it/);
      await colourImages(join(dir, 'photos'), 12);
      await expect(bootstrap({ images: join(dir, 'photos'), out, iterations: 1, backend: 'wasm' })).rejects.toThrow(/CAS with these parameters needs \d+ neighbours per item but there are only 12 items; use the small preset/);
      await expect(bootstrap({ images: join(dir, 'photos'), out, iterations: 1, ...tinyCas, head: { dim: 1000 } })).rejects.toThrow(/cannot output 1000 dimensions from 768-d descriptors; use --dim ≤ 768/);
      writeFileSync(join(dir, 'file'), 'x');
      await expect(bootstrap({ images: join(dir, 'photos'), out: join(dir, 'file', 'run'), iterations: 1, ...tinyCas })).rejects.toThrow(/--out .*file is a file, not a folder/);
      expect(existsSync(out)).toBe(false);
    });
  }, 60_000);
});
