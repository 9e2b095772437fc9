/**
 * Image input with `sharp`: a folder or a list file of images (JPEG, PNG, WebP, GIF, TIFF, AVIF…),
 * decoded, optionally cropped (revisitop query boxes), resized and returned as float RGB in
 * [0, 1]. Unreadable files are reported by name (model/photoPass.ts skips them or stops).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../errors.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp'];

/** The images of a folder (sorted by name, recursively) or of a list file (one path per line). */
export function listImages(source: string): string[] {
  if (!existsSync(source)) throw new UserError(`${source}: no such folder or list file; give a folder of images or a text file listing them`);
  if (statSync(source).isDirectory()) {
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        const p = join(dir, entry.name);
        if (entry.isDirectory()) walk(p);
        else if (IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) out.push(p);
      }
    };
    walk(source);
    if (out.length === 0) throw new UserError(`${source}: no images (${IMAGE_EXTENSIONS.join(', ')}) in this folder`);
    return out;
  }
  if (IMAGE_EXTENSIONS.includes(extname(source).toLowerCase())) return [source];
  const lines = readFileSync(source, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new UserError(`${source}: the list is empty; write one image path per line`);
  return lines.map((l) => (isAbsolute(l) ? l : resolve(dirname(source), l)));
}

export type ResizeMode = 'square' | 'longer';

/** "224×224" or "longer side 600", for logs. */
export const sizeLabel = (size: number, mode: ResizeMode = 'longer'): string => (mode === 'square' ? `${size}×${size}` : `longer side ${size}`);

export interface ImageOptions {
  /** Target size: the side of the square, or the longer side. */
  readonly size: number;
  /** 'square': squash to size × size (batches stack); 'longer': keep the aspect ratio. */
  readonly mode?: ResizeMode;
  /** Crop box [x1, y1, x2, y2] in original pixels, applied before resizing. */
  readonly crop?: readonly number[] | null;
}

export interface DecodedImage {
  readonly height: number;
  readonly width: number;
  /** height × width × 3, RGB in [0, 1]. */
  readonly data: Float32Array;
}

/** An image as decoded bytes: height × width × 3, RGB in 0…255 (a quarter of the floats' memory). */
export interface ImageBytes {
  readonly height: number;
  readonly width: number;
  readonly data: Uint8Array;
}

type SharpModule = typeof import('sharp');
let sharpModule: Promise<SharpModule['default']> | null = null;
async function loadSharp(): Promise<SharpModule['default']> {
  sharpModule ??= import('sharp').then(
    (m) => m.default,
    () => {
      throw new UserError('the npm package `sharp` is not installed; run `npm install` in the project (it ships prebuilt libvips)');
    },
  );
  return sharpModule;
}

/** Decodes one image to bytes. Throws a UserError naming the file when it cannot be read. */
export async function loadImageBytes(path: string, o: ImageOptions): Promise<ImageBytes> {
  const sharp = await loadSharp();
  try {
    let img = sharp(path, { failOn: 'error' }).rotate().removeAlpha().toColourspace('srgb');
    if (o.crop) {
      const meta = await sharp(path).metadata();
      const [x1, y1, x2, y2] = o.crop.map((v) => Math.round(v)) as [number, number, number, number];
      const left = Math.max(0, Math.min(x1, (meta.width ?? 1) - 1));
      const top = Math.max(0, Math.min(y1, (meta.height ?? 1) - 1));
      const width = Math.max(1, Math.min(x2, meta.width ?? x2) - left);
      const height = Math.max(1, Math.min(y2, meta.height ?? y2) - top);
      img = img.extract({ left, top, width, height });
    }
    img = o.mode === 'longer' ? img.resize(o.size, o.size, { fit: 'inside' }) : img.resize(o.size, o.size, { fit: 'fill' });
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { height: info.height, width: info.width, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path}: cannot decode this image (${(err as Error).message.split('\n')[0]}); remove or replace it, or pass --skip-bad-images`);
  }
}

/**
 * Reads every image's header (no decoding: about a millisecond each), so that an unreadable file
 * is a one-line error before any expensive stage. Returns the paths that cannot be read.
 */
export async function unreadableImages(paths: readonly string[]): Promise<{ path: string; message: string }[]> {
  const sharp = await loadSharp();
  const bad: { path: string; message: string }[] = [];
  for (const path of paths) {
    try {
      const meta = await sharp(path).metadata();
      if (!meta.width || !meta.height) throw new Error('no image size in its header');
    } catch (err) {
      bad.push({ path, message: (err as Error).message.split('\n')[0]! });
    }
  }
  return bad;
}

/** Bytes 0…255 to floats in [0, 1]. */
export function toUnit(bytes: ImageBytes): DecodedImage {
  const out = new Float32Array(bytes.data.length);
  for (let i = 0; i < out.length; i++) out[i] = bytes.data[i]! / 255;
  return { height: bytes.height, width: bytes.width, data: out };
}

/** Decodes one image to floats in [0, 1]. Throws a UserError naming the file when it cannot be read. */
export async function loadImage(path: string, o: ImageOptions): Promise<DecodedImage> {
  return toUnit(await loadImageBytes(path, o));
}
