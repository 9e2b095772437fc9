/**
 * Image mode: the same triplet training as descriptor mode, on a network that takes images.
 * Images are decoded once (sharp), resized to squares and kept as rows of size·size·channels
 * values; with --freeze-until the frozen front of the network runs once over all images and only
 * the back trains, on the cached feature maps (the usual CPU economy; frozen batch-norm layers
 * then keep their ImageNet statistics, as in fine-tuning practice).
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend, tf, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { imageBatches, listImages } from '../io/images.js';
import type { Matrix } from '../matrix.js';
import { chain, splitAt } from '../model/compose.js';
import { embedRows } from '../model/head.js';
import { buildImageModel, isBuiltInBackbone, type ImageModelSpec } from '../model/image.js';
import { saveModelFolder, type ModelManifest } from '../model/io.js';
import { readSelfRanking } from '../triplets/run.js';
import { packageVersion } from '../version.js';
import { checkpointFolder, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { stepCounts, train, type EpochRecord, type TrainState } from './loop.js';
import { trainOptions, type TrainCallbacks, type TrainFilesOptions } from './run.js';

/** The wasm heap's limit, less room for weights and the runtime. */
export const WASM_ACTIVATION_BUDGET = 3 * 2 ** 30;

/** Decodes images into rows of size·size·3 values in [0, 1] (unreadable files are fatal here). */
export async function loadImageMatrix(paths: readonly string[], size: number, onProgress?: (done: number, total: number) => void): Promise<Matrix> {
  const cols = size * size * 3;
  const data = new Float32Array(paths.length * cols);
  let done = 0;
  for await (const b of imageBatches(paths, 16, { size })) {
    b.indices.forEach((index, i) => data.set(b.images[i]!.data, index * cols));
    done += b.indices.length;
    onProgress?.(done, paths.length);
  }
  return { rows: paths.length, cols, data };
}

/** Approximate bytes of activations (kept for backpropagation) per input row of `model`. */
export function activationBytesPerRow(model: tf.LayersModel): number {
  let floats = 0;
  for (const layer of model.layers) {
    const shape = layer.outputShape as (number | null)[];
    if (!Array.isArray(shape) || Array.isArray(shape[0])) continue;
    floats += shape.slice(1).reduce<number>((p, d) => p * (d ?? 1), 1);
  }
  // Outputs kept for the backward pass, their gradients, and temporaries: about 3 copies.
  return floats * 4 * 3;
}

export interface ImageTrainOptions extends Omit<ImageModelSpec, 'seed' | 'channels' | 'scale' | 'whiten'>, TrainCallbacks {
  readonly whiten?: number | null;
  /** A folder or list file of images, in the order of the ranking's rows. */
  readonly images?: string;
  /** Or images already in memory: rows of size·size·channels values in [0, 1]. */
  readonly pixels?: Matrix;
  readonly channels?: number;
  readonly scale?: ImageModelSpec['scale'];
  readonly ranks: string;
  readonly out: string;
  /** Train only the layers after this one (its output is computed once and cached). */
  readonly freezeUntil?: string;
  readonly train?: TrainFilesOptions['train'];
  readonly backend?: BackendChoice;
  readonly resume?: boolean;
  /** Images per forward pass when embedding. */
  readonly embedBatch?: number;
}

export interface ImageTrainSummary {
  readonly model: string;
  readonly history: readonly EpochRecord[];
  readonly steps: number;
  readonly seconds: number;
  readonly backend: BackendInfo;
}

/** The image spec with its defaults filled in. */
export function imageSpec(o: Omit<ImageTrainOptions, 'ranks' | 'out'>, seed: number): ImageModelSpec {
  return {
    backbone: o.backbone,
    cut: o.cut,
    size: o.size,
    channels: o.channels ?? 3,
    scale: o.scale ?? (isBuiltInBackbone(o.backbone) ? 'unit' : 'symmetric'),
    whiten: o.whiten ?? null,
    widths: o.widths,
    weights: o.weights,
    seed,
  };
}

/** Trains an image network on triplets from a self-ranking of the same images. */
export async function trainImages(o: ImageTrainOptions): Promise<ImageTrainSummary> {
  const started = performance.now();
  const options = trainOptions(o.train);
  const ranking = readSelfRanking(o.ranks);
  if (!o.images === !o.pixels) throw new UserError('give the images either as files (--images) or in memory (pixels), not both');
  const paths = o.images ? listImages(o.images) : null;
  const count = paths ? paths.length : o.pixels!.rows;
  if (ranking.rows !== count) {
    throw new UserError(`${ranking.file} ranks ${ranking.rows} items but there are ${count} images; rank the features of these images (ddistill features, then ddistill diffuse)`);
  }
  const checkpointDir = checkpointFolder(o.out, o.resume);
  const backend = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(backend);
  const spec = imageSpec(o, options.seed);
  const model = await buildImageModel(spec);
  if (o.pixels && o.pixels.cols !== spec.size * spec.size * spec.channels) {
    throw new UserError(`the images have ${o.pixels.cols} values each, not ${spec.size}×${spec.size}×${spec.channels}`);
  }
  o.onStage?.(paths ? `decoding ${count} images at ${spec.size}×${spec.size}` : `${count} images in memory`);
  const images = o.pixels ?? (await loadImageMatrix(paths!, spec.size));

  // The trainable part and its inputs.
  let trainable = model;
  let inputs = images;
  let front: tf.LayersModel | null = null;
  let back: tf.LayersModel | null = null;
  if (o.freezeUntil) {
    ({ front, back } = splitAt(model, o.freezeUntil));
    o.onStage?.(`computing the frozen layers up to ${o.freezeUntil} once for all ${count} images`);
    const maps = embedRows(front, images, o.embedBatch ?? 16, false);
    const mapShape = front.outputs[0]!.shape.slice(1) as number[];
    const flatIn = tf.input({ shape: [maps.cols], name: 'cached_features' });
    const reshaped = tf.layers.reshape({ targetShape: mapShape, name: 'cached_features_map' }).apply(flatIn) as tf.SymbolicTensor;
    trainable = tf.model({ inputs: flatIn, outputs: back.apply(reshaped) as tf.SymbolicTensor, name: 'trainable_back' });
    inputs = maps;
  }
  const rowsPerStep = 3 * Math.min(options.batch, options.microBatch ?? options.batch);
  const need = activationBytesPerRow(trainable) * rowsPerStep;
  if (backend.backend === 'wasm' && need > WASM_ACTIVATION_BUDGET) {
    const fit = Math.max(1, Math.floor(WASM_ACTIVATION_BUDGET / activationBytesPerRow(trainable) / 3));
    throw new UserError(
      `a step of ${rowsPerStep / 3} triplets (${rowsPerStep} images at ${spec.size} px) needs about ${(need / 2 ** 30).toFixed(1)} GiB of activations, more than the wasm backend's 4 GiB heap allows; ` +
        `use --micro-batch ${fit} (gradient accumulation keeps the batch), a smaller --image-size, or --freeze-until a later layer`,
    );
  }
  const fingerprint = createHash('sha256').update(JSON.stringify({ spec, options, freeze: o.freezeUntil ?? null, count, ranks: ranking.file })).digest('hex');
  let resumeFrom: { state: TrainState; momentum: tf.Variable[] } | undefined;
  if (o.resume) resumeFrom = loadCheckpoint(checkpointDir, trainable, fingerprint);
  mkdirSync(o.out, { recursive: true });
  const record = (history: readonly EpochRecord[], status: string) => ({
    status, images: o.images ?? '(in memory)', count, ranks: ranking.file, spec, freezeUntil: o.freezeUntil ?? null, options,
    steps: stepCounts(options, count), backend, version: packageVersion(), history,
  });
  const state = await train(trainable, inputs, ranking.neighbours, options, {
    onStep: o.onStep,
    onEpoch: async (s, momentum) => {
      o.onEpoch?.(s.history.at(-1)!);
      await saveCheckpoint(checkpointDir, trainable, momentum, s, fingerprint);
      writeFileAtomic(join(o.out, 'train.json'), JSON.stringify(record(s.history, 'training'), null, 2) + '\n');
    },
  }, resumeFrom);
  if (resumeFrom) tf.dispose(resumeFrom.momentum);
  // One exportable network: the frozen front and the trained back joined again.
  const whole = front && back ? chain([front, back], 'image_embedder') : model;
  const seconds = (performance.now() - started) / 1000;
  const manifest: ModelManifest = {
    format: 'diffusion-distill-model',
    version: 1,
    inputKind: 'images',
    inputDim: spec.size * spec.size * spec.channels,
    embeddingDim: (whole.outputs[0]!.shape as number[]).at(-1)!,
    preprocess: { normalize: 'none', image: { size: spec.size, channels: spec.channels, resize: 'square', range: [0, 1] } },
    postprocess: { normalize: 'l2' },
    head: { backbone: spec.backbone, cut: spec.cut ?? null, whiten: spec.whiten, scale: spec.scale, freezeUntil: o.freezeUntil ?? null },
    provenance: {
      images: o.images ?? '(in memory)', count, ranks: ranking.file, diffusion: ranking.diffusion ? { method: ranking.diffusion.method, k: ranking.diffusion.k } : null,
      optimiser: { ...options, triplets: undefined }, triplets: options.triplets, steps: state.stepsDone, finalLoss: state.history.at(-1)?.loss ?? null,
      backend: backend.backend, tfjs: backend.tfjsVersion, package: `diffusion-distill ${packageVersion()}`, trainedAt: new Date().toISOString(), seconds: Number(seconds.toFixed(3)),
    },
  };
  const modelDir = join(o.out, 'model');
  await saveModelFolder(whole, modelDir, manifest);
  writeFileAtomic(join(o.out, 'train.json'), JSON.stringify({ ...record(state.history, 'done'), seconds: Number(seconds.toFixed(3)) }, null, 2) + '\n');
  model.dispose();
  return { model: modelDir, history: state.history, steps: state.stepsDone, seconds, backend };
}
