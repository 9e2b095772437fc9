/**
 * Image-mode networks: a backbone (one of the built-in ResNets, or any tfjs LayersModel given by
 * its model.json, cut at a named layer), GeM pooling, an optional whitening layer. Inputs are
 * images as [batch, height, width, channels] in [0, 1]: size × size squares, or any size when the
 * longer side is resized to `size` (the paper's setting, each image keeping its aspect ratio). The
 * network rescales its input itself, so an exported model needs no other preprocessing than
 * decoding and resizing.
 */
import { existsSync } from 'node:fs';
import { tf } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { copyWeightsByName, ownNode, tensorKey } from './compose.js';
import type { ResizeMode } from '../io/images.js';
import { fileHandler } from './io.js';
import { backboneFile, NSFWJS_PREFIX, SHIPPED_BACKBONES } from './backbones.js';
import { buildResNet, GeM, RESNET_ARCHS, type ResNetArch } from './resnet.js';

export interface ImageModelSpec {
  /** A shipped backbone (models/), 'resnet18' | 'resnet34' | 'resnet50' | 'small', 'nsfwjs:mobilenet_v2', or the path of a tfjs model.json. */
  readonly backbone: string;
  /** For a model.json backbone: the layer to cut at (default: its last 4-d output). */
  readonly cut?: string;
  /** The side of the square, or the longer side. */
  readonly size: number;
  /** 'square': size × size inputs; 'longer': any height and width (longer side = size). */
  readonly resize: ResizeMode;
  readonly channels: number;
  /** Input scaling inside the network: 'unit' keeps [0, 1], 'symmetric' maps to [-1, 1]. */
  readonly scale: 'unit' | 'symmetric';
  readonly whiten: number | null;
  /** 'small' ResNet: channels per stage. */
  readonly widths?: readonly number[];
  /** Keras-converted weights (model.json) to load by layer name into a built-in ResNet (Keras layout). */
  readonly weights?: string;
  /** Allow weights that match only in part (the counts are reported through onWeights). */
  readonly partialWeights?: boolean;
  readonly onWeights?: (r: { copied: number; missing: string[]; unused: string[] }) => void;
  readonly seed: number;
}

/** Named image sizes (the longer side): the paper's, and one a laptop CPU trains at. */
export const IMAGE_SIZE_PRESETS: Readonly<Record<string, number>> = Object.freeze({ paper: 600, cpu: 224 });

/** The image network when none is named: the ImageNet MobileNet shipped in models/. */
export const IMAGE_DEFAULTS = Object.freeze({ backbone: 'mobilenet_v1_0.75' });

/**
 * The image size when none is given: the paper's 600 px where native TensorFlow runs, 224 px on
 * the wasm and cpu backends (a laptop CPU; about 7× fewer pixels).
 */
export const defaultImageSize = (backend: string): number => (backend === 'tensorflow' ? IMAGE_SIZE_PRESETS.paper! : IMAGE_SIZE_PRESETS.cpu!);

export const isBuiltInBackbone = (b: string): b is ResNetArch => (RESNET_ARCHS as readonly string[]).includes(b);

/** The networks bundled in the npm package nsfwjs (Keras LayersModels), as `nsfwjs:NAME` backbones. */
export const NSFWJS_MODELS = ['mobilenet_v2', 'inception_v3'] as const;

/**
 * How a backbone expects its input: the built-in ResNets and nsfwjs's networks take [0, 1]
 * (nsfwjs divides by 255); Keras ImageNet models such as MobileNet take [-1, 1].
 */
export const defaultScale = (backbone: string): ImageModelSpec['scale'] =>
  SHIPPED_BACKBONES[backbone]?.scale ?? (isBuiltInBackbone(backbone) || backbone.startsWith(NSFWJS_PREFIX) ? 'unit' : 'symmetric');

/**
 * A network that nsfwjs bundles (as JavaScript modules holding the model.json and base64 weight
 * shards), loaded from the installed package.
 */
async function loadNsfwjsModel(backbone: string): Promise<tf.LayersModel> {
  const name = backbone.slice(NSFWJS_PREFIX.length);
  if (!(NSFWJS_MODELS as readonly string[]).includes(name)) throw new UserError(`${backbone}: nsfwjs bundles ${NSFWJS_MODELS.map((m) => NSFWJS_PREFIX + m).join(' and ')}`);
  interface Bundle { modelJson(): Promise<{ default: { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] } }>; weightBundles: (() => Promise<{ default: string }>)[] }
  let bundle: Bundle;
  try {
    const modulePath = `nsfwjs/models/${name}`;
    const m = (await import(modulePath)) as Record<string, Bundle>;
    bundle = Object.values(m).find((v) => typeof v === 'object' && v !== null && 'modelJson' in v)!;
  } catch {
    throw new UserError(`${backbone}: the npm package nsfwjs is not installed; run \`npm install nsfwjs\` (it bundles the network), or give a model.json`);
  }
  const json = (await bundle.modelJson()).default;
  const shards = await Promise.all(bundle.weightBundles.map(async (load) => Buffer.from((await load()).default, 'base64')));
  const weightData = Buffer.concat(shards);
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.length) }));
}

async function loadLayersModelFile(path: string): Promise<tf.LayersModel> {
  if (path.startsWith(NSFWJS_PREFIX)) return loadNsfwjsModel(path);
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

/**
 * Loads Keras-converted ImageNet weights (keras.applications names: conv1_conv, conv2_block1_1_conv,
 * …) into a built-in ResNet in the Keras layout. Every backbone weight must be matched and every
 * weight of the file used, unless `partialWeights` (then the counts go to `onWeights`); GeM's p
 * and a whitening layer are ours and never in such a file.
 */
async function loadKerasWeights(model: tf.LayersModel, spec: ImageModelSpec): Promise<void> {
  const source = await loadLayersModelFile(spec.weights!);
  try {
    const ours = (name: string) => name.startsWith('gem/') || name.startsWith('whiten/');
    const targetNames = new Set(model.weights.map((w) => w.originalName));
    const sourceNames = new Set(source.weights.map((w) => w.originalName));
    const missing = [...targetNames].filter((n) => !ours(n) && !sourceNames.has(n));
    const unused = source.weights.map((w) => w.originalName).filter((n) => !targetNames.has(n));
    const list = (names: string[]) => `${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`;
    if (missing.length === model.weights.filter((w) => !ours(w.originalName)).length) {
      throw new UserError(`${spec.weights}: no weight names in common with ${spec.backbone} (expected Keras names such as conv1_conv/kernel, conv2_block1_1_conv/bias)`);
    }
    if (!spec.partialWeights && (missing.length > 0 || unused.length > 0)) {
      const parts = [missing.length > 0 ? `${missing.length} weights of ${spec.backbone} are not in it (${list(missing)})` : '', unused.length > 0 ? `${unused.length} of its weights have no place in ${spec.backbone} (${list(unused)})` : ''].filter(Boolean);
      throw new UserError(`${spec.weights}: ${parts.join('; ')}; give the weights of the same Keras network (without its classifier: include_top=False), or pass --partial-weights to load what matches`);
    }
    const copied = copyWeightsByName(model, source, spec.weights!, { partial: true });
    spec.onWeights?.({ copied, missing, unused });
  } finally {
    source.dispose();
  }
}

/** Builds the image network of `spec` (loading backbone files as needed). */
export async function buildImageModel(spec: ImageModelSpec): Promise<tf.LayersModel> {
  const { channels } = spec;
  const side = spec.resize === 'square' ? spec.size : null;
  if (!Number.isInteger(spec.size) || spec.size < 8) throw new UserError(`image size must be an integer ≥ 8, got ${spec.size}`);
  if (isBuiltInBackbone(spec.backbone)) {
    if (spec.scale !== 'unit') throw new UserError('the built-in ResNets take images in [0, 1]; leave the input scale as it is');
    const layout = spec.weights ? 'keras' : 'plain';
    const model = buildResNet({ arch: spec.backbone, size: side, channels, whiten: spec.whiten, widths: spec.widths, seed: spec.seed, layout });
    if (spec.weights) {
      try {
        await loadKerasWeights(model, spec);
      } catch (err) {
        model.dispose();
        throw err;
      }
    }
    return model;
  }
  const backbone = await loadLayersModelFile(backboneFile(spec.backbone));
  const inShape = backbone.inputs[0]!.shape;
  if (inShape.length !== 4 || inShape[3] !== channels) {
    throw new UserError(`${spec.backbone} takes inputs of shape ${JSON.stringify(inShape.slice(1))}, not images of ${channels} channels`);
  }
  const cut = spec.cut ?? SHIPPED_BACKBONES[spec.backbone]?.cut ?? lastFeatureMap(backbone);
  // The convolutional layers up to the cut work at any input size: they are re-applied to ours.
  const input = tf.input({ shape: [side, side, channels], name: 'image' });
  let x: tf.SymbolicTensor = input;
  if (spec.scale === 'symmetric') x = tf.layers.rescaling({ scale: 2, offset: -1, name: 'image_scale' }).apply(x) as tf.SymbolicTensor;
  try {
    x = reapply(backbone, x, cut);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${spec.backbone}: its layers up to '${cut}' do not apply to ${side ?? 'variable'}-pixel images (${(err as Error).message.split('\n')[0]}); cut at an earlier layer or use a square --image-size it was made for`);
  }
  if ((x.shape as number[]).length !== 4) throw new UserError(`layer '${cut}' outputs shape ${JSON.stringify(x.shape)}, not a feature map; cut at a convolutional layer`);
  let out = new GeM({ name: 'gem' }).apply(x) as tf.SymbolicTensor;
  if (spec.whiten !== null) out = tf.layers.dense({ units: spec.whiten, kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed * 7919 + 7907 }), name: 'whiten' }).apply(out) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'image_embedder' });
}
