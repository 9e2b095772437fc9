/**
 * Image-mode networks: a backbone (one of the built-in ResNets, or any tfjs LayersModel given by
 * its model.json, cut at a named layer), GeM pooling, an optional whitening layer. Inputs are
 * square images flattened to rows of size·size·channels values in [0, 1] (as the trainer gathers
 * rows); the network reshapes and rescales them itself, so an exported model needs no other
 * preprocessing than decoding and resizing.
 */
import { existsSync } from 'node:fs';
import { tf } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { ownNode, tensorKey } from './compose.js';
import { fileHandler } from './io.js';
import { buildResNet, GeM, loadWeightsByName, RESNET_ARCHS, type ResNetArch } from './resnet.js';

export interface ImageModelSpec {
  /** 'resnet18' | 'resnet34' | 'resnet50' | 'small', or the path of a tfjs model.json. */
  readonly backbone: string;
  /** For a model.json backbone: the layer to cut at (default: its last 4-d output). */
  readonly cut?: string;
  readonly size: number;
  readonly channels: number;
  /** Input scaling inside the network: 'unit' keeps [0, 1], 'symmetric' maps to [-1, 1]. */
  readonly scale: 'unit' | 'symmetric';
  readonly whiten: number | null;
  /** 'small' ResNet: channels per stage. */
  readonly widths?: readonly number[];
  /** Keras-converted weights (model.json) to load by layer name into a built-in ResNet. */
  readonly weights?: string;
  readonly seed: number;
}

export const isBuiltInBackbone = (b: string): b is ResNetArch => (RESNET_ARCHS as readonly string[]).includes(b);

async function loadLayersModelFile(path: string): Promise<tf.LayersModel> {
  if (!existsSync(path)) throw new UserError(`${path}: no such model.json; give a tfjs LayersModel (model.json + weight shards) or one of ${RESNET_ARCHS.join(', ')}`);
  try {
    return await tf.loadLayersModel(fileHandler(path));
  } catch (err) {
    throw new UserError(`${path}: cannot load this tfjs LayersModel (${(err as Error).message.split('\n')[0]})`);
  }
}

/**
 * Applies the layers of `model`, in order, to `input` (instead of the model's own input) up to and
 * including layer `stopAfter`: the backbone's layers become layers of the new graph, so it can be
 * split anywhere for freezing. Weights are shared with `model`.
 */
export function reapply(model: tf.LayersModel, input: tf.SymbolicTensor, stopAfter: string): tf.SymbolicTensor {
  const mapped = new Map<string, tf.SymbolicTensor>([[tensorKey(model.inputs[0]!), input]]);
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const node = ownNode(model, layer);
    const inputs = node.inputs.map((t) => mapped.get(tensorKey(t)) ?? fail(layer.name));
    const out = layer.apply(inputs.length === 1 ? inputs[0]! : inputs) as tf.SymbolicTensor;
    mapped.set(tensorKey(node.output), out);
    if (layer.name === stopAfter) return out;
  }
  throw new UserError(`the backbone has no layer '${stopAfter}'`);
}
const fail = (name: string): never => {
  throw new Error(`reapply: layer ${name} reads a tensor that was not rebuilt`);
};

/**
 * The last layer with a spatial (h × w × c, h·w > 1) output: where a classifier's global pooling
 * starts (MobileNet v1: conv_pw_13_relu; its later 1 × 1 maps belong to the classifier).
 */
export function lastFeatureMap(model: tf.LayersModel): string {
  for (let i = model.layers.length - 1; i >= 0; i--) {
    const shape = model.layers[i]!.outputShape as number[];
    if (Array.isArray(shape) && shape.length === 4 && !Array.isArray(shape[0]) && (shape[1] ?? 2) * (shape[2] ?? 2) > 1) return model.layers[i]!.name;
  }
  throw new UserError('the backbone has no spatial feature map to pool');
}

/** Builds the image network of `spec` (loading backbone files as needed). */
export async function buildImageModel(spec: ImageModelSpec): Promise<tf.LayersModel> {
  const { size, channels } = spec;
  if (isBuiltInBackbone(spec.backbone)) {
    if (spec.scale !== 'unit') throw new UserError('the built-in ResNets take images in [0, 1]; leave the input scale as it is');
    const model = buildResNet({ arch: spec.backbone, size, channels, whiten: spec.whiten, widths: spec.widths, seed: spec.seed });
    if (spec.weights) {
      const source = await loadLayersModelFile(spec.weights);
      const copied = loadWeightsByName(model, source);
      source.dispose();
      if (copied.length === 0) throw new UserError(`${spec.weights}: no layer names in common with ${spec.backbone} (expected Keras names such as conv1_conv, conv2_block1_1_conv)`);
    }
    return model;
  }
  const backbone = await loadLayersModelFile(spec.backbone);
  const inShape = backbone.inputs[0]!.shape;
  if ((inShape[1] !== null && inShape[1] !== size) || (inShape[2] !== null && inShape[2] !== size) || inShape[3] !== channels) {
    throw new UserError(`${spec.backbone} takes ${inShape.slice(1).join('×')} images; use --image-size ${inShape[1]} (and ${inShape[3]} channels)`);
  }
  const cut = spec.cut ?? lastFeatureMap(backbone);
  const input = tf.input({ shape: [size * size * channels], name: 'image' });
  let x = tf.layers.reshape({ targetShape: [size, size, channels], name: 'image_hwc' }).apply(input) as tf.SymbolicTensor;
  if (spec.scale === 'symmetric') x = tf.layers.rescaling({ scale: 2, offset: -1, name: 'image_scale' }).apply(x) as tf.SymbolicTensor;
  x = reapply(backbone, x, cut);
  if ((x.shape as number[]).length !== 4) throw new UserError(`layer '${cut}' outputs shape ${JSON.stringify(x.shape)}, not a feature map; cut at a convolutional layer`);
  let out = new GeM({ name: 'gem' }).apply(x) as tf.SymbolicTensor;
  if (spec.whiten !== null) out = tf.layers.dense({ units: spec.whiten, kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed * 7919 + 7907 }), name: 'whiten' }).apply(out) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'image_embedder' });
}
