import { describe, expect, it } from 'vitest';
import { assignFlat, initBackend, nativeSource, tf, writeFlat } from '../src/backend/tfjs.js';
import { join } from 'node:path';
import { ROOT, rng } from './helpers.js';

/** Runs fn on a backend and returns its result as plain numbers. */
async function on(backend: string, fn: () => tf.Tensor): Promise<number[]> {
  await tf.setBackend(backend);
  const t = tf.tidy(fn);
  const v = Array.from(await t.data());
  t.dispose();
  return v;
}

const relativeError = (a: number[], b: number[]) => {
  let diff = 0;
  let size = 0;
  a.forEach((x, i) => {
    diff = Math.max(diff, Math.abs(x - b[i]!));
    size = Math.max(size, Math.abs(b[i]!));
  });
  return diff / size;
};

describe('tfjs backend choice and wasm kernel replacements', async () => {
  const info = await initBackend('wasm');
  const r = rng(9);
  const values = (n: number) => Array.from({ length: n }, () => r() * 2 - 1);

  it('starts the wasm backend and says so', () => {
    expect(info.backend).toBe('wasm');
    expect(info.source).toMatch(/tfjs-backend-wasm/);
  });

  it.each([
    [false, false], [true, false], [false, true], [true, true],
  ] as const)('BatchMatMul transposeA=%s transposeB=%s matches cpu (2-d and batched)', async (ta, tb) => {
    const [m, k, n] = [7, 13, 5];
    const a2 = values(m * k);
    const b2 = values(k * n);
    const shapeA = ta ? [k, m] : [m, k];
    const shapeB = tb ? [n, k] : [k, n];
    const plain = () => tf.matMul(tf.tensor2d(a2, shapeA as [number, number]), tf.tensor2d(b2, shapeB as [number, number]), ta, tb);
    expect(relativeError(await on('wasm', plain), await on('cpu', plain))).toBeLessThanOrEqual(1e-5);
    const a3 = values(3 * m * k);
    const b3 = values(3 * k * n);
    const batched = () => tf.matMul(tf.tensor3d(a3, [3, ...shapeA] as [number, number, number]), tf.tensor3d(b3, [3, ...shapeB] as [number, number, number]), ta, tb);
    expect(relativeError(await on('wasm', batched), await on('cpu', batched))).toBeLessThanOrEqual(1e-5);
  });

  it.each([
    ['transposeB', false, true, [3, 40, 50]],
    ['transposeA', true, false, [50, 40, 3]],
  ] as const)('BatchMatMul with %s on a small operand computes (Bᵀ·Aᵀ)ᵀ: equal to the last bit to the product of a transposed copy', async (_, ta, tb, [m, k, n]) => {
    // These shapes make the transposed copy of the large operand dearer than copying the small
    // one and the result, so the kernel takes the swapped form; the direct form is the plain
    // product of an explicitly transposed copy.
    const a = values(2 * m * k);
    const b = values(2 * k * n);
    const shapeA = (ta ? [2, k, m] : [2, m, k]) as [number, number, number];
    const shapeB = (tb ? [2, n, k] : [2, k, n]) as [number, number, number];
    const asked = () => tf.matMul(tf.tensor3d(a, shapeA), tf.tensor3d(b, shapeB), ta, tb);
    const copied = () => {
      const A = tf.tensor3d(a, shapeA);
      const B = tf.tensor3d(b, shapeB);
      return tf.matMul(ta ? tf.transpose(A, [0, 2, 1]) : A, tb ? tf.transpose(B, [0, 2, 1]) : B);
    };
    const swapped = await on('wasm', asked);
    expect(swapped).toEqual(await on('wasm', copied));
    expect(relativeError(swapped, await on('cpu', asked))).toBeLessThanOrEqual(1e-5);
    // A batch of one against two (broadcast).
    const one = () => tf.matMul(tf.tensor3d(a.slice(0, m * k), [1, ...shapeA.slice(1)] as [number, number, number]), tf.tensor3d(b, shapeB), ta, tb);
    expect(relativeError(await on('wasm', one), await on('cpu', one))).toBeLessThanOrEqual(1e-5);
  });

  it('gradients through a dense layer match cpu', async () => {
    const x = values(16 * 24);
    const w = values(24 * 8);
    const grads = () => {
      const W = tf.tensor2d(w, [24, 8]);
      const g = tf.grads((X: tf.Tensor, Wt: tf.Tensor) => tf.sum(tf.square(tf.relu(tf.matMul(X as tf.Tensor2D, Wt as tf.Tensor2D)))));
      const [gx, gw] = g([tf.tensor2d(x, [16, 24]), W]);
      return tf.concat([gx!.flatten(), gw!.flatten()]);
    };
    expect(relativeError(await on('wasm', grads), await on('cpu', grads))).toBeLessThanOrEqual(1e-5);
  });

  it('UnsortedSegmentSum (missing on wasm) matches cpu, with dropped and repeated ids', async () => {
    const x = values(9 * 4 * 3);
    const ids = [2, 0, 2, -1, 5, 1, 0, 7, 2];
    const sum = () => tf.unsortedSegmentSum(tf.tensor3d(x, [9, 4, 3]), tf.tensor1d(ids, 'int32'), 6);
    expect(relativeError(await on('wasm', sum), await on('cpu', sum))).toBeLessThanOrEqual(1e-5);
    // Its main use: the gradient of gather.
    const table = values(10 * 5);
    const gatherGrad = () => tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, tf.tensor1d([3, 1, 3, 9, 0, 3], 'int32')))))(tf.tensor2d(table, [10, 5]));
    expect(relativeError(await on('wasm', gatherGrad), await on('cpu', gatherGrad))).toBeLessThanOrEqual(1e-5);
  });

  it.each([
    [[5], [3]], [[4, 3], [1, 2]], [[4, 3], [3, 1]], [[2, 3, 4], [2, 1, 3]], [[2, 1, 3, 2], [1, 3, 2, 2]], [[3, 2], [1, 1]],
  ])('Tile of shape %j by %j matches cpu (float32 and int32)', async (shape, reps) => {
    const size = shape.reduce((p, d) => p * d, 1);
    const x = values(size);
    const f = () => tf.tile(tf.tensor(x, shape), reps);
    expect(relativeError(await on('wasm', f), await on('cpu', f))).toBeLessThanOrEqual(1e-5);
    const ints = x.map((v) => Math.round(v * 100));
    const g = () => tf.tile(tf.tensor(ints, shape, 'int32'), reps);
    expect(await on('wasm', g)).toEqual(await on('cpu', g));
  });

  const convCases = [1, 3, 7].flatMap((k) => [1, 2].flatMap((stride) => (['same', 'valid'] as const).map((pad) => [k, stride, pad] as const)));

  it.each(convCases)('conv2d gradients (Conv2DBackpropFilter/Input) match cpu: kernel %i, stride %i, %s', async (k, stride, pad) => {
    const x = values(2 * 11 * 10 * 3);
    const f = values(k * k * 3 * 4);
    const shapeOut = tf.conv2d(tf.zeros([2, 11, 10, 3]) as tf.Tensor4D, tf.zeros([k, k, 3, 4]) as tf.Tensor4D, stride, pad).shape;
    const weights = values(shapeOut.reduce((p, d) => p * d, 1));
    const grads = () => {
      const g = tf.grads((X: tf.Tensor, F: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(X as tf.Tensor4D, F as tf.Tensor4D, stride, pad), tf.tensor(weights, shapeOut))));
      const [gx, gf] = g([tf.tensor4d(x, [2, 11, 10, 3]), tf.tensor4d(f, [k, k, 3, 4])]);
      return tf.concat([gx!.flatten(), gf!.flatten()]);
    };
    expect(relativeError(await on('wasm', grads), await on('cpu', grads))).toBeLessThanOrEqual(1e-5);
  });

  // (tfjs refuses gradients of dilated depthwise convolutions on every backend.)
  it.each(convCases)(
    'depthwise conv gradients (DepthwiseConv2dNativeBackpropFilter/Input) match cpu: kernel %i, stride %i, %s',
    async (k, stride, pad) => {
      const dilation = 1;
      const x = values(2 * 11 * 10 * 3);
      const f = values(k * k * 3 * 2);
      const shapeOut = tf.depthwiseConv2d(tf.zeros([2, 11, 10, 3]) as tf.Tensor4D, tf.zeros([k, k, 3, 2]) as tf.Tensor4D, stride, pad, 'NHWC', dilation).shape;
      const weights = values(shapeOut.reduce((p, d) => p * d, 1));
      const grads = () => {
        const g = tf.grads((X: tf.Tensor, F: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(X as tf.Tensor4D, F as tf.Tensor4D, stride, pad, 'NHWC', dilation), tf.tensor(weights, shapeOut))));
        const [gx, gf] = g([tf.tensor4d(x, [2, 11, 10, 3]), tf.tensor4d(f, [k, k, 3, 2])]);
        return tf.concat([gx!.flatten(), gf!.flatten()]);
      };
      expect(relativeError(await on('wasm', grads), await on('cpu', grads))).toBeLessThanOrEqual(1e-5);
    },
  );

  it('weights written with assignFlat are the ones the next product uses (after one already ran), and writeFlat reads them back', async () => {
    await tf.setBackend('wasm');
    const layer = tf.layers.dense({ units: 3, useBias: false, inputShape: [4] });
    const model = tf.sequential({ layers: [layer] });
    const x = tf.tensor2d(values(2 * 4), [2, 4]);
    const product = () => (model.predict(x) as tf.Tensor).dataSync();
    product(); // the product has run on the old weights
    const kernel = Float32Array.from(values(4 * 3));
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    assignFlat(variables, kernel);
    const expected = tf.matMul(x, tf.tensor2d(kernel, [4, 3])).dataSync();
    expect(Array.from(product())).toEqual(Array.from(expected));
    const back = new Float32Array(12);
    writeFlat(variables, back);
    expect(back).toEqual(kernel);
    tf.dispose([x, ...model.getWeights()]);
  });

  it('leaks no tensors', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor2d(values(64), [8, 8]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.matMul(a, a, true, true).sum().dataSync());
    expect(tf.memory().numTensors).toBe(before);
    a.dispose();
  });
});

describe('backend choice messages', () => {
  const stub = join(ROOT, 'test', 'fixtures', 'throwing-native.mjs');
  it('auto: an installed native package that fails to load is named with its cause, and wasm runs', async () => {
    const info = await initBackend('auto', { nativePackages: [stub, '@tensorflow/not-a-package'] });
    expect(info.backend).toBe('wasm');
    expect(info.why).toBe(`${stub} is installed but failed to load (libcudart.so.11.0: cannot open shared object file: No such file or directory)`);
  });

  it('auto: none installed says so', async () => {
    const info = await initBackend('auto', { nativePackages: ['@tensorflow/not-a-package'] });
    expect(info.backend).toBe('wasm');
    expect(info.why).toBe('no native TensorFlow installed (@tensorflow/not-a-package)');
  });

  it('native TensorFlow names where it computes: the GPU tfjs-node-gpu sees, or the CPU', () => {
    expect(nativeSource('@tensorflow/tfjs-node-gpu', () => ['NVIDIA H200'])).toBe('@tensorflow/tfjs-node-gpu, TensorFlow on GPU NVIDIA H200');
    expect(nativeSource('@tensorflow/tfjs-node-gpu', () => null)).toBe('@tensorflow/tfjs-node-gpu, but no GPU is visible (nvidia-smi): TensorFlow on the CPU');
    expect(nativeSource('@tensorflow/tfjs-node', () => ['NVIDIA H200'])).toBe('@tensorflow/tfjs-node, TensorFlow on the CPU');
  });

  it('--backend tensorflow: the failure and its cause, not "install one"', async () => {
    await expect(initBackend('tensorflow', { nativePackages: [stub] })).rejects.toThrow(/--backend tensorflow: .*throwing-native\.mjs is installed but failed to load \(libcudart\.so\.11\.0.*\); fix that install \(its version must match @tensorflow\/tfjs 4\.\d+\.\d+\)/);
    await expect(initBackend('tensorflow', { nativePackages: ['@tensorflow/not-a-package'] })).rejects.toThrow(/needs @tensorflow\/tfjs-node or @tensorflow\/tfjs-node-gpu 4\.\d+\.\d+; install one/);
  });
});
