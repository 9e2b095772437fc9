import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { listImages, loadImage } from '../src/io/images.js';
import { buildResNet, GeM } from '../src/model/resnet.js';
import { chain, cutAt, splitAt } from '../src/model/compose.js';
import { buildImageModel, defaultScale } from '../src/model/image.js';
import { bootstrap } from '../src/pipeline/bootstrap.js';
import { fileHandler } from '../src/model/io.js';
import { embedFiles, exportModel, featureFiles } from '../src/model/run.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { layerOutputFloats, trainImages } from '../src/train/images.js';
import { zeroMomentum } from '../src/train/sgd.js';
import { sgdStep } from '../src/train/step.js';
import { bruteClassMap, rng, withTempDir } from './helpers.js';

/**
 * `n` PNGs in `dir` of 4 classes (image i has class i % 4): a bright square in quadrant c over
 * noise, 16 wide and 16, 12 or 8 high.
 */
async function quadrantImages(dir: string, n: number, seed: number): Promise<{ labels: number[]; heights: number[] }> {
  const r = rng(seed);
  const labels: number[] = [];
  const heights: number[] = [];
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    const h = 16 - 4 * (Math.floor(i / 4) % 3);
    labels.push(c);
    heights.push(h);
    const data = Buffer.alloc(h * 16 * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < 16; x++) {
        const inside = (y < h / 2) === (c < 2) && (x < 8) === (c % 2 === 0);
        for (let k = 0; k < 3; k++) data[(y * 16 + x) * 3 + k] = Math.round((inside ? 160 : 40) + 60 * r());
      }
    }
    await sharp(data, { raw: { width: 16, height: h, channels: 3 } }).png().toFile(join(dir, `${String(i).padStart(2, '0')}.png`));
  }
  return { labels, heights };
}

/** A w × h PNG: left half red, right half blue. */
async function halves(path: string, w: number, h: number): Promise<void> {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(x < w / 2 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
  await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
}

describe('image loading with sharp', () => {
  it('lists a folder, resizes, crops, and names unreadable files', async () => {
    await withTempDir(async (dir) => {
      await halves(join(dir, 'a.png'), 40, 20);
      await sharp({ create: { width: 30, height: 30, channels: 4, background: { r: 0, g: 255, b: 0, alpha: 0.5 } } }).webp().toFile(join(dir, 'b.webp'));
      writeFileSync(join(dir, 'c.jpg'), 'not a jpeg');
      writeFileSync(join(dir, 'notes.txt'), 'ignored');
      const paths = listImages(dir);
      expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(['a.png', 'b.webp', 'c.jpg']);

      const square = await loadImage(paths[0]!, { size: 16 });
      expect([square.height, square.width, square.data.length]).toEqual([16, 16, 16 * 16 * 3]);
      expect(Math.max(...square.data)).toBeLessThanOrEqual(1);
      const longer = await loadImage(paths[0]!, { size: 16, mode: 'longer' });
      expect([longer.height, longer.width]).toEqual([8, 16]);
      // The right half of the picture is blue: crop it and every pixel is (0, 0, 1).
      const crop = await loadImage(paths[0]!, { size: 4, crop: [20, 0, 40, 20] });
      for (let i = 0; i < 16; i++) expect(Array.from(crop.data.subarray(3 * i, 3 * i + 3))).toEqual([0, 0, 1]);

      await expect(loadImage(paths[2]!, { size: 8 })).rejects.toThrow(/c\.jpg: cannot decode this image/);
      writeFileSync(join(dir, 'list.txt'), 'b.webp\n# comment\na.png\n');
      expect(listImages(join(dir, 'list.txt'))).toEqual([join(dir, 'b.webp'), join(dir, 'a.png')]);
    });
  });
});

describe('image-mode networks', async () => {
  await initBackend('wasm');

  it('GeM pooling: (mean x^p)^(1/p) (hand-worked), with a learnable p', () => {
    const layer = new GeM();
    // One image, 1 × 2 pixels, channels (1, 8) and (2, 2): ((1³ + 8³)/2)^(1/3) and 2.
    const x = tf.tensor4d([1, 2, 8, 2], [1, 1, 2, 2]);
    const y = layer.apply(x) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([expect.closeTo(256.5 ** (1 / 3), 4), expect.closeTo(2, 5)]);
    expect(layer.trainableWeights.map((w) => w.shape)).toEqual([[1]]);
    tf.dispose([x, y]);
  });

  it('ResNet-18 and -50 have torchvision\'s parameter counts (without the classifier) plus GeM\'s p', () => {
    const count = (m: tf.LayersModel) => m.trainableWeights.reduce((s, w) => s + (w.shape as number[]).reduce((p, d) => p * d, 1), 0);
    const r18 = buildResNet({ arch: 'resnet18', size: 32, channels: 3, whiten: null, seed: 0 });
    expect(count(r18)).toBe(11_689_512 - 513_000 + 1);
    expect(r18.outputs[0]!.shape).toEqual([null, 512]);
    r18.dispose();
    const r50 = buildResNet({ arch: 'resnet50', size: 32, channels: 3, whiten: 256, seed: 0 });
    expect(count(r50)).toBe(25_557_032 - 2_049_000 + 1 + 2048 * 256 + 256);
    expect(r50.outputs[0]!.shape).toEqual([null, 256]);
    r50.dispose();
  });

  it('nsfwjs:mobilenet_v2 is MobileNetV2 cut at its last feature map: GeM of what nsfwjs\'s own model computes there', async () => {
    const ours = await buildImageModel({ backbone: 'nsfwjs:mobilenet_v2', size: 224, resize: 'longer', channels: 3, scale: defaultScale('nsfwjs:mobilenet_v2'), whiten: null, seed: 1 });
    expect(ours.outputs[0]!.shape).toEqual([null, 1280]);
    // nsfwjs loads its network itself (224 × 224 inputs only); its layer out_relu, on the same [0, 1] pixels.
    const { load } = await import('nsfwjs');
    const theirs = cutAt((await load('MobileNetV2')).model as tf.LayersModel, 'out_relu');
    const r = rng(5);
    const x = tf.tensor4d(Array.from({ length: 224 * 224 * 3 }, () => r()), [1, 224, 224, 3]);
    const maps = (theirs.predict(x) as tf.Tensor).dataSync();
    const gem = new Float64Array(1280);
    for (let i = 0; i < maps.length; i++) gem[i % 1280] += Math.max(maps[i]!, 1e-6) ** 3;
    const expected = Array.from(gem, (v) => (v / (maps.length / 1280)) ** (1 / 3));
    const got = Array.from((ours.predict(x) as tf.Tensor).dataSync());
    got.forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-4 * Math.max(1, expected[i]!)));
    tf.dispose([x]);
    ours.dispose();
    theirs.dispose();
  });

  it('loads weights by layer name from a model.json (Keras names) into a built-in ResNet', async () => {
    await withTempDir(async (dir) => {
      // The source: the same architecture with other random weights, saved as tfjs files.
      const source = buildResNet({ arch: 'small', size: null, channels: 3, widths: [4, 8], whiten: null, seed: 3, layout: 'keras' });
      await source.save(tf.io.withSaveHandler(async (a) => {
        const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData!));
        writeFileSync(join(dir, 'w.bin'), data);
        writeFileSync(join(dir, 'model.json'), JSON.stringify({ modelTopology: a.modelTopology, weightsManifest: [{ paths: ['w.bin'], weights: a.weightSpecs }] }));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      const spec = { backbone: 'small', widths: [4, 8], size: 16, resize: 'longer' as const, channels: 3, scale: 'unit' as const, whiten: null, seed: 9 };
      const loaded = await buildImageModel({ ...spec, weights: join(dir, 'model.json') });
      const fresh = await buildImageModel(spec);
      const x = tf.tensor4d(Array.from({ length: 2 * 16 * 12 * 3 }, rng(4)), [2, 16, 12, 3]);
      const want = Array.from((source.predict(x) as tf.Tensor).dataSync());
      expect(Array.from((loaded.predict(x) as tf.Tensor).dataSync())).toEqual(want);
      expect(Array.from((fresh.predict(x) as tf.Tensor).dataSync())).not.toEqual(want);
      // A network with no layer name in common is refused by name.
      const other = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3], name: 'head' })] });
      await other.save(tf.io.withSaveHandler(async (a) => {
        writeFileSync(join(dir, 'o.bin'), new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData!)));
        writeFileSync(join(dir, 'other.json'), JSON.stringify({ modelTopology: a.modelTopology, weightsManifest: [{ paths: ['o.bin'], weights: a.weightSpecs }] }));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      await expect(buildImageModel({ ...spec, weights: join(dir, 'other.json') })).rejects.toThrow(/other\.json: no weight names in common with small/);
      tf.dispose(x);
      [source, loaded, fresh, other].forEach((m) => m.dispose());
    });
  });

  it('a small ResNet\'s gradients on wasm match cpu', async () => {
    const model = buildResNet({ arch: 'small', size: 12, channels: 1, widths: [4, 8], whiten: 6, seed: 1 });
    const r = rng(2);
    const x = Array.from({ length: 3 * 144 }, () => r());
    const weights = model.getWeights().map((w) => w.clone());
    const gradsOn = async (backend: string) => {
      await tf.setBackend(backend);
      model.setWeights(weights);
      const { grads, value } = tf.variableGrads(() => tf.sum(tf.square(model.apply(tf.tensor4d(x, [3, 12, 12, 1]), { training: true }) as tf.Tensor)) as tf.Scalar);
      const flat = Array.from(tf.concat(Object.values(grads).map((g) => g.flatten())).dataSync());
      tf.dispose([value, ...Object.values(grads)]);
      return flat;
    };
    const wasm = await gradsOn('wasm');
    const cpu = await gradsOn('cpu');
    await tf.setBackend('wasm');
    const scale = Math.max(...cpu.map(Math.abs));
    const worst = Math.max(...wasm.map((v, i) => Math.abs(v - cpu[i]!)));
    expect(worst / scale).toBeLessThanOrEqual(1e-4);
    tf.dispose(weights);
    model.dispose();
  });
});

describe('image-mode training, embedding and export', async () => {
  await initBackend('wasm');

  it('splits a network at a block output and joins it back to the same function', () => {
    const model = buildResNet({ arch: 'small', size: 12, channels: 1, widths: [4, 8], whiten: null, seed: 3 });
    const { front, back } = splitAt(model, 'conv2_block1_out');
    const joined = chain([front, back], 'joined');
    const r = rng(4);
    const x = tf.tensor4d(Array.from({ length: 2 * 144 }, () => r()), [2, 12, 12, 1]);
    const a = (model.predict(x) as tf.Tensor).dataSync();
    const b = (joined.predict(x) as tf.Tensor).dataSync();
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(() => splitAt(model, 'conv3_block1_1_conv')).toThrow(/cut at a block output/);
    x.dispose();
    model.dispose();
  });

  it('trains from images of different sizes on disk, and the exported model reproduces `embed` exactly', async () => {
    await withTempDir(async (dir) => {
      const { labels, heights } = await quadrantImages(join(dir, 'img'), 24, 9);
      const ranks = new Int32Array(24 * 23);
      for (let a = 0; a < 24; a++) {
        const order = [...Array(24).keys()].filter((b) => b !== a).sort((p, q) => Number(labels[q] === labels[a]) - Number(labels[p] === labels[a]) || p - q);
        ranks.set(order, a * 23);
      }
      writeNpy(join(dir, 'teacher', 'indices.npy'), { dtype: 'int32', shape: [24, 23], data: ranks });
      const common = { images: join(dir, 'img'), backbone: 'small', widths: [4, 8], size: 16, whiten: 6, ranks: join(dir, 'teacher'), backend: 'wasm' as const };
      const train = { batch: 8, lr: 0.05, epochs: 2, microBatch: 3, batchNorm: 'frozen' as const, triplets: { k: 12, m0: 0.2, perAnchor: 4 } };
      // Frozen front (cached maps of three sizes) and the whole network, images streamed.
      const frozen = await trainImages({ ...common, freezeUntil: 'conv2_block1_out', out: join(dir, 'frozen'), train });
      expect(frozen.history).toHaveLength(2);
      const run = await trainImages({ ...common, out: join(dir, 'run'), train });
      expect(run.history).toHaveLength(2);
      expect(run.history[1]!.loss).toBeLessThan(run.history[0]!.loss);
      await embedFiles({ model: join(dir, 'run'), images: join(dir, 'img'), out: join(dir, 'emb'), backend: 'wasm', engine: 'tfjs' });
      await embedFiles({ model: join(dir, 'run'), images: join(dir, 'img'), out: join(dir, 'emb-onnx'), backend: 'wasm' });
      await exportModel({ model: join(dir, 'run'), out: join(dir, 'exported'), backend: 'wasm' });
      const embedded = readNpy(join(dir, 'emb', 'images.npy'));
      expect(embedded.shape).toEqual([24, 6]);
      const manifest = JSON.parse(readFileSync(join(dir, 'exported', 'manifest.json'), 'utf8'));
      expect(manifest).toMatchObject({ inputKind: 'images', inputDim: null, embeddingDim: 6, preprocess: { image: { size: 16, channels: 3, resize: 'longer' } } });
      // Plain tfjs (with the GeM layer class registered): decode each image at its own size, predict, normalise.
      const model = await tf.loadLayersModel(fileHandler(join(dir, 'exported', 'model.json')));
      expect(model.inputs[0]!.shape).toEqual([null, null, null, 3]);
      const paths = listImages(join(dir, 'img'));
      const rows: number[] = [];
      for (let i = 0; i < 24; i++) {
        const img = await loadImage(paths[i]!, { size: 16, mode: 'longer' });
        expect([img.height, img.width]).toEqual([heights[i], 16]);
        const y = tf.tidy(() => {
          const out = model.predict(tf.tensor4d(img.data, [1, img.height, img.width, 3])) as tf.Tensor2D;
          return tf.div(out, tf.norm(out, 'euclidean', 1, true));
        });
        rows.push(...y.dataSync());
        y.dispose();
      }
      expect(rows).toEqual(Array.from(embedded.data as Float32Array));
      // The default engine (onnxruntime) gives the same rows within the features' bound.
      const onnx = readNpy(join(dir, 'emb-onnx', 'images.npy')).data as Float32Array;
      expect(Math.max(...rows.map((v, i) => Math.abs(v - onnx[i]!)))).toBeLessThan(1e-4);
      model.dispose();
    });
  });

  it('a step over images one by one, and image-wise, equals the stacked step', () => {
    const r = rng(12);
    const x = tf.tensor4d(Array.from({ length: 6 * 10 * 10 }, () => r()), [6, 10, 10, 1]);
    const margins = tf.tensor1d([0.3, 0.5]);
    type Mode = { microBatch?: number | null; batchNorm: 'train' | 'frozen'; imageWise?: boolean };
    const stepWith = (input: tf.Tensor | tf.Tensor[], mode: Mode) => {
      const model = buildResNet({ arch: 'small', size: null, channels: 1, widths: [4, 8], whiten: 5, seed: 6 });
      const momentum = zeroMomentum(model);
      const before = tf.memory().numTensors;
      const results = [0.2, 0.1].map((lr) => sgdStep(model, momentum, input, margins, { momentum: 0.9, weightDecay: 1e-3, ...mode }, lr));
      expect(tf.memory().numTensors).toBe(before);
      // All weights, batch-norm moving statistics included.
      const w = model.getWeights().flatMap((t) => Array.from(t.dataSync()));
      tf.dispose(momentum);
      model.dispose();
      return { results, w };
    };
    const same = (a: ReturnType<typeof stepWith>, b: ReturnType<typeof stepWith>) => {
      a.w.forEach((v, i) => expect(Math.abs(v - b.w[i]!) / Math.max(1, Math.abs(b.w[i]!))).toBeLessThan(1e-5));
      a.results.forEach((m, i) => {
        expect(m.loss).toBeCloseTo(b.results[i]!.loss, 5);
        expect(m.active).toBe(b.results[i]!.active);
      });
    };
    const single = tf.split(x, 6) as tf.Tensor[];
    // Frozen batch norm: stacked, one by one, one by one in micro-batches, image-wise.
    const stacked = stepWith(x, { batchNorm: 'frozen' });
    same(stepWith(single, { batchNorm: 'frozen' }), stacked);
    same(stepWith(single, { batchNorm: 'frozen', microBatch: 1 }), stacked);
    same(stepWith(single, { batchNorm: 'frozen', imageWise: true }), stacked);
    same(stepWith(x, { batchNorm: 'frozen', imageWise: true }), stacked);
    // Batch statistics per image: image-wise equals one by one, moving statistics updated once.
    same(stepWith(single, { batchNorm: 'train', imageWise: true }), stepWith(single, { batchNorm: 'train' }));
    tf.dispose([x, margins, ...single]);
  });

  it('counts the layer outputs of a size-free network as of the same network at that size', () => {
    const free = buildResNet({ arch: 'resnet18', size: null, channels: 3, whiten: null, seed: 1 });
    const fixed = buildResNet({ arch: 'resnet18', size: 96, channels: 3, whiten: null, seed: 1 });
    // Brute force: the static output shapes of the fixed-size network.
    const sum = (layers: tf.layers.Layer[]) => layers.reduce((s, l) => s + (l.outputShape as number[]).slice(1).reduce((p, d) => p * d, 1), 0);
    const inner = fixed.layers.filter((l) => l.getClassName() !== 'InputLayer');
    expect(layerOutputFloats(free, [96, 96, 3])).toBe(sum(inner));
    const cut = inner.findIndex((l) => l.name === 'conv4_block1_out');
    expect(layerOutputFloats(free, [96, 96, 3], 'conv4_block1_out')).toBe(sum(inner.slice(cut + 1)));
    free.dispose();
    fixed.dispose();
  });

  it('refuses a step that would not fit the wasm heap, and says what to do', async () => {
    await withTempDir(async (dir) => {
      writeNpy(join(dir, 'teacher', 'indices.npy'), { dtype: 'int32', shape: [4, 3], data: Int32Array.from([1, 2, 3, 0, 2, 3, 0, 1, 3, 0, 1, 2]) });
      // ResNet-18 at 224 px: about 0.27 GiB per image (measured), so 3 triplets per pass.
      const pixels = { rows: 4, cols: 224 * 224 * 3, data: new Float32Array(4 * 224 * 224 * 3) };
      await expect(
        trainImages({ pixels, backbone: 'resnet18', size: 224, ranks: join(dir, 'teacher'), out: join(dir, 'run'), backend: 'wasm', train: { batch: 40, triplets: { k: 3, m0: 0.1, perAnchor: 1 } } }),
      ).rejects.toThrow(/GiB of activations, more than the wasm backend's 4 GiB heap allows; use --micro-batch 3 /);
      // At 600 px not even one triplet of ResNet-50 fits; each image's backward pass alone does.
      const large = { rows: 4, cols: 600 * 600 * 3, data: new Float32Array(4 * 600 * 600 * 3) };
      await expect(
        trainImages({ pixels: large, backbone: 'resnet50', size: 600, ranks: join(dir, 'teacher'), out: join(dir, 'run'), backend: 'wasm', train: { batch: 40, microBatch: 1, triplets: { k: 3, m0: 0.1, perAnchor: 1 } } }),
      ).rejects.toThrow(/even one triplet does not fit: use --image-wise/);
      expect(existsSync(join(dir, 'run'))).toBe(false);
    });
  });
});

describe('ddistill features', async () => {
  await initBackend('wasm');

  it('crops query images to their ground-truth boxes, and names the images in row order', async () => {
    await withTempDir(async (dir) => {
      mkdirSync(join(dir, 'q'));
      await halves(join(dir, 'q', 'a.png'), 40, 20);
      await halves(join(dir, 'q', 'b.png'), 40, 20);
      // The right half of a.png, saved as its own file: the crop must give the same features.
      await sharp(join(dir, 'q', 'a.png')).extract({ left: 20, top: 0, width: 20, height: 20 }).toFile(join(dir, 'right.png'));
      const gnd = { imlist: ['x'], qimlist: ['a', 'b'], gnd: [{ easy: [], hard: [], junk: [], bbx: [20, 0, 40, 20] }, { easy: [], hard: [], junk: [], bbx: null }] };
      writeFileSync(join(dir, 'gnd.json'), JSON.stringify(gnd));
      const common = { backbone: 'small', size: 16, backend: 'wasm' as const };
      const cropped = await featureFiles({ ...common, images: join(dir, 'q'), crops: join(dir, 'gnd.json'), out: join(dir, 'q.npy') });
      expect(cropped).toMatchObject({ rows: 2, dim: 64, skipped: [] });
      writeFileSync(join(dir, 'right.txt'), 'right.png\n');
      await featureFiles({ ...common, images: join(dir, 'right.txt'), out: join(dir, 'r.npy') });
      const q = readNpy(join(dir, 'q.npy')).data as Float32Array;
      const r = readNpy(join(dir, 'r.npy')).data as Float32Array;
      expect(Array.from(q.subarray(0, 64))).toEqual(Array.from(r));
      expect(JSON.parse(readFileSync(join(dir, 'q.json'), 'utf8')).images).toEqual([join(dir, 'q', 'a.png'), join(dir, 'q', 'b.png')]);
      writeFileSync(join(dir, 'gnd1.json'), JSON.stringify({ ...gnd, qimlist: ['a'], gnd: gnd.gnd.slice(0, 1) }));
      await expect(featureFiles({ ...common, images: join(dir, 'q'), crops: join(dir, 'gnd1.json'), out: join(dir, 'x.npy') })).rejects.toThrow(/1 query boxes but .* holds 2 images/);
    });
  });
});

describe('ddistill bootstrap --images', async () => {
  await initBackend('wasm');

  it('extracts features, fine-tunes in two iterations (the second from the first) and embeds database and query images', async () => {
    await withTempDir(async (dir) => {
      const db = await quadrantImages(join(dir, 'db'), 24, 21);
      const q = await quadrantImages(join(dir, 'q'), 8, 22);
      writeFileSync(join(dir, 'l.txt'), db.labels.join('\n'));
      writeFileSync(join(dir, 'ql.txt'), q.labels.join('\n'));
      const run = join(dir, 'run');
      const stages: string[] = [];
      const m = await bootstrap({
        images: join(dir, 'db'), queryImages: join(dir, 'q'), labels: join(dir, 'l.txt'), queryLabels: join(dir, 'ql.txt'), out: run, iterations: 2,
        image: { backbone: 'small', size: 16, whiten: 6 }, backend: 'wasm', params: { k1: 8, k2: 4, k3: 8, k4: 4, k5: 8 },
        // The mechanics of two image iterations; the label-free check is tested in selection.test.ts.
        selection: { holdOut: 0 },
        train: { batch: 8, lr: 0.05, steps: 6, batchNorm: 'frozen', triplets: { k: 12, m0: 0.2, perAnchor: 2 } },
        onStage: (it, stage) => stages.push(`${it}:${stage}`),
      });
      expect(stages.slice(0, 4)).toEqual(['0:features', '0:features', '0:baseline', '0:reranking']);
      expect(readNpy(join(run, 'features', 'db.npy')).shape).toEqual([24, 64]);
      expect(readNpy(join(run, 'features', 'queries.npy')).shape).toEqual([8, 64]);
      // Both passes ran on onnxruntime, and the report's features table shows them with their speed.
      expect(Object.entries(m.features!).map(([k, f]) => [k, f.photos, f.engine, f.cached])).toEqual([['db', 24, 'onnxruntime', 0], ['queries', 8, 'onnxruntime', 0]]);
      expect(readFileSync(join(run, 'report.html'), 'utf8')).toMatch(/<table id="features">[\s\S]*<td>db<\/td><td class="num">24<\/td>[\s\S]*onnxruntime/);
      expect(m.iterations.map((r) => r.iteration)).toEqual([1, 2]);
      // The figures are those of Euclidean search on the features and on each iteration's embeddings (brute force).
      const npy = (f: string) => {
        const a = readNpy(join(run, f));
        return { rows: a.shape[0]!, cols: a.shape[1]!, data: a.data as Float32Array };
      };
      const brute = (folder: string) => bruteClassMap(npy(`${folder}/db.npy`), npy(`${folder}/queries.npy`), db.labels, q.labels);
      expect(Math.abs(m.baseline!.metrics.mAP! - brute('features'))).toBeLessThan(0.006);
      for (const r of m.iterations) expect(Math.abs(r.metrics.mAP! - brute(`iter-${r.iteration}/emb`))).toBeLessThan(0.006);
      expect(JSON.parse(readFileSync(join(run, 'iter-2', 'train', 'train.json'), 'utf8')).initFrom).toBe(join(run, 'iter-1', 'train'));
      // The run's embeddings are what `ddistill embed` gives with the run's model.
      await embedFiles({ model: join(run, 'iter-2', 'train'), images: join(dir, 'q'), out: join(dir, 'emb'), backend: 'wasm' });
      expect(Array.from(readNpy(join(run, 'iter-2', 'emb', 'queries.npy')).data as Float32Array)).toEqual(Array.from(readNpy(join(dir, 'emb', 'images.npy')).data as Float32Array));
      expect(readNpy(join(run, 'iter-2', 'emb', 'db.npy')).shape).toEqual([24, 6]);
      expect(m.iterations[1]!.querySeconds).toBeGreaterThan(0);
    });
  });
});
