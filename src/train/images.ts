/**
 * Image mode: the same triplet training as descriptor mode, on a network that takes images.
 * Images are decoded with sharp as the steps need them (kept while a cache budget allows), with
 * the longer side resized to --image-size as in the paper (each image then goes through the
 * network on its own: sizes differ) or squashed to squares (stacked). With --freeze-until the
 * frozen front of the network runs once over all images and only the back trains, on the cached
 * feature maps (the usual CPU economy; frozen batch-norm layers then keep their ImageNet
 * statistics, as in fine-tuning practice).
 *
 * `--freeze-until all` (the default for a pretrained backbone): the whole backbone and GeM are
 * frozen and run once; a descriptor head (`--head`, residual by default, PCA-initialised) is
 * trained on their L2-normalised output, with PHOTO_HEAD_RECIPE's defaults. The saved model is one
 * image network: backbone → GeM → L2 → head (docs/algorithms.md, "Image mode").
 */
import { createHash } from 'node:crypto';
import { initBackend, tf, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { listImages, sizeLabel, type ResizeMode } from '../io/images.js';
import { ensureOutputFolder } from '../io/paths.js';
import { l2NormalizeRows, type Matrix } from '../matrix.js';
import { isPretrained } from '../model/backbones.js';
import { chain, ownNode, splitAt, tensorKey } from '../model/compose.js';
import { embedRows, normalizedHead } from '../model/head.js';
import { embedImages, fileImages, mapImages, memoryImages, pixelImages, stackData, stackItems, type ImageSet } from '../model/imageSet.js';
import { buildImageModel, defaultImageSize, defaultScale, type ImageModelSpec } from '../model/image.js';
import type { ModelManifest } from '../model/io.js';
import { readSelfRanking } from '../triplets/run.js';
import { packageVersion } from '../version.js';
import { checkpointFolder } from './checkpoint.js';
import { checkHeadFits, copyWeights, initialHead, startingPoint } from './initialHead.js';
import { stepCounts, type TrainInputs } from './loop.js';
import type { EpochRecord } from './records.js';
import { defaultFreeze, FREEZE_ALL, FREEZE_NONE, resolveTraining, type HeadOptions, type PartialTrainOptions, type TrainOptions } from './options.js';
import { finishRun, rankingDiffusion, trainingProvenance, trainInRunFolder, type TrainCallbacks, type TrainRun } from './runFolder.js';
import { selectionRecord, selector, trainingPlan, verdict, type SelectionOptions } from './selection.js';

/** The wasm heap's limit, less room for weights and the runtime. */
export const WASM_ACTIVATION_BUDGET = 3 * 2 ** 30;

/**
 * Floats output per input image of `inputShape` ([height, width, channels]) by the layers of
 * `model`, counting only those after layer `after` (the ones before are frozen and cached) when
 * given: shapes inferred layer by layer, so a size-free network is judged at a given size.
 */
export function layerOutputFloats(model: tf.LayersModel, inputShape: readonly number[], after?: string): number {
  const shapes = new Map<string, tf.Shape | tf.Shape[]>([[tensorKey(model.inputs[0]!), [1, ...inputShape]]]);
  let counting = after === undefined;
  let floats = 0;
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const node = ownNode(model, layer);
    const ins = node.inputs.map((t) => shapes.get(tensorKey(t))!);
    const out = layer.computeOutputShape((ins.length === 1 ? ins[0]! : ins) as tf.Shape) as tf.Shape;
    shapes.set(tensorKey(node.output), out);
    if (counting) floats += out.slice(1).reduce<number>((p, d) => p * (d ?? 1), 1);
    if (layer.name === after) counting = true;
  }
  return floats;
}

/**
 * Peak wasm heap per image of a training step, in bytes, from the layer outputs' floats: the
 * forward pass keeps about 3.3 copies of them (batch normalisation's intermediates included) and
 * the backward pass more. Measured as the heap's high-water mark, ResNet-18 at 224 and 600 px:
 * 8.5× the outputs' bytes with batch-norm statistics computed, 5.1× with them frozen (at 224 px:
 * ResNet-50 7.9×, MobileNet v1 7.3×, MobileNetV2 3.8×).
 */
export function peakBytesPerImage(floats: number, batchNorm: 'train' | 'frozen' = 'train'): number {
  return floats * 4 * (batchNorm === 'frozen' ? 6 : 9);
}

/**
 * Throws a one-line error naming the fix when a training step of `model` would not fit the wasm
 * heap: judged at the largest image (size × size), counting the layers after `freezeUntil`.
 */
function checkHeap(model: tf.LayersModel, spec: ImageModelSpec, options: TrainOptions, freezeUntil: string | undefined, backend: string): void {
  const perImage = peakBytesPerImage(layerOutputFloats(model, [spec.size, spec.size, spec.channels], freezeUntil), options.batchNorm);
  const imagesPerPass = options.imageWise ? 1 : 3 * Math.min(options.batch, options.microBatch ?? options.batch);
  if (backend !== 'wasm' || perImage * imagesPerPass <= WASM_ACTIVATION_BUDGET) return;
  const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(1);
  const fit = Math.floor(WASM_ACTIVATION_BUDGET / perImage / 3);
  const what = options.imageWise ? `one image at ${spec.size} px` : `a step of ${imagesPerPass / 3} triplets (${imagesPerPass} images at ${spec.size} px)`;
  const fixes = options.imageWise
    ? 'use a smaller --image-size, --freeze-until a later layer, or --batch-norm frozen'
    : fit >= 1
      ? `use --micro-batch ${fit} (gradient accumulation keeps the batch), a smaller --image-size, or --freeze-until a later layer`
      : `even one triplet does not fit: use --image-wise (each image's backward pass alone), a smaller --image-size, or --freeze-until a later layer`;
  throw new UserError(`${what} needs about ${gib(perImage * imagesPerPass)} GiB of activations, more than the wasm backend's 4 GiB heap allows; ${fixes}`);
}

/**
 * The checks of `trainImages` that need no data, for a pipeline to run before its expensive
 * stages: the backbone loads, the head fits its descriptors (frozen backbone), and (fine-tuning)
 * a training step fits the wasm heap.
 */
export async function checkImageTraining(o: ImageNetworkOptions & { readonly train: TrainOptions; readonly head: HeadOptions }, backend: BackendInfo): Promise<void> {
  const freeze = o.freezeUntil ?? defaultFreeze(o.backbone, o.weights);
  const spec = imageSpec(o, o.train.seed, backend.backend);
  const model = await buildImageModel(spec);
  try {
    if (freeze === FREEZE_ALL) checkHeadFits(o.head, (model.outputs[0]!.shape as number[]).at(-1)!);
    else checkHeap(model, spec, o.train, freeze === FREEZE_NONE ? undefined : freeze, backend.backend);
  } finally {
    model.dispose();
  }
}

/** The network and how images are resized: what `train --images` and `bootstrap --images` share. */
export type ImageNetworkOptions = Pick<ImageTrainOptions, 'backbone' | 'cut' | 'weights' | 'partialWeights' | 'scale' | 'size' | 'resize' | 'freezeUntil' | 'whiten' | 'pretrainedLr'>;

export interface ImageTrainOptions extends Omit<ImageModelSpec, 'seed' | 'channels' | 'scale' | 'whiten' | 'resize' | 'size'>, TrainCallbacks {
  /** Longer (or square) side; default by backend (defaultImageSize). */
  readonly size?: number;
  readonly whiten?: number | null;
  /** Image files: 'longer' (default, the paper's) keeps the aspect ratio; 'square' squashes. */
  readonly resize?: ResizeMode;
  /** A folder or list file of images, in the order of the ranking's rows. */
  readonly images?: string;
  /** Or square images already in memory: rows of size·size·channels values in [0, 1]. */
  readonly pixels?: Matrix;
  readonly channels?: number;
  readonly scale?: ImageModelSpec['scale'];
  readonly ranks: string;
  readonly out: string;
  /**
   * Train only the layers after this one (its output is computed once and cached); FREEZE_ALL: a
   * descriptor head on the frozen backbone + GeM; FREEZE_NONE: every layer. Default: defaultFreeze.
   */
  readonly freezeUntil?: string;
  /** FREEZE_ALL: the descriptor head (defaults: PHOTO_HEAD_RECIPE's). */
  readonly head?: Partial<HeadOptions>;
  /** FREEZE_ALL: the frozen backbone's GeM descriptors of the images, if already computed (`ddistill features`). */
  readonly features?: Matrix;
  readonly train?: PartialTrainOptions;
  readonly backend?: BackendChoice;
  readonly resume?: boolean;
  /** Start from the weights of this model or run folder (the same network) instead of the backbone's. */
  readonly initFrom?: string;
  /** Images per forward pass when embedding. */
  readonly embedBatch?: number;
  /** Hold-out and early stopping (SelectionOptions; default: none here, bootstrap holds out 10 %). */
  readonly selection?: SelectionOptions;
  /**
   * Fine-tuning: learning-rate factor of the pretrained layers (GeM and whitening train at the full
   * rate). Default PRETRAINED_LR for a pretrained backbone, 1 for a random one.
   */
  readonly pretrainedLr?: number;
}

/** The learning-rate factor of a pretrained backbone's layers when fine-tuning (new layers: 1). */
export const PRETRAINED_LR = 0.1;

export interface ImageTrainSummary {
  readonly model: string;
  readonly history: readonly EpochRecord[];
  readonly steps: number;
  readonly seconds: number;
  readonly backend: BackendInfo;
  readonly selection: Record<string, unknown>;
}

/** The image spec with its defaults filled in (the size for `backend` when none is given). */
export function imageSpec(o: Omit<ImageTrainOptions, 'ranks' | 'out'>, seed: number, backend = 'wasm'): ImageModelSpec {
  return {
    backbone: o.backbone,
    cut: o.cut,
    size: o.size ?? defaultImageSize(backend),
    resize: o.pixels ? 'square' : (o.resize ?? 'longer'),
    channels: o.channels ?? 3,
    scale: o.scale ?? defaultScale(o.backbone),
    whiten: o.whiten ?? null,
    widths: o.widths,
    weights: o.weights,
    partialWeights: o.partialWeights,
    onWeights: o.onWeights,
    seed,
  };
}

/** Trains an image network on triplets from a self-ranking of the same images. */
export async function trainImages(o: ImageTrainOptions): Promise<ImageTrainSummary> {
  const started = performance.now();
  ensureOutputFolder(o.out);
  const freeze = o.freezeUntil ?? defaultFreeze(o.backbone, o.weights);
  const { train: options, head } = resolveTraining({ ...o, freezeUntil: freeze });
  if (freeze === FREEZE_ALL && o.whiten) throw new UserError('--whiten has nothing to train with --freeze-until all (the head projects the descriptors); use --dim, or fine-tune with --freeze-until LAYER');
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
  const spec = imageSpec(o, options.seed, backend.backend);
  const model = await buildImageModel(spec);
  const frozenFront = freeze !== FREEZE_NONE;
  const images = o.pixels ? pixelImages(o.pixels, spec.size, spec.channels) : fileImages(paths!, { size: spec.size, mode: spec.resize, cacheBytes: frozenFront ? 0 : undefined });
  const sizes = sizeLabel(spec.size, spec.resize);
  if (freeze === FREEZE_ALL) {
    return trainHeadOnFrozen({ ...o, spec, model, imageSet: images, count, ranking, options, head, checkpointDir, backendInfo: backend, started });
  }
  const freezeUntil = frozenFront ? freeze : undefined;
  // Also when resuming: the checkpoint holds the trainable part only, not a frozen front.
  if (o.initFrom) await copyWeights(o.initFrom, model);

  // The wasm heap: judged at the largest image (size × size) before anything is decoded or written.
  try {
    checkHeap(model, spec, options, freezeUntil, backend.backend);
  } catch (err) {
    model.dispose();
    throw err;
  }

  // The trainable part and its inputs.
  let trainable = model;
  let inputs: ImageSet = images;
  let front: tf.LayersModel | null = null;
  let back: tf.LayersModel | null = null;
  if (freezeUntil) {
    ({ front, back } = splitAt(model, freezeUntil));
    o.onStage?.(`computing the frozen layers up to ${freezeUntil} once for all ${count} images (${sizes})`);
    inputs = memoryImages(await mapImages(front, images, { batch: o.embedBatch ?? 16 }));
    trainable = back;
  } else {
    o.onStage?.(paths ? `${count} images, ${sizes}, decoded as training needs them` : `${count} images in memory`);
  }
  const pretrainedLr = o.pretrainedLr ?? (isPretrained(o.backbone, o.weights) ? PRETRAINED_LR : 1);
  const plan = trainingPlan(ranking, options, o.selection);
  const fingerprint = createHash('sha256').update(JSON.stringify({ spec, options, selection: o.selection ?? null, pretrainedLr, freeze: freezeUntil ?? null, count, ranks: ranking.file, initFrom: o.initFrom ?? null })).digest('hex');
  const run: TrainRun = {
    out: o.out,
    checkpointDir,
    fingerprint,
    record: {
      images: o.images ?? '(in memory)', count, ranks: ranking.file, initFrom: o.initFrom ?? null, spec, freezeUntil: freezeUntil ?? null, options: plan.options, pretrainedLr,
      steps: stepCounts(plan.options, plan.teacher?.anchors?.length ?? count), backend, version: packageVersion(),
    },
  };
  const trainInputs: TrainInputs = { rows: count, gather: async (items) => stackItems(await inputs.get(items)), raw: async (items) => stackData(await inputs.get(items)), prefetch: !freezeUntil && !o.pixels };
  // The input of this run, for the verdict: what the network computed before training.
  const embedAll = (m: tf.LayersModel) => embedImages(m, inputs, { batch: o.embedBatch ?? 16 });
  const before = plan.heldOut.length > 0 ? await embedAll(trainable) : null;
  const select = selector(plan, embedAll);
  const { state } = await trainInRunFolder(trainable, trainInputs, ranking, plan.options, { ...run, resume: o.resume, select, teacher: plan.teacher, pretrainedLr, callbacks: o });
  const selection = selectionRecord(plan, state, before ? verdict(plan, await embedAll(trainable), before) : null);
  // One exportable network: the frozen front and the trained back joined again.
  const whole = front && back ? chain([front, back], 'image_embedder') : model;
  const seconds = (performance.now() - started) / 1000;
  const manifest = imageManifest(
    whole, spec,
    { backbone: spec.backbone, cut: spec.cut ?? null, whiten: spec.whiten, scale: spec.scale, freezeUntil: freezeUntil ?? null },
    {
      images: o.images ?? '(in memory)', count, ranks: ranking.file, initFrom: o.initFrom ?? null, diffusion: rankingDiffusion(ranking), triplets: plan.options.triplets, selection, pretrainedLr,
      ...trainingProvenance(plan.options, state, backend, seconds),
    },
  );
  const modelDir = await finishRun({ ...run, record: { ...run.record, selection } }, whole, manifest, state, seconds);
  model.dispose();
  return { model: modelDir, history: state.history, steps: state.stepsDone, seconds, backend, selection };
}

/** The image model manifest's fixed part: image input, L2-normalised output. */
function imageManifest(whole: tf.LayersModel, spec: ImageModelSpec, head: Record<string, unknown>, provenance: Record<string, unknown>): ModelManifest {
  return {
    format: 'diffusion-distill-model',
    version: 1,
    inputKind: 'images',
    inputDim: null,
    embeddingDim: (whole.outputs[0]!.shape as number[]).at(-1)!,
    preprocess: { normalize: 'none', image: { size: spec.size, channels: spec.channels, resize: spec.resize, range: [0, 1] } },
    postprocess: { normalize: 'l2' },
    head,
    provenance,
  };
}

/**
 * FREEZE_ALL: the backbone + GeM run once over the images (or their descriptors are given), and a
 * descriptor head is trained on the L2-normalised descriptors; the model saved is backbone → GeM
 * → L2 → head, one image network.
 */
async function trainHeadOnFrozen(
  o: ImageTrainOptions & {
    spec: ImageModelSpec; model: tf.LayersModel; imageSet: ImageSet; count: number; ranking: ReturnType<typeof readSelfRanking>;
    options: TrainOptions; head: HeadOptions; checkpointDir: string; backendInfo: BackendInfo; started: number;
  },
): Promise<ImageTrainSummary> {
  const { spec, model, count, ranking, options, head, backendInfo: backend } = o;
  checkHeadFits(head, (model.outputs[0]!.shape as number[]).at(-1)!); // before any image is decoded
  let features = o.features;
  if (features && features.rows !== count) throw new UserError(`the given features have ${features.rows} rows but there are ${count} images`);
  if (!features) {
    o.onStage?.(`computing the frozen backbone's descriptors once for all ${count} images (${sizeLabel(spec.size, spec.resize)})`);
    features = await embedImages(model, o.imageSet, { batch: o.embedBatch ?? 16 });
  }
  const x = l2NormalizeRows(features, () => {}); // a blank image's zero row stays zero
  const { model: headModel, pca } = await initialHead(x, head, options.seed, { resume: o.resume, initFrom: o.initFrom, onStage: o.onStage });
  const plan = trainingPlan(ranking, options, o.selection);
  const fingerprint = createHash('sha256').update(JSON.stringify({ spec, options, selection: o.selection ?? null, freeze: FREEZE_ALL, head, count, ranks: ranking.file, initFrom: o.initFrom ?? null })).digest('hex');
  const run: TrainRun = {
    out: o.out,
    checkpointDir: o.checkpointDir,
    fingerprint,
    record: {
      images: o.images ?? '(in memory)', count, ranks: ranking.file, initFrom: o.initFrom ?? null, spec, freezeUntil: FREEZE_ALL, head, pca, options: plan.options,
      steps: stepCounts(plan.options, plan.teacher?.anchors?.length ?? count), backend, version: packageVersion(),
    },
  };
  const select = selector(plan, async (m) => embedRows(m, x));
  const start = await startingPoint(plan, x, o.initFrom);
  const { state } = await trainInRunFolder(headModel, x, ranking, plan.options, { ...run, resume: o.resume, select, teacher: plan.teacher, callbacks: o });
  const selection = selectionRecord(plan, state, verdict(plan, embedRows(headModel, x), start));
  const whole = chain([model, normalizedHead(headModel)], 'image_embedder');
  const seconds = (performance.now() - o.started) / 1000;
  const manifest = imageManifest(
    whole, spec,
    { backbone: spec.backbone, cut: spec.cut ?? null, whiten: null, scale: spec.scale, freezeUntil: FREEZE_ALL, descriptorHead: { ...head, seed: options.seed } },
    {
      images: o.images ?? '(in memory)', count, ranks: ranking.file, initFrom: o.initFrom ?? null, diffusion: rankingDiffusion(ranking), triplets: plan.options.triplets, pca, selection,
      ...trainingProvenance(plan.options, state, backend, seconds),
    },
  );
  const modelDir = await finishRun({ ...run, record: { ...run.record, selection } }, whole, manifest, state, seconds);
  model.dispose();
  headModel.dispose();
  return { model: modelDir, history: state.history, steps: state.stepsDone, seconds, backend, selection };
}
