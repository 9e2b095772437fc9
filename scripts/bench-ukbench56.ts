/**
 * Image mode on real photographs: the first 56 UKBench images (14 objects × 4 views,
 * `../shared/data/ukbench56`) with the ImageNet MobileNet v1 0.75 backbone
 * (`../shared/models/mobilenet_v1_0.75_224`) cut at its last feature map, GeM pooling, images
 * resized to a longer side of 224 px (the `cpu` preset; the 640 × 480 photographs become 224 × 168).
 * N-S score (group members in the top 4, the query included; 4 is perfect) of
 *   pretrained  the network's features before training (`ddistill features`)
 *   cas         CAS query re-ranking of those features (small preset: 56 items)
 *   finetuned   the network after triplet training on the 56 images (teacher: CAS self-ranking;
 *               layers up to conv_pw_11_relu frozen, the last two blocks and GeM's p trained,
 *               batch-norm statistics kept)
 * Also the mAP of each (relevant = the other 3 views), which still moves when N-S is saturated.
 *
 *   npm run bench:ukbench56
 *
 * Last line: {"pretrained": …, "cas": …, "finetuned": …} (N-S scores). Skipped when ../shared is
 * absent.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CAS_SMALL_PRESET } from '../src/diffusion/cas.js';
import { diffuse } from '../src/diffusion/index.js';
import { diffuseFiles } from '../src/diffusion/run.js';
import { classMap, nsScore } from '../src/eval/classLevel.js';
import { ranking, type Ranking } from '../src/eval/ranking.js';
import { consecutiveGroups } from '../src/io/groundTruth.js';
import { readMatrix } from '../src/matrix.js';
import { embedFiles, featureFiles } from '../src/model/run.js';
import { fullRanking } from '../src/eval/fullRanking.js';
import { trainImages } from '../src/train/images.js';

const shared = resolve(import.meta.dirname, '..', '..', 'shared');
const images = join(shared, 'data', 'ukbench56');
const backbone = join(shared, 'models', 'mobilenet_v1_0.75_224', 'model.json');
if (!existsSync(images) || !existsSync(backbone)) {
  console.log(`skipped: ${shared} is absent (the UKBench images and the MobileNet weights live there)`);
  process.exit(0);
}
const started = performance.now();
const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
const groups = consecutiveGroups(56, 4);
const score = (r: Ranking) => ({ ns: Number(nsScore(r, groups, groups).toFixed(3)), mAP: Number((classMap(r, groups, groups, Int32Array.from({ length: 56 }, (_, i) => i)).mAP * 100).toFixed(2)) });
const dir = mkdtempSync(join(tmpdir(), 'ddistill-ukbench-'));
try {
  const feats = join(dir, 'features.npy');
  const f = await featureFiles({ images, backbone, size: 224, out: feats, backend: 'auto', onBackend: (b) => console.error(`backend: ${b.backend}`) });
  console.error(`features: ${f.rows} × ${f.dim} in ${f.seconds.toFixed(1)} s`);
  const x = readMatrix(feats);
  const pretrained = score(await fullRanking(x, null, 'euclidean'));
  const cas = await diffuse('cas', x, x, CAS_SMALL_PRESET, { topK: 56 });
  const casScore = score(ranking(cas.indices, 56, 56));
  await diffuseFiles({ method: 'cas', db: feats, out: join(dir, 'teacher'), topK: 55, preset: 'small' });
  const run = await trainImages({
    images, backbone, size: 224, freezeUntil: 'conv_pw_11_relu', ranks: join(dir, 'teacher'), out: join(dir, 'run'),
    // k 10 reaches past each image's 3 relevant views (docs/algorithms.md §4); pretrained batch-norm
    // statistics stay frozen (batches of 24 images are too small to estimate them).
    train: { batch: 8, lr: 0.01, epochs: 10, batchNorm: 'frozen', triplets: { k: 10, m0: 0.1, perAnchor: 5 } },
    onStage: (m) => console.error(m),
    onEpoch: (r) => console.error(`  epoch ${r.epoch + 1}: loss ${r.loss.toFixed(4)}, ${r.tripletsPerSecond.toFixed(1)} triplets/s`),
  });
  await embedFiles({ model: join(dir, 'run'), images, out: join(dir, 'emb') });
  const finetuned = score(await fullRanking(readMatrix(join(dir, 'emb', 'images.npy')), null, 'euclidean'));
  console.log(`UKBench 56 (14 objects × 4 views), MobileNet v1 0.75 + GeM, longer side 224 px; ${run.steps} training steps in ${run.seconds.toFixed(0)} s; ${seconds()} s in all`);
  console.log('| features | N-S | mAP |');
  console.log('|---|---|---|');
  console.log(`| pretrained | ${pretrained.ns} | ${pretrained.mAP} |`);
  console.log(`| CAS re-ranking | ${casScore.ns} | ${casScore.mAP} |`);
  console.log(`| fine-tuned | ${finetuned.ns} | ${finetuned.mAP} |`);
  console.log(JSON.stringify({ pretrained: pretrained.ns, cas: casScore.ns, finetuned: finetuned.ns }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
