/**
 * The stages of a bootstrap run (src/pipeline/bootstrap.ts), in order: features (image mode),
 * comparisons (baseline, diffusion re-ranking), the training items, then per iteration teacher →
 * training → embedding → evaluation, and the result. Each skips itself when its marker file (or
 * manifest entry) says it is done, so a resumed run ends as an uninterrupted one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../backend/tfjs.js';
import { diffuse } from '../diffusion/index.js';
import { diffuseFiles } from '../diffusion/run.js';
import { UserError } from '../errors.js';
import { ranking as rankingOf } from '../eval/ranking.js';
import { evaluateFiles, reportFigures, type EvalFilesOptions } from '../eval/run.js';
import { writeFileAtomic } from '../io/atomic.js';
import { sizeLabel } from '../io/images.js';
import { readNpy, writeNpy } from '../io/npy.js';
import { l2NormalizeNamed, readMatrix, rowBlock, writeMatrix, type Matrix } from '../matrix.js';
import { DESCRIPTOR_HEAD, embedRows } from '../model/head.js';
import { loadModelFolder } from '../model/io.js';
import { embedDescriptors, embedFiles, embedImageList, featureFiles, featureListFile } from '../model/run.js';
import { exactSearch } from '../search/exact.js';
import { seededOrder } from '../train/agreement.js';
import { trainImages } from '../train/images.js';
import type { EpochRecord } from '../train/records.js';
import { trainFiles } from '../train/descriptors.js';
import type { Verdict } from '../train/selection.js';
import { RANGE_RULE } from '../triplets/range.js';
import type { IterationRecord, Measured, RunResult } from '../report/manifest.js';
import type { BootstrapPlan } from './plan.js';
import { secondsSince, type RunFolder } from './runFolder.js';

/** What every stage reads: the plan resolved from the options, and the run folder. */
export interface Run {
  readonly plan: BootstrapPlan;
  readonly folder: RunFolder;
  stage(iteration: number, name: string, message: string): void;
}

/** The base descriptors: given (--db), or extracted from the images (features/). */
export interface RunData {
  readonly database: Matrix;
  readonly databaseFile: string;
  readonly queries: Matrix | null;
  readonly queriesFile?: string;
}

/** The items trained on: all, or a seeded subset (--train-fraction). */
export interface TrainingItems {
  readonly subset: Int32Array | null;
  /** Their descriptors (.npy) and, in image mode, their image list. */
  readonly db: string;
  readonly images?: string;
}

/** Mean interpolated precision–recall and metrics of a ranking, by the run's ground truth. */
async function evaluate(run: Run, source: Pick<EvalFilesOptions, 'db' | 'query' | 'ranking'>): Promise<{ metrics: Record<string, number>; pr?: number[] }> {
  const rep = await evaluateFiles({ ...source, metric: 'euclidean', engine: run.plan.engine, curve: true, ...run.plan.gt } as EvalFilesOptions);
  return { metrics: reportFigures(rep), pr: rep.pr };
}

export function rowsOf(m: Matrix, rows: Int32Array): Matrix {
  const data = new Float32Array(rows.length * m.cols);
  rows.forEach((r, i) => data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return { rows: rows.length, cols: m.cols, data };
}

/** Seeded subset of round(f·n) items (at least 2), in increasing order. */
export function trainingSubset(n: number, fraction: number, seed: number): Int32Array {
  const size = Math.max(2, Math.round(fraction * n));
  return seededOrder(n, (seed ^ 0x2545f491) >>> 0).subarray(0, size).sort();
}

/** Features: image mode's base descriptors from the backbone, before any training. */
export async function featuresStage(run: Run): Promise<RunData> {
  const { plan, folder } = run;
  let databaseFile = plan.sources.db!;
  let queriesFile = plan.sources.queries;
  if (plan.image) {
    const image = plan.image;
    databaseFile = folder.path('features', 'db.npy');
    queriesFile = plan.queryPaths ? folder.path('features', 'queries.npy') : undefined;
    const extract = async (name: 'db' | 'queries', images: string, out: string, gnd?: string) => {
      if (existsSync(featureListFile(out))) return;
      run.stage(0, 'features', `${image.backbone} features of ${images} (${sizeLabel(image.size, image.resize)})`);
      const r = await featureFiles({ images, out, crops: gnd, backbone: image.backbone, cut: image.cut, weights: image.weights, partialWeights: image.partialWeights, scale: image.scale, size: image.size, resize: image.resize, backend: plan.backend, onProgress: plan.hooks.onImages });
      folder.manifest.features = { ...folder.manifest.features, [name]: { photos: r.rows, seconds: r.seconds, engine: r.engine, cached: r.cached } };
      folder.save();
    };
    await extract('db', plan.sources.images!, databaseFile);
    if (plan.queryPaths) await extract('queries', plan.sources.queryImages!, queriesFile!, plan.crops ? plan.gt.gnd : undefined);
  }
  const database = plan.database ?? readMatrix(databaseFile);
  const queries = queriesFile ? readMatrix(queriesFile) : null;
  if (queries && queries.cols !== database.cols) throw new UserError(`${queriesFile} has ${queries.cols} dimensions but ${databaseFile} has ${database.cols}; use descriptors from the same extractor`);
  return { database, databaseFile, queries, queriesFile };
}

/** Comparisons: Euclidean search on the input descriptors, and diffusion query re-ranking. */
export async function comparisonStage(run: Run, data: RunData): Promise<void> {
  const { plan, folder } = run;
  const manifest = folder.manifest;
  const unit = (m: Matrix, file: string) => (plan.normalize ? l2NormalizeNamed(m, file) : m);
  const { database, databaseFile, queries, queriesFile } = data;
  if (plan.selfBaseline && !manifest.baseline) {
    // No queries: the database items query it (N-S counts each item as its own first result).
    run.stage(0, 'baseline', 'Euclidean search of the database by its own items');
    manifest.baseline = { ...(await evaluate(run, { db: unit(database, databaseFile) })), querySeconds: null, queries: null };
    folder.save();
  }
  if (plan.compare && !manifest.baseline) {
    run.stage(0, 'baseline', 'Euclidean search on the input descriptors');
    const d = unit(database, databaseFile);
    const q = unit(queries!, queriesFile!);
    const search = { k: Math.min(100, database.rows), metric: 'euclidean' as const, engine: plan.engine };
    await exactSearch(d, rowBlock(q, 0, 1), search); // warm-up: engine start-up is not query time
    const t0 = performance.now();
    await exactSearch(d, q, search);
    const querySeconds = secondsSince(t0);
    manifest.baseline = { ...(await evaluate(run, { db: d, query: q })), querySeconds, queries: q.rows };
    folder.save();
  }
  if (plan.compare && !manifest.reranking) {
    run.stage(0, 'reranking', `${plan.method} query re-ranking of the ${queries!.rows} queries`);
    const t0 = performance.now();
    const res = await diffuse(plan.method, database, queries, plan.params, { topK: database.rows, normalize: plan.normalize, engine: plan.engine });
    const querySeconds = secondsSince(t0);
    const r = rankingOf(res.indices, res.rows, database.rows);
    manifest.reranking = { method: plan.method, ...(await evaluate(run, { ranking: r })), querySeconds, queries: queries!.rows };
    folder.save();
  }
}

/** The training items: all of them, or the seeded subset written to subset/. */
export function trainingItemsStage(run: Run, data: RunData): TrainingItems {
  const { plan, folder } = run;
  if (plan.fraction >= 1) return { subset: null, db: data.databaseFile, images: plan.sources.images };
  if (!folder.has('subset', 'db.npy')) {
    const subset = trainingSubset(data.database.rows, plan.fraction, plan.options.seed);
    writeNpy(folder.path('subset', 'indices.npy'), { dtype: 'int32', shape: [subset.length], data: subset });
    if (plan.paths) writeFileAtomic(folder.path('subset', 'images.txt'), Array.from(subset, (i) => plan.paths![i]!).join('\n') + '\n');
    writeMatrix(folder.path('subset', 'db.npy'), rowsOf(data.database, subset));
  }
  const subset = readNpy(folder.path('subset', 'indices.npy')).data as Int32Array;
  return { subset, db: folder.path('subset', 'db.npy'), images: plan.paths ? folder.path('subset', 'images.txt') : undefined };
}

/** Teacher: the diffusion self-ranking of the training items' current representation (or --ranks). */
export async function teacherStage(run: Run, items: TrainingItems, it: number, seconds: Record<string, number>): Promise<string> {
  const { plan, folder } = run;
  if (it === 1 && plan.ranks !== undefined) return plan.ranks;
  const teacher = folder.iteration(it, 'teacher');
  if (folder.has(`iter-${it}`, 'teacher', 'diffusion.json')) return teacher;
  let input = items.db;
  if (it > 1) {
    input = folder.iteration(it - 1, 'emb', 'db.npy');
    if (items.subset) {
      const previous = input;
      input = folder.iteration(it, 'teacher-input.npy');
      writeMatrix(input, rowsOf(readMatrix(previous), items.subset));
    }
  }
  run.stage(it, 'diffuse', `${plan.method} self-ranking of ${folder.manifest.trainItems} items (${it === 1 ? 'input descriptors' : `embeddings of iteration ${it - 1}`})`);
  const t0 = performance.now();
  const k = plan.options.triplets.k;
  await diffuseFiles({ method: plan.method, db: input, out: teacher, topK: plan.topK ?? (k === 'auto' ? RANGE_RULE.scan : k), params: plan.params, engine: plan.engine });
  seconds.diffuse = secondsSince(t0);
  return teacher;
}

/** Training: triplets from the teacher, continuing from the previous iteration's weights. */
export async function trainingStage(run: Run, data: RunData, items: TrainingItems, teacher: string, it: number, seconds: Record<string, number>): Promise<string> {
  const { plan, folder } = run;
  const { onStep, onEpoch } = plan.hooks;
  const trainDir = folder.iteration(it, 'train');
  if (folder.has(`iter-${it}`, 'train', 'model', 'manifest.json')) return trainDir;
  const resume = folder.has(`iter-${it}`, 'train', 'checkpoint', 'checkpoint.json');
  run.stage(it, 'train', resume ? 'training (resumed from its checkpoint)' : 'training');
  const t0 = performance.now();
  const initFrom = it > 1 ? folder.iteration(it - 1, 'train') : undefined;
  if (plan.image) {
    await trainImages({
      images: items.images, ...plan.image, ranks: teacher, out: trainDir, head: plan.head, train: plan.options, selection: plan.selection, backend: plan.backend, workers: plan.workers, resume, initFrom,
      features: plan.frozenBackbone ? (items.subset ? rowsOf(data.database, items.subset) : data.database) : undefined,
      onStep, onEpoch, onStage: (m: string) => run.stage(it, 'train', m),
    });
  } else {
    await trainFiles({
      db: items.db, ranks: teacher, out: trainDir, head: plan.head, train: plan.options, selection: plan.selection, normalize: plan.normalize, backend: plan.backend, engine: plan.engine,
      workers: plan.workers, resume, initFrom, onStep, onEpoch, onStage: (m: string) => run.stage(it, 'train', m),
    });
  }
  seconds.train = secondsSince(t0);
  return trainDir;
}

/** Embedding: all database items and the queries, with the iteration's model. */
export async function embeddingStage(run: Run, data: RunData, trainDir: string, it: number, seconds: Record<string, number>): Promise<string> {
  const { plan, folder } = run;
  const embDir = folder.iteration(it, 'emb');
  if (folder.has(`iter-${it}`, 'emb', 'embed.json')) return embDir;
  const { database, queries } = data;
  run.stage(it, 'embed', `embedding ${database.rows} database items${queries ? ` and ${queries.rows} queries` : ''}`);
  const t0 = performance.now();
  if (plan.frozenBackbone) await embedFromFeatures(trainDir, embDir, database, queries);
  else if (plan.image) await embedImageRun(trainDir, embDir, plan.paths!, plan.queryPaths, plan.crops, plan.hooks.onImages);
  else await embedFiles({ model: trainDir, db: data.databaseFile, queries: data.queriesFile, out: embDir, backend: plan.backend });
  seconds.embed = secondsSince(t0);
  return embDir;
}

/** Evaluation and query latency (embedding the queries + exact Euclidean search). */
export async function evaluationStage(run: Run, data: RunData, trainDir: string, embDir: string, it: number, seconds: Record<string, number>): Promise<Omit<Measured, 'queries'>> {
  const { plan } = run;
  if (!plan.hasGt) return { metrics: {}, querySeconds: null };
  run.stage(it, 'eval', 'evaluation');
  const t0 = performance.now();
  const embDb = readMatrix(join(embDir, 'db.npy'));
  const { queries, queriesFile } = data;
  const embQ = queries ? readMatrix(join(embDir, 'queries.npy')) : null;
  const { metrics, pr } = await evaluate(run, { db: embDb, query: embQ ?? undefined });
  seconds.eval = secondsSince(t0);
  if (!queries) return { metrics, ...(pr ? { pr } : {}), querySeconds: null };
  const loaded = await loadModelFolder(trainDir);
  const { model, manifest } = loaded;
  const search = { k: Math.min(100, data.database.rows), metric: 'euclidean' as const, engine: plan.engine };
  // The online cost: embedding the queries (from their image files in image mode) + search.
  const embedQueries = async (count: number) =>
    plan.queryPaths
      ? (await embedImageList(loaded, plan.queryPaths.slice(0, count), { crops: plan.crops?.slice(0, count) })).matrix
      : embedDescriptors(model, manifest, rowBlock(queries, 0, count), queriesFile);
  try {
    await exactSearch(embDb, await embedQueries(1), search); // warm-up
    const t1 = performance.now();
    await exactSearch(embDb, await embedQueries(queries.rows), search);
    return { metrics, ...(pr ? { pr } : {}), querySeconds: secondsSince(t1) };
  } finally {
    model.dispose();
  }
}

/** The iteration's record: its figures, timings, loss curve, selection and whether it is kept. */
export function iterationRecord(run: Run, data: RunData, measured: Omit<Measured, 'queries'>, trainDir: string, it: number, seconds: Record<string, number>): IterationRecord {
  const train = JSON.parse(readFileSync(join(trainDir, 'train.json'), 'utf8')) as { history: EpochRecord[]; seconds?: number; selection?: Record<string, unknown> };
  if (seconds.train === undefined && train.seconds !== undefined) seconds.train = train.seconds;
  const verdict = (train.selection?.verdict ?? null) as Verdict | null;
  const kept = verdict === null || verdict.better;
  if (train.selection) run.stage(it, 'select', selectionLine(train.selection));
  const record: IterationRecord = {
    iteration: it, ...measured, queries: data.queries?.rows ?? null, seconds, loss: train.history.map((h) => h.loss),
    ...(train.selection ? { selection: train.selection } : {}), kept,
  };
  writeFileAtomic(run.folder.iteration(it, 'eval.json'), JSON.stringify(record, null, 2) + '\n');
  return record;
}

/** One line on what training chose and kept: k, the kept epoch, why it stopped, the verdict. */
function selectionLine(sel: Record<string, unknown>): string {
  const best = sel.best as { epoch: number } | null;
  const v = sel.verdict as Verdict | null;
  const parts = [`k ${String(sel.k)} (${sel.kChosen === 'auto' ? `auto: relevant set ≈ ${String((sel.relevantSetEstimate as { median: number }).median)}` : 'given'}), m0 ${String(sel.m0)}`];
  if (sel.stopped) parts.push(String(sel.stopped)); // it names what was kept
  else if (best) parts.push(`kept ${best.epoch < 0 ? 'the starting weights' : `epoch ${best.epoch + 1}`}`);
  if (v) parts.push(`agreement with the teacher on ${String(sel.heldOut)} held-out items ${verdictFigures(v)} (${v.better ? 'better' : 'not better'})`);
  return parts.join('; ');
}

/** "0.81 vs input 0.80", and the deeper comparison when the first was even. */
function verdictFigures(v: Verdict): string {
  const first = `${v.model} vs input ${v.input}`;
  return v.deeper ? `${first}, even; at the top ${v.deeper.depth}: ${v.deeper.model} vs ${v.deeper.input}` : first;
}

/**
 * The run's result: the last iteration the label-free verdict kept, or the input (iteration 0)
 * when the first one was not better than it. Says so in a warning when an iteration was not kept.
 */
export function resultStage(run: Run, data: RunData): RunResult {
  const manifest = run.folder.manifest;
  const kept = manifest.iterations.filter((r) => r.kept !== false);
  const rejected = manifest.iterations.find((r) => r.kept === false);
  const last = kept.at(-1);
  if (rejected) {
    const v = rejected.selection?.verdict as Verdict;
    run.stage(
      0, 'result',
      `iteration ${rejected.iteration}'s model agrees with its teacher on the ${String(rejected.selection?.heldOut)} held-out items no better than its input ` +
        `(${verdictFigures(v)}; gain ${v.deeper?.gain ?? v.gain} ± ${v.deeper?.standardError ?? v.standardError}); keeping ${last ? `iteration ${last.iteration}` : 'the input descriptors'} as the result`,
    );
  }
  const reason = rejected
    ? `iteration ${rejected.iteration} did not beat its input by the label-free verdict`
    : manifest.iterations.every((r) => r.selection?.verdict == null)
      ? 'the last iteration (no held-out items: nothing was checked)'
      : 'every iteration beat its input by the label-free verdict';
  if (!last) return { iteration: 0, reason, model: null, embeddings: data.databaseFile };
  return { iteration: last.iteration, reason, model: run.folder.iteration(last.iteration, 'train', 'model'), embeddings: run.folder.iteration(last.iteration, 'emb') };
}

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

