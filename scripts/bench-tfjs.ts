/**
 * tfjs on this machine: matMul throughput of the wasm and cpu backends, and one soft-margin
 * triplet training step of a descriptor-mode MLP (784 → 1024 → 128, L2-normalised output,
 * 256 triplets, SGD with momentum) before and after the wasm kernel replacements — in one run.
 * Also backpropagation's dY·Wᵀ at a small batch (32 triplets: 96 rows of dY by a 2048 × 512
 * weight matrix), where the replacement copies dY and the result instead of W.
 *
 *   npm run bench:tfjs
 */
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels, tf } from '../src/backend/tfjs.js';

tf.env().set('PROD', true);

function gflops(a: tf.Tensor2D, b: tf.Tensor2D, ta: boolean, tb: boolean, flops: number, reps = 8): number {
  // dataSync outside tf.tidy: inside a scope it is several times slower on wasm (measured).
  const once = () => {
    const c = tf.matMul(a, b, ta, tb);
    c.dataSync();
    c.dispose();
  };
  for (let i = 0; i < 2; i++) once(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) once();
  return flops / ((performance.now() - t0) / reps) / 1e6;
}

function tripletStepMs(steps = 5): number {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [784], units: 1024, activation: 'relu' }), tf.layers.dense({ units: 128 })],
  });
  const opt = tf.train.momentum(0.05, 0.9);
  const X = tf.randomUniform([9500, 784]);
  const B = 256;
  const step = () => {
    const idx = tf.tensor1d(Array.from({ length: 3 * B }, (_, i) => (i * 7919) % 9500), 'int32');
    const margins = tf.fill([B], 0.05);
    const loss = opt.minimize(() => {
      const e = model.apply(tf.gather(X, idx)) as tf.Tensor2D;
      const unit = tf.div(e, tf.norm(e, 'euclidean', 1, true));
      const [a, c, f] = tf.split(unit, 3, 0) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const dc = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, c)), 1), 1e-12));
      const df = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, f)), 1), 1e-12));
      return tf.mean(tf.relu(tf.add(tf.sub(dc, df), margins))) as tf.Scalar;
    }, true)!;
    loss.dataSync();
    tf.dispose([loss, idx, margins]);
  };
  step();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const ms = (performance.now() - t0) / steps;
  X.dispose();
  model.dispose();
  opt.dispose();
  return ms;
}

const [m, k, n] = [512, 2048, 512];
const flops = 2 * m * k * n;
/** Milliseconds per tf.tile of a 256×512 float32 tensor by [8, 4] (8,192 × 2,048 out). */
function tileMs(reps = 10): number {
  const x = tf.randomNormal([256, 512]);
  const once = () => {
    const y = tf.tile(x, [8, 4]);
    y.dataSync();
    y.dispose();
  };
  once();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) once();
  x.dispose();
  return (performance.now() - t0) / reps;
}

console.log('| backend | matMul 512×2048×512 | same, transposeB | dY·Wᵀ 96×512 by (2048×512)ᵀ | triplet step (MLP 784→1024→128, 256 triplets) | tile 256×512 by [8, 4] |');
console.log('|---|---|---|---|---|---|');
for (const backend of ['cpu', 'wasm', 'wasm + kernel replacements']) {
  if (backend === 'wasm + kernel replacements') registerWasmKernels();
  await tf.setBackend(backend.startsWith('wasm') ? 'wasm' : 'cpu');
  const a = tf.randomNormal([m, k]) as tf.Tensor2D;
  const b = tf.randomNormal([k, n]) as tf.Tensor2D;
  const bt = tf.randomNormal([n, k]) as tf.Tensor2D;
  const plain = gflops(a, b, false, false, flops);
  const transposed = gflops(a, bt, false, true, flops);
  const dy = tf.randomNormal([96, 512]) as tf.Tensor2D;
  const w = tf.randomNormal([2048, 512]) as tf.Tensor2D;
  const backprop = gflops(dy, w, false, true, 2 * 96 * 512 * 2048);
  const step = tripletStepMs(backend === 'cpu' ? 2 : 5);
  const tile = tileMs();
  console.log(`| ${backend} | ${plain.toFixed(1)} GFLOP/s | ${transposed.toFixed(1)} GFLOP/s | ${backprop.toFixed(1)} GFLOP/s | ${step.toFixed(0)} ms | ${tile.toFixed(1)} ms |`);
  tf.dispose([a, b, bt, dy, w]);
}
