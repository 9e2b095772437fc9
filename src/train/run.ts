/**
 * The `train` stage on files: database descriptors (.npy) and their diffusion self-ranking in;
 * a run folder out, holding `model/` (tfjs model + manifest), `checkpoint/` (after every epoch,
 * for --resume) and `train.json` (options, per-epoch history, timings).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EngineChoice } from '../backend/dense.js';
import { initBackend, tf, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { ensureOutputFolder } from '../io/paths.js';
import { evaluateFiles, type EvalReport } from '../eval/run.js';
import { l2NormalizeNamed, readMatrix, type Matrix } from '../matrix.js';
import { buildHead, DESCRIPTOR_HEAD, embedRows, type HeadKind, type HeadInit, type HeadSpec } from '../model/head.js';
import { copyWeightsByName } from '../model/compose.js';
import { loadModelFolder, saveModelFolder, type ModelManifest } from '../model/io.js';
import { learnPca, pcaProjection, type PcaMethod } from '../model/pca.js';
import { readSelfRanking, type SelfRanking } from '../triplets/run.js';
import { packageVersion } from '../version.js';
import { checkpointFolder, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { parallelTraining } from './dataParallel.js';
import { selectionRecord, selector, trainingPlan, verdict, type SelectionOptions } from './selection.js';
import { stepCounts, train, TRAIN_DEFAULTS, type EpochRecord, type StepProgress, type Resume, type TrainHooks, type TrainingTeacher, type TrainInputs, type TrainOptions, type TrainState } from './loop.js';

export interface HeadOptions {
  readonly kind: HeadKind;
  readonly dim: number;
  readonly hidden: number;
  readonly init: HeadInit;
  readonly pcaMethod: PcaMethod;
}

export const HEAD_DEFAULTS: HeadOptions = Object.freeze({ kind: 'residual', dim: 128, hidden: 1024, init: 'pca', pcaMethod: 'auto' });

/** Ground truth for a validation figure after every epoch (as for `ddistill eval`). */
export interface ValidationOptions {
  readonly queries?: string | Matrix;
  readonly gnd?: string;
  readonly labels?: string;
  readonly queryLabels?: string;
  readonly groups?: string;
  readonly queryGroups?: string;
}

/** What a training run reports while it works (both modes), and on how many threads it computes. */
export interface TrainCallbacks {
  /** Worker threads for data-parallel training (default: every core, for runs long enough to pay; src/train/dataParallel.ts). */
  readonly workers?: number;
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onStage?: (message: string) => void;
  readonly onStep?: (p: StepProgress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
}

export interface TrainFilesOptions extends TrainCallbacks {
  readonly db: string;
  readonly ranks: string;
  readonly out: string;
  readonly head?: Partial<HeadOptions>;
  readonly train?: Partial<Omit<TrainOptions, 'triplets'>> & { triplets?: Partial<TrainOptions['triplets']> };
  /** L2-normalise the input descriptors (default true). */
  readonly normalize?: boolean;
  readonly backend?: BackendChoice;
  readonly engine?: EngineChoice;
  readonly resume?: boolean;
  /** Start from the weights of this model folder (same head options) instead of PCA/random. */
  readonly initFrom?: string;
  readonly validation?: ValidationOptions;
  /** Hold-out and early stopping (default: none in `train`; bootstrap holds out 10 %). */
  readonly selection?: SelectionOptions;
}

export interface TrainSummary {
  readonly out: string;
  readonly model: string;
  readonly backend: BackendInfo;
  readonly head: HeadOptions;
  readonly options: TrainOptions;
  readonly tripletRange: number;
  readonly history: readonly EpochRecord[];
  readonly steps: number;
  readonly seconds: number;
  readonly resumedFrom: number | null;
  /** How k was chosen and which epoch was kept (selectionRecord). */
  readonly selection: Record<string, unknown>;
}

/** The figures of an evaluation report, flat (for per-epoch records). */
export function reportFigures(r: EvalReport): Record<string, number> {
  if (r.protocol === 'revisited') return { ...r.mAP };
  if (r.protocol === 'class') return { mAP: r.mAP };
  return { NS: r.nsScore };
}

/** The fields of `o` that are set (undefined ones leave the defaults alone). */
const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** Merges partial head options over the defaults (`base`: HEAD_DEFAULTS, or a recipe's). */
export function headOptions(partial: Partial<HeadOptions> = {}, base: Partial<HeadOptions> = {}): HeadOptions {
  return { ...HEAD_DEFAULTS, ...base, ...defined(partial) } as HeadOptions;
}

/**
 * Merges partial training options over the defaults (`base`: TRAIN_DEFAULTS, or a recipe's),
 * field by field. Epochs given without steps count epochs, whatever steps the base sets.
 */
export function trainOptions(partial: TrainFilesOptions['train'] = {}, base: TrainFilesOptions['train'] = {}): TrainOptions {
  const { triplets, ...rest } = partial;
  const { triplets: baseTriplets, ...baseRest } = base;
  const epochsOnly = rest.epochs !== undefined && rest.steps === undefined ? { steps: null } : {};
  return {
    ...TRAIN_DEFAULTS, ...defined(baseRest), ...epochsOnly, ...defined(rest),
    triplets: { ...TRAIN_DEFAULTS.triplets, ...defined(baseTriplets ?? {}), ...defined(triplets ?? {}) },
  } as TrainOptions;
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

/** A PCA-initialised head cannot have more outputs than inputs. */
export function checkHeadFits(head: HeadOptions, inputDim: number): void {
  if (head.kind !== 'mlp' && head.init !== 'random' && head.dim > inputDim) {
    throw new UserError(`a PCA-initialised head cannot output ${head.dim} dimensions from ${inputDim}-d descriptors; use --dim ≤ ${inputDim} or --init random`);
  }
}

const headSpec = (head: HeadOptions, inputDim: number, seed: number): HeadSpec => ({ kind: head.kind, inputDim, outputDim: head.dim, hidden: head.hidden, init: head.init, seed });

/**
 * The head to train on the descriptors `x`: PCA-initialised from them (residual and linear heads
 * with init pca/whiten), or from the weights of `initFrom`; when resuming, the checkpoint will
 * supply the weights. Returns the PCA's record (null when none was learnt).
 */
export async function initialHead(
  x: Matrix,
  head: HeadOptions,
  seed: number,
  o: { readonly resume?: boolean; readonly initFrom?: string; readonly engine?: EngineChoice; readonly onStage?: (message: string) => void },
): Promise<{ model: tf.LayersModel; pca: Record<string, unknown> | null }> {
  checkHeadFits(head, x.cols);
  const spec = headSpec(head, x.cols, seed);
  let pca: Record<string, unknown> | null = null;
  let projection;
  if (!o.resume && !o.initFrom && head.kind !== 'mlp' && head.init !== 'random') {
    o.onStage?.(`learning ${head.init === 'whiten' ? 'PCA-whitening' : 'PCA'} (${x.cols} → ${head.dim}) on ${x.rows} descriptors`);
    const t = performance.now();
    const learnt = await learnPca(x, head.dim, { method: head.pcaMethod, engine: o.engine, seed });
    projection = pcaProjection(learnt, head.init === 'whiten');
    const kept = learnt.eigenvalues.reduce((sum, v) => sum + v, 0);
    pca = { method: learnt.method, seconds: Number(((performance.now() - t) / 1000).toFixed(3)), varianceKept: Number((kept / learnt.totalVariance).toFixed(4)) };
  }
  // Resuming: the checkpoint holds the weights, so the head starts from any initialisation.
  const model = buildHead(o.resume || o.initFrom ? { ...spec, init: 'random' } : spec, projection);
  if (o.initFrom && !o.resume) await copyWeights(o.initFrom, model);
  return { model, pca };
}

/** Trains a descriptor-mode head; see the module comment for the run folder. */
export async function trainFiles(o: TrainFilesOptions): Promise<TrainSummary> {
  const started = performance.now();
  ensureOutputFolder(o.out);
  const head = headOptions(o.head);
  const options = trainOptions(o.train);
  const normalize = o.normalize ?? true;
  const raw = readMatrix(o.db);
  const ranking = readSelfRanking(o.ranks);
  if (ranking.rows !== raw.rows) {
    throw new UserError(`${ranking.file} ranks ${ranking.rows} items but ${o.db} has ${raw.rows} rows; run ddistill diffuse on this database (without --queries)`);
  }
  const x = normalize ? l2NormalizeNamed(raw, o.db) : raw;
  const plan = trainingPlan(ranking, options, o.selection);
  const tripletRange = plan.options.triplets.k;
  const checkpointDir = checkpointFolder(o.out, o.resume);
  checkHeadFits(head, x.cols);
  const v = o.validation;
  const validating = v !== undefined && (v.gnd ?? v.labels ?? v.groups) !== undefined;
  const queries = validating && v.queries !== undefined ? (typeof v.queries === 'string' ? readMatrix(v.queries) : v.queries) : null;
  if (queries && queries.cols !== x.cols) throw new UserError(`${String(v!.queries)} has ${queries.cols} dimensions but ${o.db} has ${x.cols}; use descriptors from the same extractor`);
  const q = queries && normalize ? l2NormalizeNamed(queries, String(v!.queries)) : queries;
  const backend = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(backend);

  const spec = headSpec(head, x.cols, options.seed);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ db: resolve(o.db), dbSize: statSync(o.db).size, ranks: resolve(ranking.file), ranksSize: statSync(ranking.file).size, spec, options, selection: o.selection ?? null, normalize, initFrom: o.initFrom ?? null }))
    .digest('hex');
  const { model, pca: pcaInfo } = await initialHead(x, head, options.seed, o);

  const validate = validating
    ? async (m: tf.LayersModel) =>
        reportFigures(
          await evaluateFiles({
            db: embedRows(m, x),
            query: q ? embedRows(m, q) : undefined,
            metric: 'euclidean',
            engine: o.engine,
            gnd: v.gnd,
            labels: v.labels,
            queryLabels: v.queryLabels,
            groups: v.groups,
            queryGroups: v.queryGroups,
          }),
        )
    : undefined;

  const run: TrainRun = {
    out: o.out,
    checkpointDir,
    fingerprint,
    record: {
      db: o.db, ranks: ranking.file, diffusion: rankingDiffusion(ranking), normalize, head, pca: pcaInfo, options, tripletRange,
      steps: stepCounts(plan.options, plan.teacher?.anchors?.length ?? x.rows), backend, version: packageVersion(),
    },
  };
  const select = selector(plan, ranking, async (m) => embedRows(m, x));
  const start = await startingPoint(plan, x, o.initFrom);
  const { state, resumedFrom } = await trainInRunFolder(model, x, ranking, plan.options, { ...run, resume: o.resume, validate, select, teacher: plan.teacher, callbacks: o });
  const selection = selectionRecord(plan, state, verdict(plan, ranking, embedRows(model, x), start));

  const seconds = (performance.now() - started) / 1000;
  const manifest: ModelManifest = {
    format: 'diffusion-distill-model',
    version: 1,
    inputKind: 'descriptors',
    inputDim: x.cols,
    embeddingDim: head.dim,
    preprocess: { normalize: normalize ? 'l2' : 'none' },
    postprocess: { normalize: 'l2' },
    head: { ...head, seed: options.seed },
    provenance: {
      db: o.db,
      databaseSize: x.rows,
      ranks: ranking.file,
      initFrom: o.initFrom ?? null,
      diffusion: rankingDiffusion(ranking),
      triplets: { ...options.triplets, k: tripletRange, kRequested: options.triplets.k },
      validation: state.history.at(-1)?.validation ?? null,
      selection,
      ...trainingProvenance(plan.options, state, backend, seconds),
    },
  };
  const modelDir = await finishRun({ ...run, record: { ...run.record, selection } }, model, manifest, state, seconds);
  model.dispose();
  return { out: o.out, model: modelDir, backend, head, options: plan.options, tripletRange, history: state.history, steps: state.stepsDone, seconds, resumedFrom, selection };
}

/**
 * What a head's training is judged against: the descriptors themselves for a fresh head, the
 * starting head's embeddings when it continues another run (a bootstrap's previous iteration).
 */
export async function startingPoint(plan: { readonly heldOut: Int32Array }, x: Matrix, initFrom: string | undefined): Promise<Matrix> {
  if (!initFrom || plan.heldOut.length === 0) return x;
  const { model } = await loadModelFolder(initFrom);
  try {
    // An image model folder (frozen backbone + head) holds the head as one layer.
    const head = model.layers.some((l) => l.name === DESCRIPTOR_HEAD) ? (model.getLayer(DESCRIPTOR_HEAD) as unknown as tf.LayersModel) : model;
    return embedRows(head, x);
  } finally {
    model.dispose();
  }
}

/** Starts `model` from the weights of the model folder (or run folder) `from`, matched by name. */
export async function copyWeights(from: string, model: tf.LayersModel): Promise<void> {
  const { dir, model: source } = await loadModelFolder(from);
  try {
    copyWeightsByName(model, source, dir);
  } finally {
    source.dispose();
  }
}

/** Reads a JSON config file of train options (the CLI's flags, camelCased). */
export function readConfig(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UserError(`${path}: config file not found`);
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error('not an object');
    return c as Record<string, unknown>;
  } catch (err) {
    throw new UserError(`${path}: not a JSON object of options (${(err as Error).message}); see ddistill train --help`);
  }
}
