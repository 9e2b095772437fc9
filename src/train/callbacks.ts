/**
 * What happens at an epoch's end, beside the loop (src/train/loop.ts), as tfjs-layers' callbacks
 * do: the runaway watch, keeping the best epoch's weights, and patience (early stopping).
 */
import { tf } from '../backend/tfjs.js';
import type { EpochRecord } from './records.js';

/**
 * The watch on a run that goes wrong: an epoch whose mean loss exceeds the lowest epoch loss so
 * far by `lossRise` (relative), whose active-hinge share exceeds the lowest so far by
 * `activeRise` while its loss rises by half of `lossRise` (re-mined triplets make either figure
 * wander a little alone), or whose mean gradient norm exceeds the first epoch's by `gradRise` (a
 * factor), stops training and rolls back to the best epoch. A non-finite loss or gradient does too.
 */
export const WATCH = Object.freeze({ lossRise: 0.25, activeRise: 0.05, gradRise: 10 });

/** Why an epoch ends the run (the watch), or null when it passes. */
export function watchVerdict(history: readonly EpochRecord[]): string | null {
  const last = history.at(-1)!;
  const before = history.slice(0, -1);
  if (!Number.isFinite(last.loss) || (last.gradNorm !== undefined && !Number.isFinite(last.gradNorm))) return `diverged in epoch ${last.epoch + 1} (loss ${last.loss})`;
  if (before.length === 0) return null;
  const minLoss = Math.min(...before.map((h) => h.loss));
  const minActive = Math.min(...before.map((h) => h.active));
  const firstGrad = before[0]!.gradNorm;
  if (last.loss > minLoss * (1 + WATCH.lossRise)) return `runaway: the loss rose to ${last.loss.toFixed(4)} from ${minLoss.toFixed(4)} in epoch ${last.epoch + 1}`;
  if (last.active > minActive + WATCH.activeRise && last.loss > minLoss * (1 + WATCH.lossRise / 2)) return `runaway: active hinges rose to ${(100 * last.active).toFixed(1)} % from ${(100 * minActive).toFixed(1)} % in epoch ${last.epoch + 1}`;
  if (firstGrad !== undefined && last.gradNorm !== undefined && last.gradNorm > firstGrad * WATCH.gradRise) return `runaway: the gradient norm rose to ${last.gradNorm.toPrecision(3)} from ${firstGrad.toPrecision(3)} in epoch ${last.epoch + 1}`;
  return null;
}

/** "epoch 3", or "the starting weights" for epoch −1. */
export const bestLabel = (epoch: number) => (epoch < 0 ? 'the starting weights' : `epoch ${epoch + 1}`);

/** The best epoch so far by a label-free score (−1: the weights training started from) and its weights. */
export class KeepBest {
  private constructor(
    public best: { epoch: number; agreement: number | null },
    private weights: tf.Tensor[],
  ) {}

  /** Starts from a checkpoint's best epoch and weights, or from the model as it is. */
  static start(model: tf.LayersModel, resumed?: { best?: { epoch: number; agreement: number | null }; weights?: tf.Tensor[] }): KeepBest {
    return new KeepBest(resumed?.best ?? { epoch: -1, agreement: null }, resumed?.weights ?? snapshot(model));
  }

  /** The score of the starting weights (selection, before the first epoch). */
  startingScore(agreement: number): void {
    this.best = { epoch: -1, agreement };
  }

  /** Keeps `epoch`'s weights when it scores better (or when there is no score); returns whether it did. */
  offer(model: tf.LayersModel, epoch: number, agreement: number | undefined): boolean {
    if (agreement !== undefined && !(agreement > (this.best.agreement ?? -Infinity))) return false;
    this.best = { epoch, agreement: agreement ?? null };
    tf.dispose(this.weights);
    this.weights = snapshot(model);
    return true;
  }

  /** The kept weights (for the checkpoint). */
  get kept(): readonly tf.Tensor[] {
    return this.weights;
  }

  /** The model ends with the kept weights. */
  restore(model: tf.LayersModel): void {
    model.setWeights(this.weights);
  }

  dispose(): void {
    tf.dispose(this.weights);
  }
}

/** Why training stops for want of a better score (early stopping), or null while patience lasts. */
export function patienceVerdict(epoch: number, best: { readonly epoch: number }, patience: number): string | null {
  if (epoch - best.epoch < patience) return null;
  return `early stop: no better agreement with the teacher for ${patience} epochs; kept ${bestLabel(best.epoch)}`;
}

const snapshot = (model: tf.LayersModel): tf.Tensor[] => model.getWeights().map((w) => w.clone());
