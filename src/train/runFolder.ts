/**
 * A training run folder (both modes): `checkpoint/` after every epoch (for --resume),
 * `train.json` (options, per-epoch history, timings) and, at the end, `model/` (tfjs model +
 * manifest). The loop runs here with its checkpoint and records.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type BackendInfo } from '../backend/tfjs.js';
import { writeFileAtomic } from '../io/atomic.js';
import { saveModelFolder, type ModelManifest } from '../model/io.js';
import type { Matrix } from '../matrix.js';
import type { SelfRanking } from '../triplets/run.js';
import { packageVersion } from '../version.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { parallelTraining } from './dataParallel.js';
import { stepCounts, train, type Resume, type TrainHooks, type TrainingTeacher, type TrainInputs } from './loop.js';
import type { EpochRecord, StepProgress, TrainState } from './records.js';
import type { TrainOptions } from './options.js';

/** What a training run reports while it works (both modes), and on how many threads it computes. */
export interface TrainCallbacks {
  /** Worker threads for data-parallel training (default: every core, for runs long enough to pay; src/train/dataParallel.ts). */
  readonly workers?: number;
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onStage?: (message: string) => void;
  readonly onStep?: (p: StepProgress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
}

/** A training run folder: where it writes, what it is (checked on resume), what train.json says. */
export interface TrainRun {
  readonly out: string;
  readonly checkpointDir: string;
  readonly fingerprint: string;
  /** train.json's fields besides status, history and seconds. */
  readonly record: Record<string, unknown>;
}

function writeTrainJson(run: TrainRun, status: 'training' | 'done', history: readonly EpochRecord[], seconds?: number): void {
  const json = { status, ...run.record, history, ...(seconds === undefined ? {} : { seconds: Number(seconds.toFixed(3)) }) };
  writeFileAtomic(join(run.out, 'train.json'), JSON.stringify(json, null, 2) + '\n');
}

/**
 * The training loop in a run folder (both modes): continues from its checkpoint with `resume`,
 * and after every epoch replaces the checkpoint and train.json.
 */
export async function trainInRunFolder(
  model: tf.LayersModel,
  inputs: Matrix | TrainInputs,
  ranking: SelfRanking,
  options: TrainOptions,
  run: TrainRun & {
    readonly resume?: boolean;
    readonly validate?: TrainHooks['validate'];
    readonly select?: TrainHooks['select'];
    readonly pretrainedLr?: number;
    /** The ranking with the held-out items taken out (selection), instead of all of `ranking`. */
    readonly teacher?: TrainingTeacher;
    readonly callbacks: TrainCallbacks;
  },
): Promise<{ state: TrainState; resumedFrom: number | null }> {
  let resumeFrom: Resume | undefined;
  if (run.resume) {
    resumeFrom = loadCheckpoint(run.checkpointDir, model, run.fingerprint);
    run.callbacks.onStage?.(`resuming after epoch ${resumeFrom.state.epochsDone} (step ${resumeFrom.state.stepsDone})`);
  }
  mkdirSync(run.out, { recursive: true });
  const rows = run.teacher?.anchors?.length ?? ranking.rows;
  const triplets = stepCounts(options, rows).total * options.batch;
  const parallel = parallelTraining(model, { workers: run.callbacks.workers, triplets, options, onStage: run.callbacks.onStage });
  const state = await train(model, inputs, run.teacher ?? ranking.neighbours, options, {
    ...(parallel ? { parallel } : {}),
    onStep: run.callbacks.onStep,
    validate: run.validate,
    select: run.select,
    pretrainedLr: run.pretrainedLr,
    onEpoch: async (s, momentum, best) => {
      run.callbacks.onEpoch?.(s.history.at(-1)!);
      await saveCheckpoint(run.checkpointDir, model, momentum, s, run.fingerprint, best);
      writeTrainJson(run, 'training', s.history);
    },
  }, resumeFrom).finally(() => parallel?.close());
  if (resumeFrom) tf.dispose(resumeFrom.momentum);
  return { state, resumedFrom: resumeFrom?.state.epochsDone ?? null };
}

/** Writes the trained model folder (run/model) and the final train.json; returns the model folder. */
export async function finishRun(run: TrainRun, model: tf.LayersModel, manifest: ModelManifest, state: TrainState, seconds: number): Promise<string> {
  const modelDir = join(run.out, 'model');
  await saveModelFolder(model, modelDir, manifest);
  writeTrainJson(run, 'done', state.history, seconds);
  return modelDir;
}

/** The provenance every model manifest records about its training (both modes). */
export function trainingProvenance(options: TrainOptions, state: TrainState, backend: BackendInfo, seconds: number): Record<string, unknown> {
  return {
    optimiser: { ...options, triplets: undefined },
    steps: state.stepsDone,
    finalLoss: state.history.at(-1)?.loss ?? null,
    backend: backend.backend,
    tfjs: backend.tfjsVersion,
    package: `diffusion-distill ${packageVersion()}`,
    trainedAt: new Date().toISOString(),
    seconds: Number(seconds.toFixed(3)),
  };
}

/** The diffusion that made a ranking, for records: method, k and parameters. */
export const rankingDiffusion = (ranking: SelfRanking) =>
  ranking.diffusion ? { method: ranking.diffusion.method, k: ranking.diffusion.k, parameters: ranking.diffusion.parameters } : null;
