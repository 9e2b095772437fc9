/**
 * Training checkpoints: the model's weights, the momentum buffers and the loop state, written
 * after every epoch into `checkpoint/` (replaced atomically), so `--resume` continues exactly.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { tf } from '../backend/tfjs.js';
import { replaceFolder } from '../io/atomic.js';
import type { TrainState } from './records.js';

const STATE_FILE = 'checkpoint.json';
const TENSORS_FILE = 'tensors.bin';

interface CheckpointJson {
  readonly state: TrainState;
  /** Identifies the run the checkpoint belongs to (its options), checked on resume. */
  readonly fingerprint: string;
  readonly weights: readonly (readonly number[])[];
  readonly momentum: readonly (readonly number[])[];
  /** The best epoch's weights (what training keeps), after the momentum buffers. */
  readonly best?: readonly (readonly number[])[];
}

export async function saveCheckpoint(dir: string, model: tf.LayersModel, momentum: readonly tf.Variable[], state: TrainState, fingerprint: string, best: readonly tf.Tensor[] = []): Promise<void> {
  const weights = model.getWeights();
  const tensors = [...weights, ...momentum, ...best];
  const parts = await Promise.all(tensors.map(async (t) => new Uint8Array(((await t.data()) as Float32Array).slice().buffer)));
  const json: CheckpointJson = { state, fingerprint, weights: weights.map((w) => w.shape), momentum: momentum.map((m) => m.shape), best: best.map((b) => b.shape) };
  await replaceFolder(dir, (tmp) => {
    writeFileSync(join(tmp, TENSORS_FILE), Buffer.concat(parts));
    writeFileSync(join(tmp, STATE_FILE), JSON.stringify(json, null, 2) + '\n');
  });
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, STATE_FILE));
}

/**
 * The checkpoint folder of the run folder `out`, once `resume` agrees with what is there: a
 * resume needs a checkpoint, and a fresh start must not overwrite one.
 */
export function checkpointFolder(out: string, resume: boolean | undefined): string {
  const dir = join(out, 'checkpoint');
  if (resume && !hasCheckpoint(dir)) throw new UserError(`${dir}: no checkpoint to resume from; run without --resume`);
  if (!resume && hasCheckpoint(dir)) throw new UserError(`${out} already holds a training checkpoint; add --resume to continue it, or choose another --out`);
  return dir;
}

/** Loads weights into `model` and returns the state, new momentum variables and the best weights kept. */
export function loadCheckpoint(dir: string, model: tf.LayersModel, fingerprint: string): { state: TrainState; momentum: tf.Variable[]; best?: tf.Tensor[] } {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) throw new UserError(`${dir}: no checkpoint to resume from; run without --resume`);
  const json = JSON.parse(readFileSync(path, 'utf8')) as CheckpointJson;
  if (json.fingerprint !== fingerprint) {
    throw new UserError(`${path}: the checkpoint was made with other data or options; resume with the same ones, or start afresh in another --out folder`);
  }
  const buf = readFileSync(join(dir, TENSORS_FILE));
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  let offset = 0;
  const take = (shape: readonly number[]) => {
    const size = shape.reduce((p, s) => p * s, 1);
    const t = tf.tensor(data.subarray(offset, offset + size), shape as number[]);
    offset += size;
    return t;
  };
  const current = model.getWeights();
  if (current.length !== json.weights.length || current.some((w, i) => w.shape.join() !== json.weights[i]!.join())) {
    throw new UserError(`${path}: the checkpoint's weights do not fit this model; resume with the same head options`);
  }
  const weights = json.weights.map(take);
  model.setWeights(weights);
  tf.dispose(weights);
  const momentum = json.momentum.map((shape) => {
    const t = take(shape);
    const v = tf.variable(t, false);
    t.dispose();
    return v;
  });
  const best = json.best && json.best.length > 0 ? json.best.map(take) : undefined;
  if (offset !== data.length) throw new UserError(`${join(dir, TENSORS_FILE)}: wrong size; the checkpoint is damaged, start afresh`);
  return { state: json.state, momentum, best };
}
