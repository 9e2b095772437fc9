/**
 * The bootstrap pipeline (Zhao et al., BMVC 2018; docs/algorithms.md §4 steps 2–8): for each
 * iteration, a diffusion self-ranking of the current database representation → triplets and
 * training of the head (continuing from the previous iteration's weights) → re-embedding of the
 * database and queries → evaluation. The next iteration diffuses the new embeddings.
 *
 * Image mode (images instead of descriptors): a first stage extracts the base descriptors from
 * the backbone before training (features/), the training stage fine-tunes the image network, and
 * the embedding stage runs it over the database and query images (queries cropped to their
 * revisitop boxes when the ground truth has them).
 *
 * Run folder:
 *   manifest.json       options, versions, per-stage timings, per-iteration metrics, status
 *   config.json         (from the CLI) the options as a --config file: the run again, anywhere
 *   features/           image mode: db.npy, queries.npy (+ .json) from the untrained backbone
 *   subset/             the training items when --train-fraction < 1 (indices.npy, db.npy, images.txt)
 *   iter-N/teacher/     the diffusion self-ranking (ddistill diffuse)
 *   iter-N/train/       the training run (ddistill train: model/, checkpoint/, train.json)
 *   iter-N/emb/         embeddings of all database items and queries (ddistill embed)
 *   iter-N/eval.json    metrics and query latency
 *   report.html         the self-contained report (table and plots), rewritten after every stage
 * Every stage's output is complete once its marker file exists; `resume` skips finished stages
 * and continues training from its last checkpoint, so a run killed at any point ends with the
 * same result as an uninterrupted one.
 */
import { createHash } from 'node:crypto';
import type { EngineChoice } from '../backend/dense.js';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { casGraphSize, CAS_DEFAULTS, CAS_PRESETS } from '../diffusion/cas.js';
import type { DiffusionMethod } from '../diffusion/index.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { listImages, unreadableImages } from '../io/images.js';
import { ensureOutputFolder } from '../io/paths.js';
import { readMatrix, type Matrix } from '../matrix.js';
import { defaultImageSize, IMAGE_DEFAULTS } from '../model/image.js';
import { queryCrops } from '../model/run.js';
import { checkImageTraining, defaultFreeze, FREEZE_ALL, imageTrainingDefaults, type ImageNetworkOptions } from '../train/images.js';
import type { EpochRecord, StepProgress, TrainOptions } from '../train/loop.js';
import { headOptions, trainOptions, type HeadOptions, type TrainFilesOptions } from '../train/run.js';
import { SELECTION_DEFAULTS, type SelectionOptions } from '../train/selection.js';
import { readSelfRanking } from '../triplets/run.js';
import { packageVersion } from '../version.js';
import type { RunManifest } from './manifest.js';
import { RunFolder } from './runFolder.js';
import { comparisonStage, embeddingStage, evaluationStage, featuresStage, iterationRecord, resultStage, teacherStage, trainingItemsStage, trainingStage, type Run } from './stages.js';

export interface GroundTruthOptions {
  readonly gnd?: string;
  readonly labels?: string;
  readonly queryLabels?: string;
  readonly groups?: string;
  readonly queryGroups?: string;
}

export interface BootstrapOptions extends GroundTruthOptions {
  /** Database descriptors, or (image mode) `images`. */
  readonly db?: string;
  readonly queries?: string;
  /** Image mode: the database images (a folder or list file) and the query images. */
  readonly images?: string;
  readonly queryImages?: string;
  /** Image mode: the network and how images are resized (as `ddistill train --images`). */
  readonly image?: Partial<ImageNetworkOptions>;
  readonly out: string;
  readonly iterations: number;
  /** Train on this fraction of the database (seeded subset), embed and search all of it. */
  readonly trainFraction?: number;
  readonly method?: DiffusionMethod;
  /** CAS neighbourhood sizes: 'default', or 'small' for small collections (as `ddistill diffuse --preset`). */
  readonly preset?: keyof typeof CAS_PRESETS;
  readonly params?: Record<string, unknown>;
  /**
   * The first iteration's teacher, computed elsewhere: a self-ranking folder of the training items
   * (as `ddistill diffuse` writes, with scores.npy for --triplet-range auto) instead of running `method`.
   */
  readonly ranks?: string;
  /** Length of the teacher's rankings (default: the triplet range k). */
  readonly topK?: number;
  readonly head?: Partial<HeadOptions>;
  readonly train?: TrainFilesOptions['train'];
  /** Held-out fraction and patience of the label-free selection (default: SELECTION_DEFAULTS; holdOut 0 turns it off). */
  readonly selection?: SelectionOptions;
  readonly normalize?: boolean;
  readonly backend?: BackendChoice;
  readonly engine?: EngineChoice;
  /** Worker threads for training (TrainCallbacks.workers); not part of what defines the result. */
  readonly workers?: number;
  /** Also measure the Euclidean baseline and diffusion query re-ranking (needs queries and ground truth). */
  readonly compare?: boolean;
  readonly resume?: boolean;
  /** The command-line options as a config file (`--config`), written to config.json in the run. */
  readonly config?: Record<string, unknown>;
  readonly onStage?: (iteration: number, stage: string, message: string) => void;
  /** The backend chosen (and why it is not native TensorFlow). */
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onStep?: (p: StepProgress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
  /** Progress of image decoding and embedding (image mode). */
  readonly onImages?: (done: number, total: number) => void;
}

export type { IterationRecord, Measured, RunManifest, RunResult } from './manifest.js';
export { trainingSubset } from './stages.js';

/** The options resolved and checked before any expensive stage (what the stages read). */
export interface BootstrapPlan {
  readonly method: DiffusionMethod;
  readonly params: Record<string, unknown>;
  readonly gt: GroundTruthOptions;
  readonly hasGt: boolean;
  readonly hasQueries: boolean;
  /** Measure the baseline and diffusion query re-ranking (queries and ground truth given). */
  readonly compare: boolean;
  readonly fraction: number;
  readonly normalize: boolean;
  readonly selection: SelectionOptions;
  /** Image mode: the network, with the backend's default size filled in; null with --db. */
  readonly image: (Partial<ImageNetworkOptions> & { backbone: string; size: number; freezeUntil: string }) | null;
  /** A head on a frozen backbone: it trains on features/ and embeds from it. */
  readonly frozenBackbone: boolean;
  readonly options: TrainOptions;
  readonly head: HeadOptions;
  readonly paths: readonly string[] | null;
  readonly queryPaths: readonly string[] | null;
  /** Revisitop query boxes (image mode with --gnd). */
  readonly crops: (readonly number[] | null)[] | undefined;
  /** The --db descriptors (null in image mode until features/ exists). */
  readonly database: Matrix | null;
  readonly size: number;
  readonly trainItems: number;
}

/** The options that define the result (hooks and resume left out), for the manifest. */
function definingOptions(o: BootstrapOptions): Record<string, unknown> {
  const { onStage: _s, onStep: _p, onEpoch: _e, onImages: _i, onBackend: _b, resume: _r, config: _c, workers: _w, ...rest } = o;
  return JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
}

/**
 * Resolves the options and runs every check that can fail before expensive work: the option
 * combinations, the output folder, the diffusion's neighbourhoods against the number of training
 * items, a given teacher's size, the images' headers, the training step against the wasm heap.
 */
async function planBootstrap(o: BootstrapOptions): Promise<{ plan: BootstrapPlan; backend: Awaited<ReturnType<typeof initBackend>> }> {
  if (!Number.isInteger(o.iterations) || o.iterations < 1) throw new UserError(`--iterations must be a positive integer, got ${o.iterations}`);
  const fraction = o.trainFraction ?? 1;
  if (!(fraction > 0 && fraction <= 1)) throw new UserError(`--train-fraction must be in (0, 1], got ${fraction}`);
  const gt: GroundTruthOptions = { gnd: o.gnd, labels: o.labels, queryLabels: o.queryLabels, groups: o.groups, queryGroups: o.queryGroups };
  const hasGt = [o.gnd, o.labels, o.groups].some((x) => x !== undefined);
  const hasQueries = o.queries !== undefined || o.queryImages !== undefined;
  if (o.gnd && !hasQueries) throw new UserError('revisited ground truth (--gnd) needs --queries (or --query-images)');
  const method = o.method ?? 'cas';
  if (o.preset && method !== 'cas') throw new UserError(`--preset applies to CAS only, not ${method}`);
  const params: Record<string, unknown> = { ...(o.preset ? CAS_PRESETS[o.preset] : {}), ...(o.params ?? {}) };
  const imageMode = o.images !== undefined;
  if (imageMode === (o.db !== undefined)) throw new UserError('give either --db (descriptors) or --images (image mode), on the command line or in --config');
  if (imageMode && o.queries) throw new UserError('in image mode give the queries as images (--query-images), not descriptors');
  if (!imageMode && o.queryImages) throw new UserError('--query-images needs --images (image mode); with --db give --queries descriptors');
  ensureOutputFolder(o.out);
  const backend = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(backend);
  const backbone = o.image?.backbone ?? IMAGE_DEFAULTS.backbone;
  const freeze = o.image?.freezeUntil ?? defaultFreeze(backbone, o.image?.weights);
  const image = imageMode ? { ...o.image, backbone, size: o.image?.size ?? defaultImageSize(backend.backend), freezeUntil: freeze } : null;
  const defaults = image ? imageTrainingDefaults(freeze) : { head: {}, train: {} };
  const options = trainOptions(o.train, defaults.train);
  const head = headOptions(o.head, defaults.head);
  const paths = imageMode ? listImages(o.images!) : null;
  const queryPaths = o.queryImages ? listImages(o.queryImages) : null;
  // Revisitop queries are cropped to their boxes (the protocol), when the ground truth has them.
  const crops = queryPaths && o.gnd ? queryCrops(o.gnd, queryPaths, o.queryImages!) : undefined;
  const database = imageMode ? null : readMatrix(o.db!);
  const size = database?.rows ?? paths!.length;
  const trainItems = fraction < 1 ? Math.max(2, Math.round(fraction * size)) : size;
  if (method === 'cas' && (o.ranks === undefined || o.iterations > 1)) casGraphSize({ ...CAS_DEFAULTS, ...params }, trainItems);
  if (o.ranks !== undefined) {
    const given = readSelfRanking(o.ranks);
    if (given.rows !== trainItems) throw new UserError(`${given.file} ranks ${given.rows} items but ${trainItems} are trained on; give a self-ranking of the training items`);
  }
  if (imageMode) {
    const bad = await unreadableImages([...paths!, ...(queryPaths ?? [])]);
    if (bad.length > 0) throw new UserError(`${bad[0]!.path}: cannot read this image (${bad[0]!.message})${bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''}; remove or replace it`);
    await checkImageTraining({ ...image!, train: options, head }, backend);
  }
  const plan: BootstrapPlan = {
    method, params, gt, hasGt, hasQueries, compare: (o.compare ?? true) && hasGt && hasQueries, fraction, normalize: o.normalize ?? true,
    selection: { ...SELECTION_DEFAULTS, ...o.selection }, image, frozenBackbone: image !== null && freeze === FREEZE_ALL, options, head,
    paths, queryPaths, crops, database, size, trainItems,
  };
  return { plan, backend };
}

/** Runs (or resumes) a bootstrap; returns the final manifest. */
export async function bootstrap(o: BootstrapOptions): Promise<RunManifest> {
  const started = performance.now();
  const { plan, backend } = await planBootstrap(o);
  const defining = definingOptions(o);
  const fingerprint = createHash('sha256').update(JSON.stringify({ defining, dbSize: plan.size, dbCols: plan.database?.cols ?? null })).digest('hex');
  const folder = RunFolder.open(o.out, {
    resume: o.resume, fingerprint, started, title: `diffusion-distill: ${o.db ?? o.images}`,
    fresh: () => ({
      format: 'diffusion-distill-run', version: 1, status: 'running', options: defining, fingerprint, versions: {},
      databaseSize: plan.size, trainItems: plan.trainItems, baseline: null, reranking: null, iterations: [], seconds: 0,
    }),
  });
  const manifest = folder.manifest;
  manifest.versions = { package: packageVersion(), tfjs: backend.tfjsVersion, backend: `${backend.backend} (${backend.source})`, ...(backend.why ? { notNative: backend.why } : {}), node: process.version };
  if (o.config) writeFileAtomic(folder.path('config.json'), JSON.stringify(o.config, null, 2) + '\n');
  folder.save();
  const run: Run = { o, plan, folder, stage: (iteration, name, message) => o.onStage?.(iteration, name, message) };

  const data = await featuresStage(run);
  await comparisonStage(run, data);
  const items = trainingItemsStage(run, data);
  for (let it = 1; it <= o.iterations; it++) {
    if (manifest.iterations.some((r) => r.kept === false)) break; // resumed after a rejected iteration
    if (manifest.iterations.some((r) => r.iteration === it)) continue;
    const seconds: Record<string, number> = {};
    const teacher = await teacherStage(run, items, it, seconds);
    const trainDir = await trainingStage(run, data, items, teacher, it, seconds);
    const embDir = await embeddingStage(run, data, trainDir, it, seconds);
    const measured = await evaluationStage(run, data, trainDir, embDir, it, seconds);
    const record = iterationRecord(run, data, measured, trainDir, it, seconds);
    manifest.iterations.push(record);
    folder.save();
    if (!record.kept) break;
  }
  manifest.result = resultStage(run, data);
  manifest.status = 'done';
  folder.save();
  return manifest;
}
