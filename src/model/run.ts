/**
 * `embed` and `export` on files: a trained model folder (or a train run folder) in; embeddings
 * (.npy) or a standalone model folder out.
 */
import { join } from 'node:path';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeNpy } from '../io/npy.js';
import { l2NormalizeNamed, readMatrix, type Matrix } from '../matrix.js';
import { loadRevisitedGroundTruth } from '../io/groundTruth.js';
import { imageBatches, listImages } from '../io/images.js';
import { loadImageMatrix } from '../train/images.js';
import { embedRows } from './head.js';
import { buildImageModel, isBuiltInBackbone } from './image.js';
import { loadModelFolder, saveModelFolder, type ModelManifest } from './io.js';
import type { tf } from '../backend/tfjs.js';

/** The manifest's preprocessing applied to descriptors read from `file`. */
export function preprocess(m: Matrix, manifest: ModelManifest, file: string): Matrix {
  if (manifest.inputKind !== 'descriptors') throw new UserError(`${file}: this model embeds ${manifest.inputKind}, not descriptor files`);
  if (m.cols !== manifest.inputDim) {
    throw new UserError(`${file} has ${m.cols} dimensions but the model expects ${manifest.inputDim}; give descriptors from the extractor it was trained on`);
  }
  if (manifest.preprocess.normalize !== 'l2') return m;
  return l2NormalizeNamed(m, file, 'remove it');
}

/** Embeds descriptors with a loaded model (preprocessing and L2 output as its manifest says). */
export function embedDescriptors(model: tf.LayersModel, manifest: ModelManifest, m: Matrix, file = 'descriptors'): Matrix {
  return embedRows(model, preprocess(m, manifest, file));
}

export interface EmbedFilesOptions {
  readonly model: string;
  readonly db?: string;
  readonly queries?: string;
  /** Images (a folder or list file) for an image model: written as images.npy + images.json. */
  readonly images?: string;
  readonly out: string;
  readonly backend?: BackendChoice;
  readonly onBackend?: (info: BackendInfo) => void;
}

/** Embeds images with an image model (decoded and resized as its manifest says). */
async function embedImageFiles(o: EmbedFilesOptions): Promise<EmbedSummary> {
  const started = performance.now();
  const info = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(info);
  const { dir, model, manifest } = await loadModelFolder(o.model);
  try {
    const image = manifest.preprocess.image;
    if (manifest.inputKind !== 'images' || !image) throw new UserError(`${dir}: this model embeds descriptors; give --db/--queries .npy files`);
    const paths = listImages(o.images!);
    const pixels = await loadImageMatrix(paths, image.size);
    const e = embedRows(model, pixels, 16);
    const output = join(o.out, 'images.npy');
    writeNpy(output, { dtype: 'float32', shape: [e.rows, e.cols], data: e.data });
    const seconds = (performance.now() - started) / 1000;
    const summary = { model: dir, embeddingDim: manifest.embeddingDim, written: [{ input: o.images!, output, rows: e.rows }], seconds };
    writeFileAtomic(join(o.out, 'embed.json'), JSON.stringify({ ...summary, images: paths, backend: info.backend, provenance: manifest.provenance }, null, 2) + '\n');
    return summary;
  } finally {
    model.dispose();
  }
}

export interface EmbedSummary {
  readonly model: string;
  readonly embeddingDim: number;
  readonly written: readonly { readonly input: string; readonly output: string; readonly rows: number }[];
  readonly seconds: number;
}

export async function embedFiles(o: EmbedFilesOptions): Promise<EmbedSummary> {
  if (o.images) return embedImageFiles(o);
  if (!o.db && !o.queries) throw new UserError('give --db and/or --queries descriptors (or --images) to embed');
  const started = performance.now();
  const inputs = ([['db', o.db], ['queries', o.queries]] as const).filter((e): e is readonly ['db' | 'queries', string] => e[1] !== undefined);
  const matrices = inputs.map(([, file]) => readMatrix(file));
  const info = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(info);
  const { dir, model, manifest } = await loadModelFolder(o.model);
  try {
    const embedded = inputs.map(([, file], i) => embedDescriptors(model, manifest, matrices[i]!, file));
    const written = inputs.map(([name, file], i) => {
      const e = embedded[i]!;
      const output = join(o.out, `${name}.npy`);
      writeNpy(output, { dtype: 'float32', shape: [e.rows, e.cols], data: e.data });
      return { input: file, output, rows: e.rows };
    });
    const seconds = (performance.now() - started) / 1000;
    const summary = { model: dir, embeddingDim: manifest.embeddingDim, written, seconds };
    writeFileAtomic(join(o.out, 'embed.json'), JSON.stringify({ ...summary, backend: info.backend, provenance: manifest.provenance }, null, 2) + '\n');
    return summary;
  } finally {
    model.dispose();
  }
}

/** Copies a model (checked by loading it) into a standalone tfjs model folder. */
export async function exportModel(o: { model: string; out: string; backend?: BackendChoice }): Promise<{ from: string; out: string; manifest: ModelManifest }> {
  await initBackend(o.backend ?? 'auto');
  const { dir, model, manifest } = await loadModelFolder(o.model);
  try {
    await saveModelFolder(model, o.out, { ...manifest, provenance: { ...manifest.provenance, exportedFrom: dir, exportedAt: new Date().toISOString() } });
  } finally {
    model.dispose();
  }
  return { from: dir, out: o.out, manifest };
}

export interface FeatureFilesOptions {
  readonly images: string;
  readonly backbone: string;
  readonly cut?: string;
  readonly size: number;
  readonly scale?: 'unit' | 'symmetric';
  readonly weights?: string;
  readonly out: string;
  readonly skipBad?: boolean;
  /** Revisited ground truth whose query boxes (bbx) crop the images, in order (query images). */
  readonly crops?: string;
  readonly batch?: number;
  readonly backend?: BackendChoice;
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onSkip?: (path: string, message: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Base descriptors from a network before any training (`ddistill features`): GeM-pooled,
 * L2-normalised, one row per readable image, plus `<out>.json` listing the images (and the ones
 * skipped) in row order.
 */
export async function featureFiles(o: FeatureFilesOptions): Promise<{ rows: number; dim: number; skipped: string[]; seconds: number }> {
  const started = performance.now();
  const paths = listImages(o.images);
  let crops: (readonly number[] | null)[] | undefined;
  if (o.crops) {
    const gt = loadRevisitedGroundTruth(o.crops);
    if (gt.gnd.length !== paths.length) throw new UserError(`${o.crops} has ${gt.gnd.length} query boxes but ${o.images} holds ${paths.length} images; give the query images, in ground-truth order`);
    crops = gt.gnd.map((g) => g.bbx);
  }
  const info = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(info);
  const model = await buildImageModel({
    backbone: o.backbone, cut: o.cut, size: o.size, channels: 3, whiten: null, weights: o.weights, seed: 0,
    scale: o.scale ?? (isBuiltInBackbone(o.backbone) ? 'unit' : 'symmetric'),
  });
  const rows: Float32Array[] = [];
  const kept: string[] = [];
  const skipped: string[] = [];
  try {
    for await (const b of imageBatches(paths, o.batch ?? 8, {
      size: o.size, crops, skipBad: o.skipBad, onSkip: (p, m) => {
        skipped.push(p);
        o.onSkip?.(p, m);
      },
    })) {
      if (b.images.length === 0) continue;
      const cols = b.images[0]!.data.length;
      const m = { rows: b.images.length, cols, data: new Float32Array(b.images.length * cols) };
      b.images.forEach((img, i) => m.data.set(img.data, i * cols));
      rows.push(embedRows(model, m, o.batch ?? 8).data);
      b.indices.forEach((i) => kept.push(paths[i]!));
      o.onProgress?.(kept.length + skipped.length, paths.length);
    }
  } finally {
    model.dispose();
  }
  if (kept.length === 0) throw new UserError(`${o.images}: no image could be read`);
  const all = new Float32Array(rows.reduce((s, r) => s + r.length, 0));
  let offset = 0;
  for (const r of rows) {
    all.set(r, offset);
    offset += r.length;
  }
  const width = all.length / kept.length;
  writeNpy(o.out, { dtype: 'float32', shape: [kept.length, width], data: all });
  const seconds = (performance.now() - started) / 1000;
  writeFileAtomic(`${o.out.replace(/\.npy$/, '')}.json`, JSON.stringify({ images: kept, skipped, backbone: o.backbone, cut: o.cut ?? null, size: o.size, dim: width, seconds }, null, 2) + '\n');
  return { rows: kept.length, dim: width, skipped, seconds };
}
