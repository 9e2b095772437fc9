/**
 * `embed` and `export` on files: a trained model folder (or a train run folder) in; embeddings
 * (.npy) or a standalone model folder out.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { ensureOutputFolder } from '../io/paths.js';
import { l2NormalizeNamed, readMatrix, writeMatrix, type Matrix } from '../matrix.js';
import { loadRevisitedGroundTruth } from '../io/groundTruth.js';
import { listImages, type ResizeMode } from '../io/images.js';
import { embedRows } from './head.js';
import { FeatureCache } from './featureCache.js';
import { photoPass, type PhotoPassOptions, type PhotoPassResult } from './photoPass.js';
import { photoRunner, type PhotoEngineChoice } from './photoRunner.js';
import { buildImageModel, defaultImageSize, defaultScale } from './image.js';
import { loadModelFolder, saveModelFolder, type LoadedModel, type ModelManifest } from './io.js';
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
  /** Revisited ground truth whose query boxes (bbx) crop the images, in order (query images). */
  readonly crops?: string;
  readonly skipBad?: boolean;
  readonly out: string;
  readonly backend?: BackendChoice;
  /** Who runs an image network: onnxruntime when it can (auto), or tfjs (see photoRunner). */
  readonly engine?: PhotoEngineChoice;
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onSkip?: (path: string, message: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

/** The query boxes of `gnd` for the images of `source`, checked to be as many. */
export function queryCrops(gnd: string | undefined, paths: readonly string[], source: string): (readonly number[] | null)[] | undefined {
  if (!gnd) return undefined;
  const gt = loadRevisitedGroundTruth(gnd);
  if (gt.gnd.length !== paths.length) throw new UserError(`${gnd} has ${gt.gnd.length} query boxes but ${source} holds ${paths.length} images; give the query images, in ground-truth order`);
  return gt.gnd.map((g) => g.bbx);
}

/**
 * Runs an image network over image files (photoPass: decoded ahead, batched by shape, on
 * onnxruntime where it runs the network, else tfjs): L2-normalised rows for the readable images,
 * the paths kept and skipped, and the engine that ran.
 */
async function runOverImages(
  model: tf.LayersModel,
  paths: readonly string[],
  o: PhotoPassOptions & { engine?: PhotoEngineChoice; onEngine?: (e: { engine: string; why?: string }) => void },
): Promise<PhotoPassResult & { engine: string }> {
  const runner = await photoRunner(model, o.engine ?? 'auto');
  o.onEngine?.({ engine: runner.engine, why: runner.why });
  try {
    return { ...(await photoPass(runner, paths, o)), engine: runner.engine };
  } finally {
    await runner.dispose();
  }
}

/**
 * Embeds image files with a loaded image model folder, decoded and resized as its manifest says:
 * L2-normalised rows of the readable images, and the paths kept and skipped.
 */
export async function embedImageList(
  loaded: LoadedModel,
  paths: readonly string[],
  o: Omit<PhotoPassOptions, 'size' | 'mode'> & { engine?: PhotoEngineChoice } = {},
): Promise<PhotoPassResult> {
  const image = loaded.manifest.preprocess.image;
  if (loaded.manifest.inputKind !== 'images' || !image) throw new UserError(`${loaded.dir}: this model embeds descriptors; give --db/--queries .npy files`);
  return runOverImages(loaded.model, paths, { size: image.size, mode: image.resize, ...o });
}

/** Embeds images with an image model (decoded and resized as its manifest says). */
async function embedImageFiles(o: EmbedFilesOptions): Promise<EmbedSummary> {
  const started = performance.now();
  const paths = listImages(o.images!);
  const crops = queryCrops(o.crops, paths, o.images!);
  const info = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(info);
  const loaded = await loadModelFolder(o.model);
  const { dir, model, manifest } = loaded;
  try {
    const r = await embedImageList(loaded, paths, { crops, skipBad: o.skipBad, engine: o.engine, onSkip: o.onSkip, onProgress: o.onProgress });
    if (r.kept.length === 0) throw new UserError(`${o.images}: no image could be read`);
    const output = join(o.out, 'images.npy');
    writeMatrix(output, r.matrix);
    const seconds = (performance.now() - started) / 1000;
    const summary = { model: dir, embeddingDim: manifest.embeddingDim, written: [{ input: o.images!, output, rows: r.matrix.rows }], seconds };
    writeFileAtomic(join(o.out, 'embed.json'), JSON.stringify({ ...summary, images: r.kept, skipped: r.skipped, backend: info.backend, provenance: manifest.provenance }, null, 2) + '\n');
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
  ensureOutputFolder(o.out);
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
      writeMatrix(output, e);
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
  ensureOutputFolder(o.out);
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
  /** Longer side (or square side) of the resized images (default: defaultImageSize of the backend). */
  readonly size?: number;
  readonly resize?: ResizeMode;
  readonly scale?: 'unit' | 'symmetric';
  readonly weights?: string;
  readonly partialWeights?: boolean;
  readonly out: string;
  readonly skipBad?: boolean;
  /** Revisited ground truth whose query boxes (bbx) crop the images, in order (query images). */
  readonly crops?: string;
  readonly batch?: number;
  readonly backend?: BackendChoice;
  /** Who runs the network: onnxruntime (native, every core) when it can, else tfjs (see photoRunner). */
  readonly engine?: PhotoEngineChoice;
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onEngine?: (e: { engine: string; why?: string }) => void;
  readonly onSkip?: (path: string, message: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

/** The .json beside a features .npy, listing its images in row order (written last). */
export const featureListFile = (npy: string): string => `${npy.replace(/\.npy$/, '')}.json`;

/** The folder beside a features .npy where its rows are kept as they are computed (FeatureCache). */
export const featurePartsFolder = (npy: string): string => `${npy.replace(/\.npy$/, '')}.parts`;

/**
 * Base descriptors from a network before any training (`ddistill features`): GeM-pooled,
 * L2-normalised, one row per readable image, plus `<out>.json` listing the images (and the ones
 * skipped) in row order. Rows are kept in `<out>.parts/` as they are computed, so a rerun after a
 * crash computes only the photos missing; the folder goes once the .npy is written.
 */
export async function featureFiles(o: FeatureFilesOptions): Promise<{ rows: number; dim: number; skipped: string[]; cached: number; engine: string; seconds: number }> {
  const started = performance.now();
  ensureOutputFolder(dirname(o.out));
  if (existsSync(o.out) && statSync(o.out).isDirectory()) throw new UserError(`--out ${o.out} is a folder; give the .npy file to write`);
  const paths = listImages(o.images);
  const crops = queryCrops(o.crops, paths, o.images);
  const info = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(info);
  const resize = o.resize ?? 'longer';
  const size = o.size ?? defaultImageSize(info.backend);
  const scale = o.scale ?? defaultScale(o.backbone);
  const model = await buildImageModel({
    backbone: o.backbone, cut: o.cut, size, resize, channels: 3, whiten: null, weights: o.weights, partialWeights: o.partialWeights, seed: 0,
    scale,
  });
  const settings = { backbone: o.backbone, cut: o.cut ?? null, size, resize, scale, weights: o.weights ?? null, crops: o.crops ?? null };
  const cache = new FeatureCache(featurePartsFolder(o.out), settings);
  let r: Awaited<ReturnType<typeof runOverImages>>;
  try {
    r = await runOverImages(model, paths, { size, mode: resize, crops, skipBad: o.skipBad, batch: o.batch, cache, engine: o.engine, onEngine: o.onEngine, onSkip: o.onSkip, onProgress: o.onProgress });
  } finally {
    model.dispose();
  }
  if (r.kept.length === 0) throw new UserError(`${o.images}: no image could be read`);
  writeMatrix(o.out, r.matrix);
  const seconds = (performance.now() - started) / 1000;
  writeFileAtomic(featureListFile(o.out), JSON.stringify({ images: r.kept, skipped: r.skipped, backbone: o.backbone, cut: o.cut ?? null, size, resize, dim: r.matrix.cols, engine: r.engine, cached: r.cached, seconds }, null, 2) + '\n');
  cache.remove();
  return { rows: r.matrix.rows, dim: r.matrix.cols, skipped: r.skipped, cached: r.cached, engine: r.engine, seconds };
}
