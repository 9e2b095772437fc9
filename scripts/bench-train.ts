/**
 * Training throughput on one thread and on N worker threads (data-parallel, src/train/dataParallel.ts),
 * measured in one run on the wasm backend (with this project's kernel replacements):
 *
 *   1. a descriptor head: residual 2048 → 2048 → 512 (+ linear 2048 → 512), 256 triplets per step;
 *   2. image training with a frozen front at 224 px: the shipped MobileNet v1 0.75 with its layers up
 *      to conv_pw_11_relu frozen (computed once, as `ddistill train --images --freeze-until
 *      conv_pw_11_relu --batch-norm frozen` does), the last two blocks and GeM trained, 40 triplets
 *      (120 feature maps) per step.
 *
 *   npm run bench:train [-- --workers N] [-- --steps 12] [-- --rounds 2]
 *
 * One thread and N workers are timed in alternation (one, N, one, N, … for `rounds` rounds) and
 * each figure is the median over all its timed steps: this machine's speed drifts by ±15 % over
 * minutes, and alternating spreads a slow spell over both sides instead of one.
 * Also the backend's plain matMul GFLOP/s on the head's shape. FLOPs per head step are counted as
 * 3 × the forward matrix products.
 * And the cores' capacity, before and after: one fixed loop timed on one thread alone, then on
 * `workers` threads at once; capacity = workers × (alone / slowest together), the number of
 * cores' worth of speed that N threads get. On this virtual machine it drifts for minutes at a
 * time: one core 1.5× slower than the other, or two threads at once each at half speed (a
 * capacity near 1), and the speedups measured in such a spell say more about the host than
 * about the code.
 * Last line: {"descriptorSpeedup": …, "imageSpeedup": …, …}.
 */
import { Worker } from 'node:worker_threads';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { buildImageModel, defaultScale } from '../src/model/image.js';
import { splitAt } from '../src/model/compose.js';
import { buildHead } from '../src/model/head.js';
import { mapImages, memoryImages, stackData, stackItems } from '../src/model/imageSet.js';
import { defaultWorkers, parallelTraining } from '../src/train/dataParallel.js';
import { train, type TrainInputs } from '../src/train/loop.js';
import { TRAIN_DEFAULTS, type TrainOptions } from '../src/train/options.js';
import type { Matrix } from '../src/matrix.js';
import { arg } from './args.js';

const workers = Number(arg('workers', String(defaultWorkers())));
const steps = Number(arg('steps', '12'));
const rounds = Number(arg('rounds', '2'));
const info = await initBackend('wasm');
console.log(`backend: ${info.backend} (${info.source}), tfjs ${info.tfjsVersion}; ${workers} workers against one thread`);

/** Milliseconds one fixed arithmetic loop takes on each of `n` threads started together, fastest first. */
async function loopTimes(n: number): Promise<number[]> {
  const loop = `
    const { parentPort } = require('node:worker_threads');
    function run() {
      const a = new Float64Array(1 << 16).fill(1.0001);
      const t0 = performance.now();
      let s = 0;
      for (let r = 0; r < 3000; r++) for (let i = 0; i < a.length; i++) s += a[i] * a[(i * 7) & 0xffff];
      return s > 0 ? performance.now() - t0 : -1;
    }
    parentPort.postMessage(run());`;
  const times = await Promise.all(Array.from({ length: n }, () => new Promise<number>((resolve, reject) => {
    const w = new Worker(loop, { eval: true });
    w.once('message', (ms: number) => void w.terminate().then(() => resolve(ms)));
    w.once('error', reject);
  })));
  return times.sort((a, b) => a - b).map((t) => Math.round(t));
}

/** The cores' capacity: the loop alone and on `workers` threads at once (printed), workers × alone / slowest. */
async function capacity(when: string): Promise<number> {
  const [aloneMs] = await loopTimes(1);
  const togetherMs = await loopTimes(workers);
  const cores = Number(((workers * aloneMs!) / togetherMs.at(-1)!).toFixed(2));
  console.log(`cores' capacity ${when}: the loop took ${aloneMs} ms alone, ${togetherMs.join(', ')} ms on ${workers} threads at once: ${cores} cores' worth`);
  return cores;
}
const capacityBefore = await capacity('before');

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

/** Step times (ms) of `steps` steps of `model` after 2 warm-up steps, on one thread or `n` workers. */
async function stepTimes(model: tf.LayersModel, inputs: Matrix | TrainInputs, ranking: Int32Array, o: TrainOptions, n: number): Promise<number[]> {
  const times: number[] = [];
  let last = performance.now();
  const parallel = n > 1 ? parallelTraining(model, { workers: n, triplets: (2 + steps) * o.batch, options: o }) : null;
  try {
    await train(model, inputs, ranking, { ...o, steps: 2 + steps }, {
      ...(parallel ? { parallel } : {}),
      onStep: () => {
        const now = performance.now();
        times.push(now - last);
        last = now;
      },
    });
  } finally {
    await parallel?.close();
  }
  return times.slice(2);
}

const median = (v: readonly number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

/** Median step time on one thread and on `workers` workers, timed in alternation for `rounds` rounds. */
async function oneAndMany(what: string, run: (n: number) => Promise<number[]>): Promise<{ one: number; many: number }> {
  const one: number[] = [];
  const many: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await run(1);
    const b = await run(workers);
    console.log(`${what}, round ${r + 1}: one thread ${median(a).toFixed(0)} ms, ${workers} workers ${median(b).toFixed(0)} ms`);
    one.push(...a);
    many.push(...b);
  }
  return { one: median(one), many: median(many) };
}

/** A self-ranking whose content does not matter for throughput: each item's next L items. */
const cyclicRanking = (n: number, L: number) => Int32Array.from({ length: n * L }, (_, q) => (Math.floor(q / L) + (q % L) + 1) % n);

// 1. Descriptor heads on a synthetic database.
const [D, E, H, B] = [2048, 512, 2048, 256];
const n = 20_000;
const data = new Float32Array(n * D);
let s = 1;
for (let i = 0; i < data.length; i++) {
  s = (s * 1103515245 + 12345) >>> 0;
  data[i] = s / 4294967296 - 0.5;
}
const x = { rows: n, cols: D, data };
const headOptions: TrainOptions = { ...TRAIN_DEFAULTS, batch: B, triplets: { k: 300, m0: 0.1, perAnchor: 10 } };
const heads = [];
for (const head of ['linear', 'residual'] as const) {
  const forward = 2 * 3 * B * D * E + (head === 'residual' ? 2 * 3 * B * D * H + 2 * 3 * B * H * E : 0);
  const { one, many } = await oneAndMany(`${head} head`, async (k) => {
    const model = buildHead({ kind: head, inputDim: D, outputDim: E, hidden: H, init: 'random', seed: 0 });
    try {
      return await stepTimes(model, x, cyclicRanking(n, 300), headOptions, k);
    } finally {
      model.dispose();
    }
  });
  heads.push({ head, one, many, gflops: (3 * forward) / (one / 1000) / 1e9 });
}
const plain = matMulGflops(3 * B, D, E);

// 2. Image training with a frozen front at 224 px: the front runs once over the images.
const size = 224;
const backbone = 'mobilenet_v1_0.75';
const whole = await buildImageModel({ backbone, size, resize: 'square', channels: 3, scale: defaultScale(backbone), whiten: null, seed: 1 });
const freezeUntil = 'conv_pw_11_relu';
const { front, back } = splitAt(whole, freezeUntil);
const images = 48;
const pixels = Array.from({ length: images }, (_, i) => ({ height: size, width: size, channels: 3, data: tf.randomUniform([size * size * 3], 0, 1, 'float32', i + 1).dataSync() as Float32Array }));
const maps = await mapImages(front, memoryImages(pixels), { batch: 16 });
const mapSet = memoryImages(maps);
const mapInputs: TrainInputs = { rows: images, gather: async (items) => stackItems(await mapSet.get(items)), raw: async (items) => stackData(await mapSet.get(items)) };
const imageOptions: TrainOptions = { ...TRAIN_DEFAULTS, batch: 40, batchNorm: 'frozen', triplets: { k: 20, m0: 0.1, perAnchor: 5 } };
const backWeights = back.getWeights().map((w) => w.clone());
// The same starting back for every measurement (train() changes the weights of the model it is given).
const { one: imageOne, many: imageMany } = await oneAndMany('image', async (k) => {
  back.setWeights(backWeights);
  return stepTimes(back, mapInputs, cyclicRanking(images, 20), imageOptions, k);
});

console.log(`\n${'training'.padEnd(52)} 1 thread   ${workers} workers  speedup`);
for (const r of heads) {
  const name = r.head === 'linear' ? `head linear ${D}→${E}, batch ${B}` : `head residual ${D}→${H}→${E} + ${D}→${E}, batch ${B}`;
  console.log(`${name.padEnd(52)} ${r.one.toFixed(0).padStart(6)} ms ${r.many.toFixed(0).padStart(7)} ms  ${(r.one / r.many).toFixed(2).padStart(6)}×   (${r.gflops.toFixed(1)} GFLOP/s on one thread)`);
}
const imageName = `${backbone} after ${freezeUntil}, ${size} px, batch 40`;
console.log(`${imageName.padEnd(52)} ${imageOne.toFixed(0).padStart(6)} ms ${imageMany.toFixed(0).padStart(7)} ms  ${(imageOne / imageMany).toFixed(2).padStart(6)}×`);
console.log(`plain matMul ${3 * B}×${D}×${E} on ${info.backend}, one thread: ${plain.toFixed(1)} GFLOP/s`);
const capacityAfter = await capacity('after');
const residual = heads.find((h) => h.head === 'residual')!;
const linear = heads.find((h) => h.head === 'linear')!;
console.log(
  JSON.stringify({
    workers,
    descriptorSpeedup: Number((residual.one / residual.many).toFixed(2)),
    imageSpeedup: Number((imageOne / imageMany).toFixed(2)),
    linearHeadSpeedup: Number((linear.one / linear.many).toFixed(2)),
    stepMs: { residualHead: [Math.round(residual.one), Math.round(residual.many)], linearHead: [Math.round(linear.one), Math.round(linear.many)], image: [Math.round(imageOne), Math.round(imageMany)] },
    matMulGflops: Number(plain.toFixed(1)),
    coresCapacity: [capacityBefore, capacityAfter],
  }),
);
