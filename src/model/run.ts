/**
 * `embed` and `export` on files: a trained model folder (or a train run folder) in; embeddings
 * (.npy) or a standalone model folder out.
 */
import { join } from 'node:path';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeNpy } from '../io/npy.js';
import { l2NormalizeRows, readMatrix, type Matrix } from '../matrix.js';
import { embedRows } from './head.js';
import { loadModelFolder, saveModelFolder, type ModelManifest } from './io.js';
import type { tf } from '../backend/tfjs.js';

/** The manifest's preprocessing applied to descriptors read from `file`. */
export function preprocess(m: Matrix, manifest: ModelManifest, file: string): Matrix {
  if (manifest.inputKind !== 'descriptors') throw new UserError(`${file}: this model embeds ${manifest.inputKind}, not descriptor files`);
  if (m.cols !== manifest.inputDim) {
    throw new UserError(`${file} has ${m.cols} dimensions but the model expects ${manifest.inputDim}; give descriptors from the extractor it was trained on`);
  }
  if (manifest.preprocess.normalize !== 'l2') return m;
  return l2NormalizeRows(m, (row) => {
    throw new UserError(`${file}: row ${row} is a zero vector and cannot be L2-normalised; remove it`);
  });
}

/** Embeds descriptors with a loaded model (preprocessing and L2 output as its manifest says). */
export function embedDescriptors(model: tf.LayersModel, manifest: ModelManifest, m: Matrix, file = 'descriptors'): Matrix {
  return embedRows(model, preprocess(m, manifest, file));
}

export interface EmbedFilesOptions {
  readonly model: string;
  readonly db?: string;
  readonly queries?: string;
  readonly out: string;
  readonly backend?: BackendChoice;
  readonly onBackend?: (info: BackendInfo) => void;
}

export interface EmbedSummary {
  readonly model: string;
  readonly embeddingDim: number;
  readonly written: readonly { readonly input: string; readonly output: string; readonly rows: number }[];
  readonly seconds: number;
}

export async function embedFiles(o: EmbedFilesOptions): Promise<EmbedSummary> {
  if (!o.db && !o.queries) throw new UserError('give --db and/or --queries descriptors to embed');
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
