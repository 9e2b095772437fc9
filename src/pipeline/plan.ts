/**
 * A bootstrap's options (what the CLI and the library take), their resolution and the checks that
 * can fail before any expensive stage, and the plan that the stages read: nothing else of the
 * options reaches them.
 */
import type { EngineChoice } from '../backend/dense.js';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { casGraphSize, CAS_DEFAULTS, CAS_PRESETS } from '../diffusion/cas.js';
import type { DiffusionMethod } from '../diffusion/index.js';
import { UserError } from '../errors.js';
import { listImages, unreadableImages } from '../io/images.js';
import { ensureOutputFolder } from '../io/paths.js';
import { readMatrix, type Matrix } from '../matrix.js';
import { defaultImageSize, IMAGE_DEFAULTS } from '../model/image.js';
import { queryCrops } from '../model/run.js';
import { checkImageTraining, type ImageNetworkOptions } from '../train/images.js';
import type { EpochRecord, StepProgress } from '../train/records.js';
import { defaultFreeze, FREEZE_ALL, resolveTraining, type HeadOptions, type PartialTrainOptions, type TrainOptions } from '../train/options.js';
import { SELECTION_DEFAULTS, type SelectionOptions } from '../train/selection.js';
import { readSelfRanking } from '../triplets/run.js';

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
  /** Default: DEFAULT_ITERATIONS, one for a head on a frozen image backbone (PHOTO_ITERATIONS). */
  readonly iterations?: number;
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
  readonly train?: PartialTrainOptions;
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

/** Bootstrap iterations when none are asked for: the paper's bootstrapping, diffusing the first head's embeddings again. */
export const DEFAULT_ITERATIONS = 2;
/**
 * A head on a frozen image backbone (the photo recipe) stops after one iteration: a second one,
 * diffusing the first head's embeddings, measured worse on Caltech-50 and UKBench-400 and better
 * only on Flowers-17, which no label-free check told apart (docs/algorithms.md §4).
 */
export const PHOTO_ITERATIONS = 1;

/** What the run reports while it works. */
export type BootstrapHooks = Pick<BootstrapOptions, 'onStage' | 'onBackend' | 'onStep' | 'onEpoch' | 'onImages'>;

/** The options resolved and checked before any expensive stage: all that the stages read. */
export interface BootstrapPlan {
  /** The input files as given: descriptors (db, queries) or images (images, queryImages). */
  readonly sources: Pick<BootstrapOptions, 'db' | 'queries' | 'images' | 'queryImages'>;
  readonly iterations: number;
  readonly method: DiffusionMethod;
  readonly params: Record<string, unknown>;
  readonly gt: GroundTruthOptions;
  readonly hasGt: boolean;
  readonly hasQueries: boolean;
  /** Measure the baseline and diffusion query re-ranking (queries and ground truth given). */
  readonly compare: boolean;
  /** Without queries: measure the database searching itself (ground truth given, --compare not off). */
  readonly selfBaseline: boolean;
  /** The first iteration's teacher, given (--ranks), and the length of the teachers' rankings. */
  readonly ranks?: string;
  readonly topK?: number;
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
  readonly backend?: BackendChoice;
  readonly engine?: EngineChoice;
  readonly workers?: number;
  readonly hooks: BootstrapHooks;
}

/** The options that define the result (hooks and resume left out), for the manifest. */
export function definingOptions(o: BootstrapOptions): Record<string, unknown> {
  const { onStage: _s, onStep: _p, onEpoch: _e, onImages: _i, onBackend: _b, resume: _r, config: _c, workers: _w, ...rest } = o;
  return JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
}

/**
 * Resolves the options and runs every check that can fail before expensive work: the option
 * combinations, the output folder, the diffusion's neighbourhoods against the number of training
 * items, a given teacher's size, the images' headers, the training step against the wasm heap.
 */
export async function planBootstrap(o: BootstrapOptions): Promise<{ plan: BootstrapPlan; backend: Awaited<ReturnType<typeof initBackend>> }> {
  if (o.iterations !== undefined && (!Number.isInteger(o.iterations) || o.iterations < 1)) throw new UserError(`--iterations must be a positive integer, got ${o.iterations}`);
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
  const { train: options, head } = resolveTraining({ train: o.train, head: o.head, freezeUntil: image ? freeze : null });
  const paths = imageMode ? listImages(o.images!) : null;
  const queryPaths = o.queryImages ? listImages(o.queryImages) : null;
  // Revisitop queries are cropped to their boxes (the protocol), when the ground truth has them.
  const crops = queryPaths && o.gnd ? queryCrops(o.gnd, queryPaths, o.queryImages!) : undefined;
  const database = imageMode ? null : readMatrix(o.db!);
  const size = database?.rows ?? paths!.length;
  const trainItems = fraction < 1 ? Math.max(2, Math.round(fraction * size)) : size;
  const frozenBackbone = image !== null && freeze === FREEZE_ALL;
  const iterations = o.iterations ?? (frozenBackbone ? PHOTO_ITERATIONS : DEFAULT_ITERATIONS);
  if (method === 'cas' && (o.ranks === undefined || iterations > 1)) casGraphSize({ ...CAS_DEFAULTS, ...params }, trainItems);
  if (o.ranks !== undefined) {
    const given = readSelfRanking(o.ranks);
    if (given.rows !== trainItems) throw new UserError(`${given.file} ranks ${given.rows} items but ${trainItems} are trained on; give a self-ranking of the training items`);
  }
  if (imageMode) {
    const bad = await unreadableImages([...paths!, ...(queryPaths ?? [])]);
    if (bad.length > 0) throw new UserError(`${bad[0]!.path}: cannot read this image (${bad[0]!.message})${bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''}; remove or replace it`);
    await checkImageTraining({ ...image!, train: options, head }, backend);
  }
  const compare = o.compare ?? true;
  const plan: BootstrapPlan = {
    sources: { db: o.db, queries: o.queries, images: o.images, queryImages: o.queryImages }, iterations,
    method, params, gt, hasGt, hasQueries, compare: compare && hasGt && hasQueries, selfBaseline: compare && hasGt && !hasQueries, ranks: o.ranks, topK: o.topK,
    fraction, normalize: o.normalize ?? true, selection: { ...SELECTION_DEFAULTS, ...o.selection }, image, frozenBackbone, options, head,
    paths, queryPaths, crops, database, size, trainItems, backend: o.backend, engine: o.engine, workers: o.workers,
    hooks: { onStage: o.onStage, onBackend: o.onBackend, onStep: o.onStep, onEpoch: o.onEpoch, onImages: o.onImages },
  };
  return { plan, backend };
}
