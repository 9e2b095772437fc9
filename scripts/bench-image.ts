/**
 * Image-mode speed on the available backend: forward pass and training step (forward, backward
 * through every layer, SGD with momentum) of ResNet-18 (built in, + GeM) and of the ImageNet
 * MobileNet v1 0.75 (`../shared/models`, cut at conv_pw_13_relu, + GeM), at 224 px, batch 8; and
 * a training step (sgdStep, image-wise: each image's backward pass alone, as the 4 GiB wasm heap
 * requires at this size) on one triplet at the paper's resolution: three 600 × 450 images.
 *
 *   npm run bench:image [-- --backend wasm|cpu|tensorflow] [-- --steps 3] [-- --size 224]
 *
 * MobileNet is skipped with a message when ../shared is absent.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend, tf, type BackendChoice } from '../src/backend/tfjs.js';
import { buildImageModel } from '../src/model/image.js';
import { l2Normalize } from '../src/model/head.js';
import { zeroMomentum } from '../src/train/sgd.js';
import { sgdStep } from '../src/train/step.js';
import { arg } from './args.js';

const steps = Number(arg('steps', '3'));
const info = await initBackend(arg('backend', 'auto') as BackendChoice);
console.log(`backend: ${info.backend} (${info.source}), tfjs ${info.tfjsVersion}`);
const mobilenet = join(resolve(import.meta.dirname, '..', '..', 'shared'), 'models', 'mobilenet_v1_0.75_224', 'model.json');
const size = Number(arg('size', '224'));
const batch = 8;

const rows: string[] = [];
const paper: string[] = [];
for (const backbone of ['resnet18', mobilenet]) {
  const name = backbone === 'resnet18' ? 'ResNet-18 + GeM' : 'MobileNet v1 0.75 + GeM';
  if (backbone !== 'resnet18' && !existsSync(backbone)) {
    console.log(`${name}: skipped (${backbone} is absent)`);
    continue;
  }
  const model = await buildImageModel({ backbone, size, resize: 'longer', channels: 3, scale: backbone === 'resnet18' ? 'unit' : 'symmetric', whiten: null, seed: 1 });
  const x = tf.randomUniform([batch, size, size, 3]) as tf.Tensor4D;
  const time = (fn: () => void, n: number) => {
    fn(); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    return (performance.now() - t0) / n;
  };
  const forward = time(() => {
    const y = tf.tidy(() => model.predict(x) as tf.Tensor);
    y.dataSync();
    y.dispose();
  }, steps);
  const weights = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const momentum = zeroMomentum(model);
  // Forward, backward, SGD with momentum on one stacked batch.
  const trainStep = (input: tf.Tensor) => () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.sum(tf.square(l2Normalize(model.apply(input, { training: true }) as tf.Tensor2D)), 1)) as tf.Scalar, weights);
    tf.tidy(() => weights.forEach((w, i) => {
      momentum[i]!.assign(tf.add(tf.mul(momentum[i]!, 0.9), grads[w.name]!));
      w.assign(tf.sub(w, tf.mul(momentum[i]!, 0.01)));
    }));
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const step = time(trainStep(x), steps);
  rows.push(`| ${name} | ${(forward / 1000).toFixed(2)} s | ${(step / 1000).toFixed(2)} s |`);
  const large = [0, 1, 2].map(() => tf.randomUniform([1, 450, 600, 3]) as tf.Tensor4D);
  const margins = tf.tensor1d([0.1]);
  const tripletStep = time(() => sgdStep(model, momentum, large, margins, { momentum: 0.9, weightDecay: 1e-4, imageWise: true }, 0.001), Math.max(1, Math.min(steps, 2)));
  paper.push(`| ${name} | ${(tripletStep / 1000).toFixed(2)} s |`);
  tf.dispose([x, margins, ...large, ...momentum]);
  model.dispose();
}
console.log(`\n${size} px, batch ${batch}, mean of ${steps} after one warm-up:`);
console.log('| network | forward | training step |');
console.log('|---|---|---|');
for (const r of rows) console.log(r);
console.log('\nOne triplet at the paper\'s resolution (three 600 × 450 images, image-wise backward), training step, mean of ' + Math.max(1, Math.min(steps, 2)) + ' after one warm-up:');
console.log('| network | training step |');
console.log('|---|---|');
for (const r of paper) console.log(r);
