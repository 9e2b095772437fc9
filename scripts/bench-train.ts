/**
 * Descriptor-mode training throughput: triplets/s for a 2048-d → 512-d head at batch 256 on the
 * wasm backend (with this project's kernel replacements), the GFLOP/s that achieves, and the
 * backend's plain matMul GFLOP/s on the layer's own shape — all measured in one run.
 *
 *   npm run bench:train [-- --backend wasm|cpu|tensorflow] [-- --steps 20]
 *
 * FLOPs per step are counted as 3 × the forward matrix products (forward, gradient with respect to
 * the weights, gradient with respect to the activations), 2·m·k·n each.
 */
import { initBackend, tf, type BackendChoice } from '../src/backend/tfjs.js';
import { buildHead, type HeadKind } from '../src/model/head.js';
import { train, TRAIN_DEFAULTS } from '../src/train/loop.js';
import { arg } from './args.js';

const backendChoice = arg('backend', 'wasm') as BackendChoice;
const steps = Number(arg('steps', '20'));
const [D, E, H, B] = [2048, 512, 2048, 256];
const info = await initBackend(backendChoice);
console.log(`backend: ${info.backend} (${info.source}), tfjs ${info.tfjsVersion}; 2 threads at most on this machine`);

function matMulGflops(m: number, k: number, n: number, reps = 10): number {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  // dataSync outside tf.tidy: inside a scope it is several times slower on wasm (measured).
  const once = () => {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
  };
  for (let i = 0; i < 2; i++) once();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) once();
  const s = (performance.now() - t0) / 1000 / reps;
  tf.dispose([a, b]);
  return (2 * m * k * n) / s / 1e9;
}

// Synthetic database and a self-ranking (the throughput does not depend on their content).
const n = 20_000;
const data = new Float32Array(n * D);
let s = 1;
for (let i = 0; i < data.length; i++) {
  s = (s * 1103515245 + 12345) >>> 0;
  data[i] = s / 4294967296 - 0.5;
}
const L = 300;
const ranking = Int32Array.from({ length: n * L }, (_, q) => (Math.floor(q / L) + (q % L) + 1) % n);
const x = { rows: n, cols: D, data };

const rows: { head: HeadKind; ms: number; tps: number; gflops: number }[] = [];
for (const head of ['linear', 'residual'] as const) {
  const model = buildHead({ kind: head, inputDim: D, outputDim: E, hidden: H, init: 'random', seed: 0 });
  const forward = 2 * 3 * B * D * E + (head === 'residual' ? 2 * 3 * B * D * H + 2 * 3 * B * H * E : 0);
  const o = { ...TRAIN_DEFAULTS, batch: B, steps: 2 + steps, triplets: { k: L, m0: 0.1, perAnchor: 10 } };
  const times: number[] = [];
  let last = performance.now();
  await train(model, x, ranking, o, {
    onStep: () => {
      const now = performance.now();
      times.push(now - last);
      last = now;
    },
  });
  const timed = times.slice(2); // the first steps warm up
  const ms = timed.reduce((a, b) => a + b, 0) / timed.length;
  rows.push({ head, ms, tps: (B * 1000) / ms, gflops: (3 * forward) / (ms / 1000) / 1e9 });
  model.dispose();
}
const plain = matMulGflops(3 * B, D, E);
console.log(`\nhead                         step (ms)  triplets/s  GFLOP/s`);
for (const r of rows) {
  const name = r.head === 'linear' ? `linear ${D}→${E}` : `residual ${D}→${H}→${E} + ${D}→${E}`;
  console.log(`${name.padEnd(28)} ${r.ms.toFixed(0).padStart(9)}  ${r.tps.toFixed(0).padStart(10)}  ${r.gflops.toFixed(1).padStart(7)}`);
}
console.log(`plain matMul ${3 * B}×${D}×${E} on ${info.backend}: ${plain.toFixed(1)} GFLOP/s`);
console.log(JSON.stringify({ backend: info.backend, batch: B, heads: rows.map((r) => ({ head: r.head, stepMs: Number(r.ms.toFixed(1)), tripletsPerSecond: Math.round(r.tps), gflops: Number(r.gflops.toFixed(1)) })), matMulGflops: Number(plain.toFixed(1)) }));
