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
import { writeFileAtomic } from '../io/atomic.js';
import type { RunManifest } from '../report/manifest.js';
import { packageVersion } from '../version.js';
import { definingOptions, planBootstrap, type BootstrapOptions } from './plan.js';
import { RunFolder } from './runFolder.js';
import { comparisonStage, embeddingStage, evaluationStage, featuresStage, iterationRecord, resultStage, teacherStage, trainingItemsStage, trainingStage, type Run } from './stages.js';

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
  const run: Run = { plan, folder, stage: (iteration, name, message) => plan.hooks.onStage?.(iteration, name, message) };

  const data = await featuresStage(run);
  await comparisonStage(run, data);
  const items = trainingItemsStage(run, data);
  for (let it = 1; it <= plan.iterations; it++) {
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
