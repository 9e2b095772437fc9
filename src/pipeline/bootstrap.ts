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
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineChoice } from '../backend/dense.js';
import { initBackend, tf, type BackendChoice } from '../backend/tfjs.js';
import { casGraphSize, CAS_DEFAULTS, CAS_PRESETS } from '../diffusion/cas.js';
import { diffuse, type DiffusionMethod } from '../diffusion/index.js';
import { diffuseFiles } from '../diffusion/run.js';
import { UserError } from '../errors.js';
import { ranking as rankingOf } from '../eval/ranking.js';
import { evaluateFiles, type EvalFilesOptions } from '../eval/run.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readNpy, writeNpy } from '../io/npy.js';
import { l2NormalizeNamed, readMatrix, rowBlock, writeMatrix, type Matrix } from '../matrix.js';
import { loadModelFolder } from '../model/io.js';
import { embedDescriptors, embedFiles, embedImageList, featureFiles, featureListFile, queryCrops } from '../model/run.js';
import { listImages, sizeLabel, unreadableImages } from '../io/images.js';
import { checkImageTraining, defaultFreeze, FREEZE_ALL, imageTrainingDefaults, trainImages, type ImageNetworkOptions } from '../train/images.js';
import { defaultImageSize, IMAGE_DEFAULTS } from '../model/image.js';
import { DESCRIPTOR_HEAD, embedRows } from '../model/head.js';
import { ensureOutputFolder } from '../io/paths.js';
import { exactSearch } from '../search/exact.js';
import type { EpochRecord, StepProgress } from '../train/loop.js';
import { seededRandom } from '../triplets/mining.js';
import { readSelfRanking } from '../triplets/run.js';
import { headOptions, reportFigures, trainFiles, trainOptions, type HeadOptions, type TrainFilesOptions } from '../train/run.js';
import { packageVersion } from '../version.js';
import { RANGE_RULE } from '../triplets/range.js';
import { SELECTION_DEFAULTS, type SelectionOptions, type Verdict } from '../train/selection.js';
import { renderReport } from '../report/html.js';

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
  /** Also measure the Euclidean baseline and diffusion query re-ranking (needs queries and ground truth). */
  readonly compare?: boolean;
  readonly resume?: boolean;
  /** The command-line options as a config file (`--config`), written to config.json in the run. */
  readonly config?: Record<string, unknown>;
  readonly onStage?: (iteration: number, stage: string, message: string) => void;
  readonly onStep?: (p: StepProgress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
  /** Progress of image decoding and embedding (image mode). */
  readonly onImages?: (done: number, total: number) => void;
}

/** Metrics of one ranking and the time its queries took. */
export interface Measured {
  readonly metrics: Record<string, number>;
  /** Mean interpolated precision at recall 0, 0.1, …, 1 (revisited: Medium). */
  readonly pr?: number[];
  /** Wall time to answer all queries (embedding included for distilled embeddings). */
  readonly querySeconds: number | null;
  readonly queries: number | null;
}

export interface IterationRecord extends Measured {
  readonly iteration: number;
  readonly seconds: Record<string, number>;
  readonly loss: readonly number[];
  /** How k was chosen, the agreement curve, why training stopped and the verdict (selectionRecord). */
  readonly selection?: Record<string, unknown>;
  /** Whether this iteration's model beat its input by the label-free verdict (kept as the result). */
  readonly kept?: boolean;
}

/** What the run returns: the iteration kept (0: the input descriptors) and why. */
export interface RunResult {
  readonly iteration: number;
  readonly reason: string;
  /** The model folder to embed new items with (null: the input descriptors need no model). */
  readonly model: string | null;
  readonly embeddings: string;
}

export interface RunManifest {
  readonly format: 'diffusion-distill-run';
  readonly version: 1;
  status: 'running' | 'done';
  readonly options: Record<string, unknown>;
  readonly fingerprint: string;
  versions: Record<string, string>;
  readonly databaseSize: number;
  readonly trainItems: number;
  baseline: Measured | null;
  reranking: (Measured & { readonly method: DiffusionMethod }) | null;
  iterations: IterationRecord[];
  /** The result (set when the run is done). */
  result?: RunResult;
  /** Image mode: seconds to extract the base descriptors (db, queries). */
  featureSeconds?: Record<string, number>;
  seconds: number;
}

const MANIFEST = 'manifest.json';

/** The options that define the result (hooks and resume left out), for the manifest. */
function definingOptions(o: BootstrapOptions): Record<string, unknown> {
  const { onStage: _s, onStep: _p, onEpoch: _e, onImages: _i, resume: _r, config: _c, ...rest } = o;
  return JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
}

/** Seeded subset of round(f·n) items (at least 2), in increasing order. */
export function trainingSubset(n: number, fraction: number, seed: number): Int32Array {
  const size = Math.max(2, Math.round(fraction * n));
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const rand = seededRandom((seed ^ 0x2545f491) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order.subarray(0, size).sort();
}

function rowsOf(m: Matrix, rows: Int32Array): Matrix {
  const data = new Float32Array(rows.length * m.cols);
  rows.forEach((r, i) => data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return { rows: rows.length, cols: m.cols, data };
}

const secondsSince = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(3));

/** Image mode: embeds the database and query images with the model of `trainDir` into `embDir`. */
async function embedImageRun(
  trainDir: string,
  embDir: string,
  paths: readonly string[],
  queryPaths: readonly string[] | null,
  crops: (readonly number[] | null)[] | undefined,
  onImages?: (done: number, total: number) => void,
): Promise<void> {
  const loaded = await loadModelFolder(trainDir);
  const { dir, model, manifest } = loaded;
  try {
    const started = performance.now();
    const total = paths.length + (queryPaths?.length ?? 0);
    const db = await embedImageList(loaded, paths, { onProgress: (d) => onImages?.(d, total) });
    writeMatrix(join(embDir, 'db.npy'), db.matrix);
    if (queryPaths) {
      const q = await embedImageList(loaded, queryPaths, { crops, onProgress: (d) => onImages?.(paths.length + d, total) });
      writeMatrix(join(embDir, 'queries.npy'), q.matrix);
    }
    // embed.json last: its presence says the stage is complete.
    const seconds = secondsSince(started);
    writeFileAtomic(join(embDir, 'embed.json'), JSON.stringify({ model: dir, embeddingDim: manifest.embeddingDim, images: paths.length, queries: queryPaths?.length ?? 0, cropped: crops !== undefined, seconds }, null, 2) + '\n');
  } finally {
    model.dispose();
  }
}

/**
 * Image mode with a frozen backbone: the database and query embeddings are the trained head applied
 * to the backbone's descriptors in features/ (what the whole image network computes, without
 * running the backbone again).
 */
async function embedFromFeatures(trainDir: string, embDir: string, database: Matrix, queries: Matrix | null): Promise<void> {
  const { dir, model, manifest } = await loadModelFolder(trainDir);
  try {
    const started = performance.now();
    const head = model.getLayer(DESCRIPTOR_HEAD) as unknown as tf.LayersModel;
    writeMatrix(join(embDir, 'db.npy'), embedRows(head, database));
    if (queries) writeMatrix(join(embDir, 'queries.npy'), embedRows(head, queries));
    const seconds = secondsSince(started);
    writeFileAtomic(join(embDir, 'embed.json'), JSON.stringify({ model: dir, embeddingDim: manifest.embeddingDim, images: database.rows, queries: queries?.rows ?? 0, fromFeatures: true, seconds }, null, 2) + '\n');
  } finally {
    model.dispose();
  }
}

/** Runs (or resumes) a bootstrap; returns the final manifest. */
export async function bootstrap(o: BootstrapOptions): Promise<RunManifest> {
  const started = performance.now();
  if (!Number.isInteger(o.iterations) || o.iterations < 1) throw new UserError(`--iterations must be a positive integer, got ${o.iterations}`);
  const fraction = o.trainFraction ?? 1;
  if (!(fraction > 0 && fraction <= 1)) throw new UserError(`--train-fraction must be in (0, 1], got ${fraction}`);
  const gt: GroundTruthOptions = { gnd: o.gnd, labels: o.labels, queryLabels: o.queryLabels, groups: o.groups, queryGroups: o.queryGroups };
  const hasGt = [o.gnd, o.labels, o.groups].some((x) => x !== undefined);
  const hasQueries = o.queries !== undefined || o.queryImages !== undefined;
  if (o.gnd && !hasQueries) throw new UserError('revisited ground truth (--gnd) needs --queries (or --query-images)');
  const compare = (o.compare ?? true) && hasGt && hasQueries;
  const method = o.method ?? 'cas';
  if (o.preset && method !== 'cas') throw new UserError(`--preset applies to CAS only, not ${method}`);
  const params: Record<string, unknown> = { ...(o.preset ? CAS_PRESETS[o.preset] : {}), ...(o.params ?? {}) };

  const imageMode = o.images !== undefined;
  if (imageMode === (o.db !== undefined)) throw new UserError('give either --db (descriptors) or --images (image mode), on the command line or in --config');
  if (imageMode && o.queries) throw new UserError('in image mode give the queries as images (--query-images), not descriptors');
  if (!imageMode && o.queryImages) throw new UserError('--query-images needs --images (image mode); with --db give --queries descriptors');
  ensureOutputFolder(o.out);
  const backend = await initBackend(o.backend ?? 'auto');
  const backbone = o.image?.backbone ?? IMAGE_DEFAULTS.backbone;
  const freeze = o.image?.freezeUntil ?? defaultFreeze(backbone, o.image?.weights);
  const image = imageMode ? { ...o.image, backbone, size: o.image?.size ?? defaultImageSize(backend.backend), freezeUntil: freeze } : null;
  // A head on a frozen backbone trains on the features/ descriptors, and embeds from them.
  const frozenBackbone = image !== null && freeze === FREEZE_ALL;
  const defaults = image ? imageTrainingDefaults(freeze) : { head: {}, train: {} };
  const options = trainOptions(o.train, defaults.train);
  const head = headOptions(o.head, defaults.head);
  const paths = imageMode ? listImages(o.images!) : null;
  const queryPaths = o.queryImages ? listImages(o.queryImages) : null;
  // Revisitop queries are cropped to their boxes (the protocol), when the ground truth has them.
  const crops = queryPaths && o.gnd ? queryCrops(o.gnd, queryPaths, o.queryImages!) : undefined;
  let db = imageMode ? null : readMatrix(o.db!);
  // Checks that can fail, before any expensive stage: the diffusion's neighbourhoods against the
  // number of training items, the images' headers, the training step against the wasm heap.
  const size = db?.rows ?? paths!.length;
  const subsetSize = fraction < 1 ? Math.max(2, Math.round(fraction * size)) : size;
  if (method === 'cas' && (o.ranks === undefined || o.iterations > 1)) casGraphSize({ ...CAS_DEFAULTS, ...params }, subsetSize);
  if (o.ranks !== undefined) {
    const given = readSelfRanking(o.ranks);
    if (given.rows !== subsetSize) throw new UserError(`${given.file} ranks ${given.rows} items but ${subsetSize} are trained on; give a self-ranking of the training items`);
  }
  if (imageMode) {
    const bad = await unreadableImages([...paths!, ...(queryPaths ?? [])]);
    if (bad.length > 0) throw new UserError(`${bad[0]!.path}: cannot read this image (${bad[0]!.message})${bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''}; remove or replace it`);
    await checkImageTraining({ ...image!, train: options, head }, backend);
  }
  const defining = definingOptions(o);
  const fingerprint = createHash('sha256').update(JSON.stringify({ defining, dbSize: db?.rows ?? paths!.length, dbCols: db?.cols ?? null })).digest('hex');
  const manifestPath = join(o.out, MANIFEST);
  let manifest: RunManifest;
  if (existsSync(manifestPath)) {
    if (!o.resume) throw new UserError(`${o.out} already holds a bootstrap run; add --resume to continue it, or choose another --out`);
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as RunManifest;
    if (manifest.fingerprint !== fingerprint) {
      throw new UserError(`${manifestPath}: the run was started with other data or options; resume with the same ones (they are in its manifest), or choose another --out`);
    }
  } else {
    if (o.resume) throw new UserError(`${o.out}: no bootstrap run to resume (no ${MANIFEST}); run without --resume`);
    manifest = {
      format: 'diffusion-distill-run', version: 1, status: 'running', options: defining, fingerprint, versions: {},
      databaseSize: size, trainItems: subsetSize, baseline: null, reranking: null, iterations: [], seconds: 0,
    };
  }
  manifest.versions = { package: packageVersion(), tfjs: backend.tfjsVersion, backend: `${backend.backend} (${backend.source})`, node: process.version };
  mkdirSync(o.out, { recursive: true });
  if (o.config) writeFileAtomic(join(o.out, 'config.json'), JSON.stringify(o.config, null, 2) + '\n');
  const save = () => {
    manifest.seconds = Number((manifest.seconds + secondsSince(lastSave)).toFixed(3));
    lastSave = performance.now();
    writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    writeFileAtomic(join(o.out, 'report.html'), renderReport(manifest, `diffusion-distill: ${o.db ?? o.images}`));
  };
  let lastSave = started;
  save();
  const stage = (iteration: number, name: string, message: string) => o.onStage?.(iteration, name, message);
  const evaluate = async (source: Pick<EvalFilesOptions, 'db' | 'query' | 'ranking'>): Promise<{ metrics: Record<string, number>; pr?: number[] }> => {
    const rep = await evaluateFiles({ ...source, metric: 'euclidean', engine: o.engine, curve: true, ...gt } as EvalFilesOptions);
    return { metrics: reportFigures(rep), pr: rep.pr };
  };

  // Image mode: base descriptors from the backbone before any training.
  let dbFile = o.db;
  let queriesFile = o.queries;
  if (imageMode) {
    const dir = join(o.out, 'features');
    dbFile = join(dir, 'db.npy');
    queriesFile = queryPaths ? join(dir, 'queries.npy') : undefined;
    const extract = async (name: 'db' | 'queries', images: string, out: string, gnd?: string) => {
      if (existsSync(featureListFile(out))) return;
      stage(0, 'features', `${image!.backbone} features of ${images} (${sizeLabel(image!.size, image!.resize)})`);
      const t0 = performance.now();
      await featureFiles({ images, out, crops: gnd, backbone: image!.backbone, cut: image!.cut, weights: image!.weights, partialWeights: image!.partialWeights, scale: image!.scale, size: image!.size, resize: image!.resize, backend: o.backend, onProgress: o.onImages });
      manifest.featureSeconds = { ...manifest.featureSeconds, [name]: secondsSince(t0) };
      save();
    };
    await extract('db', o.images!, dbFile);
    if (queryPaths) await extract('queries', o.queryImages!, queriesFile!, crops ? o.gnd : undefined);
    db = readMatrix(dbFile);
  }
  const database = db!;
  const databaseFile = dbFile!;
  const queries = queriesFile ? readMatrix(queriesFile) : null;
  if (queries && queries.cols !== database.cols) throw new UserError(`${queriesFile} has ${queries.cols} dimensions but ${databaseFile} has ${database.cols}; use descriptors from the same extractor`);

  const normalize = o.normalize ?? true;
  const unit = (m: Matrix, file: string) => (normalize ? l2NormalizeNamed(m, file) : m);
  const selection: SelectionOptions = { ...SELECTION_DEFAULTS, ...o.selection };

  // Comparisons: Euclidean search on the input descriptors, and diffusion query re-ranking.
  if (hasGt && !hasQueries && o.compare !== false && !manifest.baseline) {
    // No queries: the database items query it (N-S counts each item as its own first result).
    stage(0, 'baseline', 'Euclidean search of the database by its own items');
    manifest.baseline = { ...(await evaluate({ db: unit(database, databaseFile) })), querySeconds: null, queries: null };
    save();
  }
  if (compare && !manifest.baseline) {
    stage(0, 'baseline', 'Euclidean search on the input descriptors');
    const d = unit(database, databaseFile);
    const q = unit(queries!, queriesFile!);
    const search = { k: Math.min(100, database.rows), metric: 'euclidean' as const, engine: o.engine };
    await exactSearch(d, rowBlock(q, 0, 1), search); // warm-up: engine start-up is not query time
    const t0 = performance.now();
    await exactSearch(d, q, search);
    const querySeconds = secondsSince(t0);
    manifest.baseline = { ...(await evaluate({ db: d, query: q })), querySeconds, queries: q.rows };
    save();
  }
  if (compare && !manifest.reranking) {
    stage(0, 'reranking', `${method} query re-ranking of the ${queries!.rows} queries`);
    const t0 = performance.now();
    const res = await diffuse(method, database, queries, params, { topK: database.rows, normalize, engine: o.engine });
    const querySeconds = secondsSince(t0);
    const r = rankingOf(res.indices, res.rows, database.rows);
    manifest.reranking = { method, ...(await evaluate({ ranking: r })), querySeconds, queries: queries!.rows };
    save();
  }

  // The training items.
  let subset: Int32Array | null = null;
  let trainDb = databaseFile;
  let trainImagesList = o.images;
  if (fraction < 1) {
    const dir = join(o.out, 'subset');
    if (!existsSync(join(dir, 'db.npy'))) {
      subset = trainingSubset(database.rows, fraction, options.seed);
      writeNpy(join(dir, 'indices.npy'), { dtype: 'int32', shape: [subset.length], data: subset });
      if (paths) writeFileAtomic(join(dir, 'images.txt'), Array.from(subset, (i) => paths[i]!).join('\n') + '\n');
      writeMatrix(join(dir, 'db.npy'), rowsOf(database, subset));
    }
    subset = readNpy(join(dir, 'indices.npy')).data as Int32Array;
    trainDb = join(dir, 'db.npy');
    if (paths) trainImagesList = join(dir, 'images.txt');
  }

  for (let it = 1; it <= o.iterations; it++) {
    const dir = join(o.out, `iter-${it}`);
    if (manifest.iterations.some((r) => r.kept === false)) break; // resumed after a rejected iteration
    const done = manifest.iterations.find((r) => r.iteration === it);
    if (done) continue;
    const seconds: Record<string, number> = {};
    // 1. Diffusion self-ranking of the current representation of the training items.
    const teacher = it === 1 && o.ranks !== undefined ? o.ranks : join(dir, 'teacher');
    if (teacher !== o.ranks && !existsSync(join(teacher, 'diffusion.json'))) {
      let input = trainDb;
      if (it > 1) {
        const previous = join(o.out, `iter-${it - 1}`, 'emb', 'db.npy');
        input = previous;
        if (subset) {
          input = join(dir, 'teacher-input.npy');
          writeMatrix(input, rowsOf(readMatrix(previous), subset));
        }
      }
      stage(it, 'diffuse', `${method} self-ranking of ${manifest.trainItems} items (${it === 1 ? 'input descriptors' : `embeddings of iteration ${it - 1}`})`);
      const t0 = performance.now();
      await diffuseFiles({ method, db: input, out: teacher, topK: o.topK ?? (options.triplets.k === 'auto' ? RANGE_RULE.scan : options.triplets.k), params, engine: o.engine });
      seconds.diffuse = secondsSince(t0);
    }
    // 2–3. Triplets and training (continuing from the previous iteration's head).
    const trainDir = join(dir, 'train');
    if (!existsSync(join(trainDir, 'model', 'manifest.json'))) {
      const resumeTraining = existsSync(join(trainDir, 'checkpoint', 'checkpoint.json'));
      stage(it, 'train', resumeTraining ? 'training (resumed from its checkpoint)' : 'training');
      const t0 = performance.now();
      const initFrom = it > 1 ? join(o.out, `iter-${it - 1}`, 'train') : undefined;
      if (image) {
        await trainImages({
          images: trainImagesList, ...image, ranks: teacher, out: trainDir, head: o.head, train: o.train, selection, backend: o.backend, resume: resumeTraining, initFrom,
          features: frozenBackbone ? (subset ? rowsOf(database, subset) : database) : undefined,
          onStep: o.onStep, onEpoch: o.onEpoch, onStage: (m) => stage(it, 'train', m),
        });
      } else {
        await trainFiles({
          db: trainDb, ranks: teacher, out: trainDir, head, train: o.train, selection, normalize, backend: o.backend, engine: o.engine,
          resume: resumeTraining, initFrom, onStep: o.onStep, onEpoch: o.onEpoch,
        });
      }
      seconds.train = secondsSince(t0);
    }
    // 4. Re-embedding of all database items and the queries.
    const embDir = join(dir, 'emb');
    if (!existsSync(join(embDir, 'embed.json'))) {
      stage(it, 'embed', `embedding ${database.rows} database items${queries ? ` and ${queries.rows} queries` : ''}`);
      const t0 = performance.now();
      if (frozenBackbone) await embedFromFeatures(trainDir, embDir, database, queries);
      else if (image) await embedImageRun(trainDir, embDir, paths!, queryPaths, crops, o.onImages);
      else await embedFiles({ model: trainDir, db: databaseFile, queries: queriesFile, out: embDir, backend: o.backend });
      seconds.embed = secondsSince(t0);
    }
    // 5. Evaluation and query latency (embedding the queries + exact Euclidean search).
    let metrics: Record<string, number> = {};
    let pr: number[] | undefined;
    let querySeconds: number | null = null;
    if (hasGt) {
      stage(it, 'eval', 'evaluation');
      const t0 = performance.now();
      const embDb = readMatrix(join(embDir, 'db.npy'));
      const embQ = queries ? readMatrix(join(embDir, 'queries.npy')) : null;
      ({ metrics, pr } = await evaluate({ db: embDb, query: embQ ?? undefined }));
      seconds.eval = secondsSince(t0);
      if (queries) {
        const loaded = await loadModelFolder(trainDir);
        const { model, manifest: mm } = loaded;
        const search = { k: Math.min(100, database.rows), metric: 'euclidean' as const, engine: o.engine };
        // The online cost: embedding the queries (from their image files in image mode) + search.
        const embedQueries = async (count: number) =>
          queryPaths ? (await embedImageList(loaded, queryPaths.slice(0, count), { crops: crops?.slice(0, count) })).matrix : embedDescriptors(model, mm, rowBlock(queries, 0, count), queriesFile);
        try {
          await exactSearch(embDb, await embedQueries(1), search); // warm-up
          const t1 = performance.now();
          await exactSearch(embDb, await embedQueries(queries.rows), search);
          querySeconds = secondsSince(t1);
        } finally {
          model.dispose();
        }
      }
    }
    const train = JSON.parse(readFileSync(join(trainDir, 'train.json'), 'utf8')) as { history: EpochRecord[]; seconds?: number; selection?: Record<string, unknown> };
    if (seconds.train === undefined && train.seconds !== undefined) seconds.train = train.seconds;
    const verdict = (train.selection?.verdict ?? null) as Verdict | null;
    const kept = verdict === null || verdict.better;
    if (train.selection) stage(it, 'select', selectionLine(train.selection));
    const record: IterationRecord = {
      iteration: it, metrics, ...(pr ? { pr } : {}), querySeconds, queries: queries?.rows ?? null, seconds, loss: train.history.map((h) => h.loss),
      ...(train.selection ? { selection: train.selection } : {}), kept,
    };
    writeFileAtomic(join(dir, 'eval.json'), JSON.stringify(record, null, 2) + '\n');
    manifest.iterations.push(record);
    save();
    if (!kept) break;
  }
  manifest.result = await runResult(o.out, manifest, databaseFile, (m) => stage(0, 'result', m));
  manifest.status = 'done';
  save();
  return manifest;
}

/** One line on what training chose and kept: k, the kept epoch, why it stopped, the verdict. */
function selectionLine(sel: Record<string, unknown>): string {
  const best = sel.best as { epoch: number } | null;
  const v = sel.verdict as Verdict | null;
  const parts = [`k ${String(sel.k)} (${sel.kChosen === 'auto' ? `auto: relevant set ≈ ${String((sel.relevantSetEstimate as { median: number }).median)}` : 'given'}), m0 ${String(sel.m0)}`];
  if (sel.stopped) parts.push(String(sel.stopped)); // it names what was kept
  else if (best) parts.push(`kept ${best.epoch < 0 ? 'the starting weights' : `epoch ${best.epoch + 1}`}`);
  if (v) parts.push(`agreement with the teacher on ${String(sel.heldOut)} held-out items ${v.model} vs input ${v.input} (${v.better ? 'better' : 'not better'})`);
  return parts.join('; ');
}

/**
 * The run's result: the last iteration the label-free verdict kept, or the input (iteration 0)
 * when the first one was not better than it. Says so in a warning when an iteration was not kept.
 */
async function runResult(out: string, manifest: RunManifest, databaseFile: string, warn: (message: string) => void): Promise<RunResult> {
  const kept = manifest.iterations.filter((r) => r.kept !== false);
  const rejected = manifest.iterations.find((r) => r.kept === false);
  const last = kept.at(-1);
  if (rejected) {
    const v = rejected.selection?.verdict as Verdict;
    warn(
      `iteration ${rejected.iteration}'s model agrees with its teacher on the ${String(rejected.selection?.heldOut)} held-out items no better than its input ` +
        `(${v.model} vs ${v.input}, gain ${v.gain} ± ${v.standardError}); keeping ${last ? `iteration ${last.iteration}` : 'the input descriptors'} as the result`,
    );
  }
  const reason = rejected
    ? `iteration ${rejected.iteration} did not beat its input by the label-free verdict`
    : manifest.iterations.every((r) => r.selection?.verdict == null)
      ? 'the last iteration (no held-out items: nothing was checked)'
      : 'every iteration beat its input by the label-free verdict';
  if (!last) return { iteration: 0, reason, model: null, embeddings: databaseFile };
  const dir = join(out, `iter-${last.iteration}`);
  return { iteration: last.iteration, reason, model: join(dir, 'train', 'model'), embeddings: join(dir, 'emb') };
}
