/**
 * Model folders in the standard tfjs layers format — `model.json` + `weights.bin`, which
 * `tf.loadLayersModel` reads in any tfjs runtime (Node with a file handler or tfjs-node's
 * `file://`, browsers over HTTP) — plus `manifest.json`: what the model expects as input, how
 * to pre- and post-process, the embedding dimension, and where it came from.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
// Registers the custom GeM and L2Normalize layers, so that image models load.
import './resnet.js';
import './head.js';
import { tf } from '../backend/tfjs.js';

export const MODEL_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
export const MANIFEST_FILE = 'manifest.json';

export interface ModelManifest {
  readonly format: 'diffusion-distill-model';
  readonly version: 1;
  /** 'descriptors': rows of a descriptor matrix; 'images': decoded images. */
  readonly inputKind: 'descriptors' | 'images';
  /** Descriptor dimension; null for image models (see preprocess.image). */
  readonly inputDim: number | null;
  readonly embeddingDim: number;
  /** Applied to each input row before the model: 'l2' (unit length) or 'none'. */
  readonly preprocess: {
    readonly normalize: 'l2' | 'none';
    /**
     * Images: decode, convert to RGB, resize ('square': to size × size; 'longer': longer side to
     * size, aspect ratio kept), values in [0, 1], as [1, height, width, channels] (or stacked).
     */
    readonly image?: { readonly size: number; readonly channels: number; readonly resize: 'square' | 'longer'; readonly range: readonly [number, number] };
  };
  /** Applied to each output row: always 'l2'; search embeddings by Euclidean distance. */
  readonly postprocess: { readonly normalize: 'l2' };
  readonly head: Record<string, unknown>;
  /** Data, ranking, triplets, optimiser, epochs, backend, versions, final metrics. */
  readonly provenance: Record<string, unknown>;
}

/** Writes the model's tfjs artifacts into the folder `dir` (created; files replaced atomically). */
export async function saveModelFolder(model: tf.LayersModel, dir: string, manifest: ModelManifest): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData;
      const bytes = weightData === undefined ? new Uint8Array(0) : new Uint8Array(tf.io.CompositeArrayBuffer.join(weightData));
      const modelJson = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
      };
      // Weights first, model.json second, manifest last: its presence says the folder is whole.
      rmSync(join(dir, MANIFEST_FILE), { force: true });
      writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
      writeFileAtomic(join(dir, MODEL_FILE), JSON.stringify(modelJson));
      writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.length } };
    }),
  );
}

/**
 * A tfjs load handler for a model.json on disk (the same files tfjs-node's `file://` reads):
 * `tf.loadLayersModel(fileHandler(path))`.
 */
export function fileHandler(modelJsonPath: string): tf.io.IOHandler {
  return {
    load: async () => {
      const json = JSON.parse(readFileSync(modelJsonPath, 'utf8')) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const b = readFileSync(join(dirname(modelJsonPath), p));
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}

/** Finds the model folder: `path` itself, or `path/model` (a training run folder). */
export function resolveModelFolder(path: string): string {
  for (const dir of [path, join(path, 'model')]) {
    if (existsSync(join(dir, MODEL_FILE))) {
      if (!existsSync(join(dir, MANIFEST_FILE))) {
        throw new UserError(`${dir}: ${MANIFEST_FILE} is missing (the model was not saved completely); re-run ddistill train or export`);
      }
      return dir;
    }
  }
  throw new UserError(`${path}: no ${MODEL_FILE} here or in ${join(path, 'model')}; give a model folder or a ddistill train output folder`);
}

/** A model folder in memory: where it came from, the network, its manifest. */
export interface LoadedModel {
  readonly dir: string;
  readonly model: tf.LayersModel;
  readonly manifest: ModelManifest;
}

/** The manifest of a model folder (as `resolveModelFolder` returns it), checked to be one. */
export function readModelManifest(dir: string): ModelManifest {
  const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as ModelManifest;
  if (manifest.format !== 'diffusion-distill-model') throw new UserError(`${join(dir, MANIFEST_FILE)}: not a diffusion-distill model manifest`);
  return manifest;
}

/** Loads a model folder written by `saveModelFolder` (or a training run folder). */
export async function loadModelFolder(path: string): Promise<LoadedModel> {
  const dir = resolveModelFolder(path);
  const manifest = readModelManifest(dir);
  const model = await tf.loadLayersModel(fileHandler(join(dir, MODEL_FILE)));
  return { dir, model, manifest };
}
