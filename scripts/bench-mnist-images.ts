/**
 * Image mode on MNIST digits as 28 × 28 images (the trainer issue's split): a small ResNet
 * (3 stages, one basic block each, GeM, a 128-d whitening layer) trained from scratch on triplets
 * from a CAS self-ranking of the *pixel* descriptors, then Euclidean search on the embeddings of
 * the 500 query digits, which training never sees. Compare with the descriptor-mode head of
 * `npm run bench:mnist` (69.24).
 *
 *   npm run bench:mnist-images [-- --steps N] [-- --widths 8,16,32] [-- --batch B]
 *
 * Last line: {"pixels": …, "imageMode": …} (class mAP, %).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffuseFiles } from '../src/diffusion/run.js';
import { classMap } from '../src/eval/classLevel.js';
import { loadMnistSplit, writeMnistFiles } from '../src/io/mnist.js';
import { l2NormalizeRows } from '../src/matrix.js';
import { embedImages, pixelImages } from '../src/model/imageSet.js';
import { loadModelFolder } from '../src/model/io.js';
import { fullRanking } from '../src/eval/fullRanking.js';
import { trainImages } from '../src/train/images.js';
import { arg } from './args.js';

const steps = Number(arg('steps', '2000'));
const batch = Number(arg('batch', '64'));
const widths = arg('widths', '8,16,32').split(',').map(Number);
const split = loadMnistSplit();
const pct = (x: number) => Number((x * 100).toFixed(2));
const dir = mkdtempSync(join(tmpdir(), 'ddistill-mnist-images-'));
try {
  const pixels = pct(classMap(await fullRanking(l2NormalizeRows(split.db), l2NormalizeRows(split.queries), 'euclidean'), split.queryLabels, split.dbLabels).mAP);
  const files = writeMnistFiles(dir, split);
  let t0 = performance.now();
  await diffuseFiles({ method: 'cas', db: files.db, out: join(dir, 'teacher'), topK: 3000 });
  console.error(`teacher: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  t0 = performance.now();
  const run = await trainImages({
    pixels: split.db, channels: 1, size: 28, backbone: 'small', widths, whiten: 128,
    ranks: join(dir, 'teacher'), out: join(dir, 'run'),
    train: { batch, lr: 0.05, steps, epochs: 100, triplets: { k: 3000, m0: 0.5, perAnchor: 10 } },
    onEpoch: (r) => console.error(`  epoch ${r.epoch + 1}: loss ${r.loss.toFixed(4)}, ${Math.round(r.tripletsPerSecond)} triplets/s`),
  });
  const { model } = await loadModelFolder(join(dir, 'run'));
  const embed = (m: typeof split.db) => embedImages(model, pixelImages(m, 28, 1), { batch: 256 });
  const imageMode = pct(classMap(await fullRanking(await embed(split.db), await embed(split.queries), 'euclidean'), split.queryLabels, split.dbLabels).mAP);
  console.log(`MNIST as 28×28 images: small ResNet ${widths.join('/')} + GeM + 128-d whitening, ${run.steps} steps of ${batch} triplets in ${((performance.now() - t0) / 1000).toFixed(0)} s on ${run.backend.backend}`);
  console.log(`| pixels (baseline) | ${pixels} |`);
  console.log(`| image mode, query embeddings | ${imageMode} |`);
  console.log(JSON.stringify({ pixels, imageMode }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
