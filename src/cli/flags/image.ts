/** The image-mode options shared by `features`, `train` and `bootstrap`. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ResizeMode } from '../../io/images.js';
import { backboneNames } from '../../model/backbones.js';
import { IMAGE_DEFAULTS, IMAGE_SIZE_PRESETS } from '../../model/image.js';
import { PHOTO_ENGINES } from '../../model/photoRunner.js';
import { PRETRAINED_LR, type ImageNetworkOptions } from '../../train/images.js';
import { parsePositiveInt, positive as parsePositiveNumber } from './numbers.js';


const presetList = () => Object.entries(IMAGE_SIZE_PRESETS).map(([k, v]) => `${k} = ${v}`).join(', ');

export function parseImageSize(value: string): number {
  const preset = IMAGE_SIZE_PRESETS[value];
  if (preset !== undefined) return preset;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 8) throw new InvalidArgumentError(`expected pixels (an integer ≥ 8) or a preset (${presetList()}).`);
  return n;
}

export interface ImageFlags {
  backbone: string;
  cut?: string;
  imageSize?: number;
  resize: ResizeMode;
  weights?: string;
  partialWeights?: boolean;
  inputScale?: 'unit' | 'symmetric';
}

/**
 * --backbone (required, or defaulting to the library's), --cut, --weights, --image-size,
 * --input-scale, --resize (help prefixed with `prefix`).
 */
export function addImageOptions(cmd: Command, prefix: string, backbone: { required: boolean }): Command {
  const b = new Option('--backbone <name|model.json>', `${prefix}${backboneNames()}`);
  if (backbone.required) b.makeOptionMandatory();
  else b.default(IMAGE_DEFAULTS.backbone);
  return cmd
    .addOption(b)
    .option('--cut <layer>', `${prefix}layer of a model.json backbone to pool (default: its last feature map)`)
    .option('--weights <model.json>', `${prefix}Keras-converted ImageNet weights (keras.applications names, include_top=False) for a built-in ResNet; the network takes their layout (biases, padding, caffe input)`)
    .option('--partial-weights', `${prefix}load the --weights that match and leave the rest as they are (default: every weight must match)`)
    .option('--image-size <px|preset>', `${prefix}longer side (or square side) in pixels; ${presetList()} (default: 224 on wasm/cpu, 600 with native TensorFlow)`, parseImageSize)
    .addOption(new Option('--input-scale <range>', `${prefix}pixel range the backbone expects: unit [0, 1] (built-in ResNets, nsfwjs) or symmetric [-1, 1] (Keras ImageNet models); default by backbone`).choices(['unit', 'symmetric']))
    .addOption(new Option('--resize <mode>', `${prefix}longer: keep the aspect ratio (the paper); square: squash`).choices(['longer', 'square']).default('longer'));
}

export interface ImageTrainingFlags extends ImageFlags {
  freezeUntil?: string;
  whiten?: number;
  pretrainedLr?: number;
}

/** --freeze-until and --whiten (help prefixed with `prefix`). */
export function addImageTrainingOptions(cmd: Command, prefix: string): Command {
  return cmd
    .option('--freeze-until <layer|all|none>', `${prefix}train only the layers after this one (a block output); all: freeze the whole backbone and GeM and train a --head on their descriptors (default for a pretrained backbone); none: train every layer (default for a built-in ResNet without --weights)`)
    .option('--whiten <n>', `${prefix}a whitening layer of n outputs after GeM`, parsePositiveInt)
    .option('--pretrained-lr <x>', `${prefix}fine-tuning: learning-rate factor of the pretrained layers (GeM and whitening take the full --lr) (default: ${PRETRAINED_LR} for a pretrained backbone, 1 for a random one)`, parsePositiveNumber);
}

/** The network and image options of `trainImages` from the flags. */
export function imageOptionsFromFlags(flags: ImageTrainingFlags): ImageNetworkOptions {
  return {
    backbone: flags.backbone, cut: flags.cut, weights: flags.weights, partialWeights: flags.partialWeights, scale: flags.inputScale, size: flags.imageSize, resize: flags.resize,
    freezeUntil: flags.freezeUntil, whiten: flags.whiten ?? null, pretrainedLr: flags.pretrainedLr,
  };
}

/** --engine for commands that run an image network over photos (features, embed). */
export const photoEngineOption = (): Option =>
  new Option('--engine <name>', 'who runs an image network: onnxruntime (native kernels on every core, the same features), tfjs (the --backend), or auto: onnxruntime when installed and it has every layer')
    .choices(PHOTO_ENGINES)
    .default('auto');
