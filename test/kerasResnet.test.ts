/**
 * Keras-converted ResNet-50 weights load exactly: a ResNet-50 written here the way
 * keras.applications.resnet50 builds it (explicit conv1/pool1 padding, convolutions with biases,
 * caffe input), with random weights everywhere, saved as a tfjs LayersModel and loaded through
 * `--weights` into the built-in ResNet-50, gives the same GeM descriptor as GeM computed here over
 * the reference network's conv5_block3_out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '../src/backend/tfjs.js';
import { buildImageModel } from '../src/model/image.js';
import { rng, withTempDir } from './helpers.js';

type T = tf.SymbolicTensor;

/**
 * keras.applications.resnet50.ResNet50(include_top=False, weights=None), layer for layer (the
 * convolution `withoutBias` built without its bias: another network).
 */
function kerasResNet50(withoutBias?: string): tf.LayersModel {
  const conv = (x: T, filters: number, kernel: number, stride: number, name: string, padding: 'same' | 'valid' = 'valid') =>
    tf.layers.conv2d({ filters, kernelSize: kernel, strides: stride, padding, useBias: name !== withoutBias, name }).apply(x) as T;
  const bn = (x: T, name: string) => tf.layers.batchNormalization({ axis: 3, epsilon: 1.001e-5, name }).apply(x) as T;
  const relu = (x: T, name: string) => tf.layers.activation({ activation: 'relu', name }).apply(x) as T;
  const block1 = (x: T, filters: number, stride: number, convShortcut: boolean, name: string) => {
    const shortcut = convShortcut ? bn(conv(x, 4 * filters, 1, stride, `${name}_0_conv`), `${name}_0_bn`) : x;
    let y = relu(bn(conv(x, filters, 1, stride, `${name}_1_conv`), `${name}_1_bn`), `${name}_1_relu`);
    y = relu(bn(conv(y, filters, 3, 1, `${name}_2_conv`, 'same'), `${name}_2_bn`), `${name}_2_relu`);
    y = bn(conv(y, 4 * filters, 1, 1, `${name}_3_conv`), `${name}_3_bn`);
    return relu(tf.layers.add({ name: `${name}_add` }).apply([shortcut, y]) as T, `${name}_out`);
  };
  const stack1 = (x: T, filters: number, blocks: number, stride1: number, name: string) => {
    x = block1(x, filters, stride1, true, `${name}_block1`);
    for (let i = 2; i <= blocks; i++) x = block1(x, filters, 1, false, `${name}_block${i}`);
    return x;
  };
  const input = tf.input({ shape: [null, null, 3], name: 'input_1' });
  let x = tf.layers.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'conv1_pad' }).apply(input) as T;
  x = relu(bn(conv(x, 64, 7, 2, 'conv1_conv'), 'conv1_bn'), 'conv1_relu');
  x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'pool1_pad' }).apply(x) as T;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }).apply(x) as T;
  x = stack1(x, 64, 3, 1, 'conv2');
  x = stack1(x, 128, 4, 2, 'conv3');
  x = stack1(x, 256, 6, 2, 'conv4');
  x = stack1(x, 512, 3, 2, 'conv5');
  return tf.model({ inputs: input, outputs: x, name: 'resnet50' });
}

/** Random weights everywhere: He-scaled kernels, biases, and batch-norm γ, β, mean and variance. */
function randomize(model: tf.LayersModel, seed: number): void {
  const r = rng(seed);
  const uniform = (shape: number[], lo: number, hi: number) => tf.tensor(Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => lo + (hi - lo) * r()), shape);
  model.setWeights(
    model.weights.map((w) => {
      const name = w.originalName.split('/').pop()!;
      if (name === 'kernel') {
        const fanIn = (w.shape.slice(0, -1) as number[]).reduce((p, d) => p * d, 1);
        const a = Math.sqrt(6 / fanIn);
        return uniform(w.shape as number[], -a, a);
      }
      if (name === 'gamma' || name === 'moving_variance') return uniform(w.shape as number[], 0.5, 1.5);
      return uniform(w.shape as number[], -0.1, 0.1); // bias, beta, moving_mean
    }),
  );
}

async function saveLayersModel(model: tf.LayersModel, dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (a) => {
    writeFileSync(join(dir, 'weights.bin'), new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData!)));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return join(dir, 'model.json');
}

/** GeM (p = 3, eps 1e-6) of an [1, h, w, c] map, computed here. */
function gem(map: Float32Array, c: number): Float64Array {
  const out = new Float64Array(c);
  const hw = map.length / c;
  for (let i = 0; i < map.length; i++) out[i % c] += Math.max(map[i]!, 1e-6) ** 3;
  return out.map((s) => (s / hw) ** (1 / 3));
}

describe('Keras ResNet-50 weights (--weights)', () => {
  it('load exactly: biases, caffe preprocessing and conv1 padding included (outputs ≤ 1e-4)', async () => {
    await initBackend('wasm');
    await withTempDir(async (dir) => {
      const reference = kerasResNet50();
      randomize(reference, 11);
      const file = await saveLayersModel(reference, dir);
      const ours = await buildImageModel({ backbone: 'resnet50', weights: file, size: 64, resize: 'longer', channels: 3, scale: 'unit', whiten: null, seed: 5 });
      // An image in [0, 1], 64 × 48; the reference takes it as Keras' caffe preprocessing makes it.
      const r = rng(3);
      const pixels = Array.from({ length: 64 * 48 * 3 }, () => r());
      const image = tf.tensor4d(pixels, [1, 64, 48, 3]);
      const caffe = tf.tidy(() => tf.sub(tf.mul(tf.reverse(image, -1), 255), tf.tensor1d([103.939, 116.779, 123.68])));
      const map = (reference.predict(caffe) as tf.Tensor).dataSync() as Float32Array;
      const want = gem(map, 2048);
      const got = (ours.predict(image) as tf.Tensor).dataSync();
      const scale = Math.max(...want.map(Math.abs));
      let worst = 0;
      for (let i = 0; i < 2048; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / scale);
      expect(scale).toBeGreaterThan(1e-3);
      expect(worst).toBeLessThanOrEqual(1e-4);

      // Weights of a network with one bias less are refused by name, unless --partial-weights;
      // so are weights with no place in ResNet-50 (a classifier).
      const other = kerasResNet50('conv3_block2_2_conv');
      const dropped = await saveLayersModel(other, join(dir, 'dropped'));
      const spec = { backbone: 'resnet50', size: 64, resize: 'longer' as const, channels: 3, scale: 'unit' as const, whiten: null, seed: 5 };
      await expect(buildImageModel({ ...spec, weights: dropped })).rejects.toThrow(/1 weights of resnet50 are not in it \(conv3_block2_2_conv\/bias\).*--partial-weights/);
      const counts: { copied: number; missing: string[] }[] = [];
      const partial = await buildImageModel({ ...spec, weights: dropped, partialWeights: true, onWeights: (c) => counts.push(c) });
      expect(counts[0]!.missing).toEqual(['conv3_block2_2_conv/bias']);
      expect(counts[0]!.copied).toBe(reference.weights.length - 1);
      const withTop = tf.model({ inputs: reference.inputs, outputs: tf.layers.dense({ units: 3, name: 'predictions' }).apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(reference.outputs[0]!)) as T });
      const top = await saveLayersModel(withTop, join(dir, 'top'));
      await expect(buildImageModel({ ...spec, weights: top })).rejects.toThrow(/2 of its weights have no place in resnet50 \(predictions\/kernel, predictions\/bias\)/);
      other.dispose();
      tf.dispose([image, caffe]);
      [reference, ours, partial].forEach((m) => m.dispose());
    });
  }, 120_000);
});
