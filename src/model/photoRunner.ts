/**
 * Running an image network over decoded photos, by one of two engines with the same results
 * (docs/design.md, "Features"): onnxruntime-node, on every core, from the network written as ONNX
 * (onnxImage.ts); or tfjs, the fallback where onnxruntime-node is missing or a layer has no ONNX
 * counterpart. Photos of one shape run as one batch; rows come back L2-normalised.
 */
import { tf } from '../backend/tfjs.js';
import { loadOrt, sessionOptions } from '../backend/ort.js';
import { UserError } from '../errors.js';
import { toUnit, type ImageBytes } from '../io/images.js';
import { l2NormalizeRows } from '../matrix.js';
import { l2Normalize } from './head.js';
import { imageModelToOnnx } from './onnxImage.js';
import { predictItems } from './imageSet.js';

export type PhotoEngineChoice = 'auto' | 'onnxruntime' | 'tfjs';
export const PHOTO_ENGINES: readonly PhotoEngineChoice[] = ['auto', 'onnxruntime', 'tfjs'];

export interface PhotoRunner {
  readonly engine: 'onnxruntime' | 'tfjs';
  /** Why onnxruntime does not run this network (auto mode), for the log. */
  readonly why?: string;
  /** Row length. */
  readonly dim: number;
  /** L2-normalised rows of `photos`, which share one height and width, in order. */
  run(photos: readonly ImageBytes[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** The photos' bytes as one [n, h, w, 3] block. */
function stackBytes(photos: readonly ImageBytes[]): Uint8Array {
  const size = photos[0]!.data.length;
  const out = new Uint8Array(photos.length * size);
  photos.forEach((p, i) => out.set(p.data, i * size));
  return out;
}

/** The tfjs path: the LayersModel itself on the active backend. */
function tfjsRunner(model: tf.LayersModel, why?: string): PhotoRunner {
  const dim = model.outputs[0]!.shape[1] as number;
  return {
    engine: 'tfjs',
    why,
    dim,
    run: async (photos) => {
      const items = photos.map((p) => ({ ...toUnit(p), channels: 3 }));
      const out = new Float32Array(photos.length * dim);
      let row = 0;
      for (const y of predictItems(model, items)) {
        const rows = l2Normalize(y as tf.Tensor2D);
        out.set(rows.dataSync() as Float32Array, row * dim);
        row += y.shape[0]!;
        tf.dispose([y, rows]);
      }
      return out;
    },
    dispose: async () => undefined,
  };
}

/**
 * The runner for `model` (an image network whose output is one row per photo): onnxruntime when
 * it loads and every layer converts ('auto' falls back to tfjs and says why; 'onnxruntime'
 * fails instead), else tfjs.
 */
export async function photoRunner(model: tf.LayersModel, choice: PhotoEngineChoice = 'auto'): Promise<PhotoRunner> {
  if (choice === 'tfjs') return tfjsRunner(model);
  const ort = await loadOrt();
  const converted = ort ? imageModelToOnnx(model) : { unsupported: 'onnxruntime-node is not installed' };
  if ('unsupported' in converted) {
    if (choice === 'onnxruntime') throw new UserError(`cannot run this network on onnxruntime: ${converted.unsupported}; use --engine tfjs`);
    return tfjsRunner(model, converted.unsupported);
  }
  const session = await ort!.InferenceSession.create(converted.onnx, sessionOptions());
  const { dim } = converted;
  return {
    engine: 'onnxruntime',
    dim,
    run: async (photos) => {
      const { height, width } = photos[0]!;
      const out = await session.run({ bytes: new ort!.Tensor('uint8', stackBytes(photos), [photos.length, height, width, 3]) });
      // As the tfjs path: each row over its norm, a zero row left zero.
      return l2NormalizeRows({ rows: photos.length, cols: dim, data: out.rows!.data as Float32Array }, () => undefined).data;
    },
    dispose: () => session.release(),
  };
}
