/**
 * The pretrained backbones shipped in the package's `models/` folder (see models/README.md), and
 * how a `--backbone` value is resolved: a shipped name, a built-in ResNet, an nsfwjs network, or
 * the path of a tfjs LayersModel (model.json).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { RESNET_ARCHS } from './resnet.js';

export interface ShippedBackbone {
  /** Folder under models/ holding model.json and its weight shards. */
  readonly folder: string;
  /** Pixel range the network expects. */
  readonly scale: 'unit' | 'symmetric';
  /** Layer whose feature map GeM pools. */
  readonly cut: string;
  readonly description: string;
}

/** The backbones in models/, by name. */
export const SHIPPED_BACKBONES: Readonly<Record<string, ShippedBackbone>> = Object.freeze({
  'mobilenet_v1_0.75': {
    folder: 'mobilenet_v1_0.75',
    scale: 'symmetric',
    cut: 'conv_pw_13_relu',
    description: "Google's ImageNet MobileNet v1 (width 0.75), Apache-2.0; 768-d GeM features",
  },
});

/** The package's models/ folder (beside dist/ or src/). */
export const modelsFolder = (): string => fileURLToPath(new URL('../../models/', import.meta.url));

/** Backbones read from the npm package nsfwjs: `nsfwjs:NAME`. */
export const NSFWJS_PREFIX = 'nsfwjs:';

/** Every backbone name a user can give, for messages. */
export const backboneNames = (): string =>
  `shipped: ${Object.keys(SHIPPED_BACKBONES).join(', ')}; built-in (random or --weights): ${RESNET_ARCHS.join(', ')}; nsfwjs:mobilenet_v2 (npm install nsfwjs); or the path of a tfjs model.json`;

/**
 * The model.json of a shipped backbone or a path given by the user; nsfwjs names unchanged.
 * Throws a one-line error listing the choices for a name that is neither.
 */
export function backboneFile(backbone: string): string {
  if (backbone.startsWith(NSFWJS_PREFIX)) return backbone;
  const shipped = SHIPPED_BACKBONES[backbone];
  if (shipped) {
    const file = join(modelsFolder(), shipped.folder, 'model.json');
    if (!existsSync(file)) throw new UserError(`backbone ${backbone}: ${file} is missing from this installation; reinstall diffusion-distill (${backboneNames()})`);
    return file;
  }
  if (!existsSync(backbone)) throw new UserError(`unknown backbone '${backbone}' (no such file); ${backboneNames()}`);
  return backbone;
}

/** Whether the backbone starts from pretrained weights (everything but a built-in ResNet without --weights). */
export const isPretrained = (backbone: string, weights?: string): boolean => !(RESNET_ARCHS as readonly string[]).includes(backbone) || weights !== undefined;
