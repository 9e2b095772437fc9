/**
 * Sets of images (or of cached feature maps) addressed by position, and running image networks
 * over them. Images keep their own height and width ('longer' resizing keeps the aspect ratio):
 * runs of equal shapes go through the network stacked, others one by one, and the network pools
 * each to one row (GeM), so the embeddings do not depend on how the images were grouped.
 */
import { tensorsOf, tf, type TensorData } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { loadImageBytes, toUnit, type ImageOptions, type ImageBytes } from '../io/images.js';
import type { Matrix } from '../matrix.js';
import { l2Normalize } from './head.js';

/** height × width × channels floats (images: RGB in [0, 1]). */
export interface ImageItem {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly data: Float32Array;
}

export interface ImageSet {
  readonly count: number;
  /** The items at these positions, in order. */
  get(indices: readonly number[]): Promise<ImageItem[]>;
}

/** Items already in memory. */
export function memoryImages(items: readonly ImageItem[]): ImageSet {
  return { count: items.length, get: async (indices) => indices.map((i) => items[i]!) };
}

/** The rows of `m` as size × size × channels images (e.g. MNIST digits). */
export function pixelImages(m: Matrix, size: number, channels: number): ImageSet {
  const cols = size * size * channels;
  if (m.cols !== cols) throw new UserError(`the images have ${m.cols} values each, not ${size}×${size}×${channels}`);
  const items = Array.from({ length: m.rows }, (_, i) => ({ height: size, width: size, channels, data: m.data.subarray(i * cols, (i + 1) * cols) }));
  return memoryImages(items);
}

/**
 * Image files, decoded on demand (sharp) with `o`'s resizing and optional per-image crops. Decoded
 * bytes are kept while they fit in `cacheBytes` (default 1 GiB; 0 for a single pass), so small sets
 * are decoded once and large ones stream from disk with bounded memory.
 */
export function fileImages(paths: readonly string[], o: ImageOptions & { readonly crops?: readonly (readonly number[] | null)[]; readonly cacheBytes?: number }): ImageSet {
  const cache = new Map<number, ImageBytes>();
  let cached = 0;
  const budget = o.cacheBytes ?? 2 ** 30;
  return {
    count: paths.length,
    get: async (indices) => {
      const bytes = await Promise.all(
        indices.map(async (i) => {
          const hit = cache.get(i);
          if (hit) return hit;
          const img = await loadImageBytes(paths[i]!, { ...o, crop: o.crops?.[i] ?? o.crop });
          if (cached + img.data.length <= budget) {
            cache.set(i, img);
            cached += img.data.length;
          }
          return img;
        }),
      );
      return bytes.map((b) => ({ ...toUnit(b), channels: 3 }));
    },
  };
}

const sameShape = (a: ImageItem, b: ImageItem) => a.height === b.height && a.width === b.width && a.channels === b.channels;

/** One 4-d tensor when all items share a shape; otherwise one [1, h, w, c] tensor per item. */
export function stackItems(items: readonly ImageItem[]): tf.Tensor4D | tf.Tensor4D[] {
  return tensorsOf(stackData(items)) as tf.Tensor4D | tf.Tensor4D[];
}

/** stackItems' values as plain arrays (for worker threads). */
export function stackData(items: readonly ImageItem[]): TensorData | TensorData[] {
  const first = items[0]!;
  if (items.every((it) => sameShape(it, first))) {
    const size = first.data.length;
    const data = new Float32Array(items.length * size);
    items.forEach((it, i) => data.set(it.data, i * size));
    return { shape: [items.length, first.height, first.width, first.channels], data };
  }
  return items.map((it) => ({ shape: [1, it.height, it.width, it.channels], data: it.data }));
}

/** The model's outputs for `items`, in order: one tensor per run of equally shaped items. */
export function predictItems(model: tf.LayersModel, items: readonly ImageItem[]): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  for (let start = 0; start < items.length; ) {
    let end = start + 1;
    while (end < items.length && sameShape(items[end]!, items[start]!)) end++;
    const x = stackItems(items.slice(start, end)) as tf.Tensor4D;
    out.push(model.predict(x) as tf.Tensor);
    x.dispose();
    start = end;
  }
  return out;
}

/** Embeddings of all images of `set`, `batch` at a time: rows in set order (L2-normalised by default). */
export async function embedImages(model: tf.LayersModel, set: ImageSet, o: { batch?: number; normalize?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<Matrix> {
  const batch = o.batch ?? 16;
  const shape = model.outputs[0]!.shape.slice(1);
  if (shape.some((d) => d === null)) throw new Error('embedImages: the model outputs maps of free size; use mapImages');
  const cols = (shape as number[]).reduce((p, d) => p * d, 1);
  const out = new Float32Array(set.count * cols);
  let row = 0;
  for (let start = 0; start < set.count; start += batch) {
    const items = await set.get(range(start, Math.min(set.count, start + batch)));
    for (const y of predictItems(model, items)) {
      const rows = o.normalize === false ? y : l2Normalize(y as tf.Tensor2D);
      // Read back outside any tidy scope (inside, wasm reads are several times slower).
      out.set(rows.dataSync() as Float32Array, row * cols);
      row += y.shape[0]!;
      tf.dispose([y, rows]);
    }
    o.onProgress?.(row, set.count);
  }
  return { rows: set.count, cols, data: out };
}

/** The model's 4-d outputs (e.g. a frozen front's feature maps) for all images, as items in memory. */
export async function mapImages(model: tf.LayersModel, set: ImageSet, o: { batch?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<ImageItem[]> {
  const batch = o.batch ?? 16;
  const maps: ImageItem[] = [];
  for (let start = 0; start < set.count; start += batch) {
    const items = await set.get(range(start, Math.min(set.count, start + batch)));
    for (const y of predictItems(model, items)) {
      const [n, height, width, channels] = y.shape as [number, number, number, number];
      const data = y.dataSync() as Float32Array;
      const size = height * width * channels;
      for (let i = 0; i < n; i++) maps.push({ height, width, channels, data: data.slice(i * size, (i + 1) * size) });
      y.dispose();
    }
    o.onProgress?.(maps.length, set.count);
  }
  return maps;
}

const range = (start: number, end: number): number[] => Array.from({ length: end - start }, (_, i) => start + i);
