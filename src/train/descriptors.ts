/**
 * The `train` stage on files, descriptor mode: database descriptors (.npy) and their diffusion
 * self-ranking in; a run folder out (runFolder.ts), holding `model/`, `checkpoint/` and `train.json`.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { EngineChoice } from '../backend/dense.js';
import { initBackend, tf, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { evaluateFiles, reportFigures } from '../eval/run.js';
import { ensureOutputFolder } from '../io/paths.js';
import { l2NormalizeNamed, readMatrix, type Matrix } from '../matrix.js';
import { embedRows } from '../model/head.js';
import type { ModelManifest } from '../model/io.js';
import { readSelfRanking } from '../triplets/run.js';
import { packageVersion } from '../version.js';
import { checkpointFolder } from './checkpoint.js';
import { checkHeadFits, headSpec, initialHead, startingPoint } from './initialHead.js';
import { stepCounts } from './loop.js';
import type { EpochRecord } from './records.js';
import { resolveTraining, type HeadOptions, type PartialTrainOptions, type TrainOptions } from './options.js';
import { finishRun, rankingDiffusion, trainingProvenance, trainInRunFolder, type TrainCallbacks, type TrainRun } from './runFolder.js';
import { selectionRecord, selector, trainingPlan, verdict, type SelectionOptions } from './selection.js';

/** Ground truth for a validation figure after every epoch (as for `ddistill eval`). */
export interface ValidationOptions {
  readonly queries?: string | Matrix;
  readonly gnd?: string;
  readonly labels?: string;
  readonly queryLabels?: string;
  readonly groups?: string;
  readonly queryGroups?: string;
}


export interface TrainFilesOptions extends TrainCallbacks {
  readonly db: string;
  readonly ranks: string;
  readonly out: string;
  readonly head?: Partial<HeadOptions>;
  readonly train?: PartialTrainOptions;
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

/** Trains a descriptor-mode head; see the module comment for the run folder. */
export async function trainFiles(o: TrainFilesOptions): Promise<TrainSummary> {
  const started = performance.now();
  ensureOutputFolder(o.out);
  const { train: options, head } = resolveTraining(o);
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
  const select = selector(plan, async (m) => embedRows(m, x));
  const start = await startingPoint(plan, x, o.initFrom);
  const { state, resumedFrom } = await trainInRunFolder(model, x, ranking, plan.options, { ...run, resume: o.resume, validate, select, teacher: plan.teacher, callbacks: o });
  const selection = selectionRecord(plan, state, verdict(plan, embedRows(model, x), start));

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
