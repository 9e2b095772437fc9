/**
 * Features at the machine's speed: `ddistill features` (shipped MobileNet, 224 px, longer side) on
 * the same photos through today's path (the tfjs network, `--engine tfjs`) and the new one
 * (`--engine auto`: the network as ONNX on onnxruntime-node, every core, photos decoded ahead and
 * batched by shape), in one run, on Flowers-17 and Caltech-50 from ../shared/data.
 *
 *   npm run bench:features                    every photo of both sets
 *   npm run bench:features -- --limit 300     the first 300 of each
 *
 * First, where a photo's time goes (decode and resize with sharp, bytes to floats, the network on
 * each engine), per set, on its first 40 photos one at a time. Then both passes, timed. Last
 * line: {"photos","photosPerSecond","baselinePhotosPerSecond","speedup","maxAbsDiff"}, where
 * maxAbsDiff is the largest difference of one element between the two passes' L2-normalised
 * rows. Skipped when ../shared is absent.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { loadImageBytes, toUnit } from '../src/io/images.js';
import { readMatrix } from '../src/matrix.js';
import { buildImageModel, defaultScale, IMAGE_DEFAULTS } from '../src/model/image.js';
import { photoRunner } from '../src/model/photoRunner.js';
import { featureFiles } from '../src/model/run.js';
import { arg } from './args.js';

const data = resolve(import.meta.dirname, '..', '..', 'shared', 'data');
const sets = { flowers17: join(data, 'flowers17'), caltech50: join(data, 'caltech50') };
const limit = Number(arg('limit', '0'));
if (Object.values(sets).some((f) => !existsSync(f))) {
  console.log(`skipped: ${data} lacks flowers17 or caltech50 (the photographs live in ../shared)`);
  process.exit(0);
}
const size = 224;
const backbone = IMAGE_DEFAULTS.backbone;
const info = await initBackend('auto');
console.log(`tfjs backend: ${info.backend} (${info.source})`);

const photosOf = (folder: string): string[] => {
  const files = readFileSync(join(folder, 'files.txt'), 'utf8').trim().split('\n').map((f) => join(folder, 'images', f));
  return limit > 0 ? files.slice(0, limit) : files;
};
const lists = Object.fromEntries(Object.entries(sets).map(([name, folder]) => [name, photosOf(folder)])) as Record<keyof typeof sets, string[]>;

// Where the time goes, one photo at a time.
const model = await buildImageModel({ backbone, size, resize: 'longer', channels: 3, whiten: null, seed: 0, scale: defaultScale(backbone) });
const onnx = await photoRunner(model, 'onnxruntime');
const ms = (t: number) => +(performance.now() - t).toFixed(3);
for (const [name, paths] of Object.entries(lists)) {
  const sample = paths.slice(0, 40);
  const split = { decode: 0, toFloats: 0, tfjsNetwork: 0, onnxNetwork: 0, pixels: 0 };
  for (const path of sample) {
    const meta = await sharp(path).metadata();
    split.pixels += (meta.width ?? 0) * (meta.height ?? 0);
    let t = performance.now();
    const bytes = await loadImageBytes(path, { size, mode: 'longer' });
    split.decode += ms(t);
    t = performance.now();
    const unit = toUnit(bytes);
    split.toFloats += ms(t);
    t = performance.now();
    const y = model.predict(tf.tensor4d(unit.data, [1, bytes.height, bytes.width, 3])) as tf.Tensor;
    y.dataSync();
    split.tfjsNetwork += ms(t);
    tf.dispose(y);
    t = performance.now();
    await onnx.run([bytes]);
    split.onnxNetwork += ms(t);
  }
  const per = (v: number) => +(v / sample.length).toFixed(2);
  console.log(`${name}: ${Math.round(split.pixels / sample.length / 1000)} kpixels per original; per photo (ms): decode+resize ${per(split.decode)}, bytes→floats ${per(split.toFloats)}, network tfjs ${per(split.tfjsNetwork)}, network onnxruntime ${per(split.onnxNetwork)}`);
}
await onnx.dispose();
model.dispose();

// Both passes over every photo, page cache warmed first.
const dir = mkdtempSync(join(tmpdir(), 'ddistill-features-'));
try {
  const all = Object.values(lists).flat();
  for (const p of all) readFileSync(p);
  writeFileSync(join(dir, 'list.txt'), all.join('\n') + '\n');
  const pass = async (engine: 'tfjs' | 'auto') => {
    const out = join(dir, `${engine}.npy`);
    const started = performance.now();
    const r = await featureFiles({ images: join(dir, 'list.txt'), backbone, size, resize: 'longer', out, engine });
    const seconds = (performance.now() - started) / 1000;
    console.log(`--engine ${engine}: ${r.engine}, ${r.rows} photos in ${seconds.toFixed(1)} s (${(r.rows / seconds).toFixed(1)} photos/s)`);
    return { m: readMatrix(out), seconds };
  };
  const base = await pass('tfjs');
  const fast = await pass('auto');
  let maxAbsDiff = 0;
  for (let i = 0; i < base.m.data.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(base.m.data[i]! - fast.m.data[i]!));
  const photos = all.length;
  const photosPerSecond = photos / fast.seconds;
  const baselinePhotosPerSecond = photos / base.seconds;
  console.log(JSON.stringify({ photos, photosPerSecond: +photosPerSecond.toFixed(1), baselinePhotosPerSecond: +baselinePhotosPerSecond.toFixed(1), speedup: +(photosPerSecond / baselinePhotosPerSecond).toFixed(2), maxAbsDiff: +maxAbsDiff.toExponential(2) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
