/**
 * What a bootstrap run records in its manifest.json: per-iteration metrics and selection, the
 * comparisons, the result (src/pipeline/bootstrap.ts writes it; the report renders it).
 */
import type { DiffusionMethod } from '../diffusion/index.js';

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

/** One features pass: photos, wall time, the engine that ran the network, rows found in the cache. */
export interface FeatureRecord {
  readonly photos: number;
  readonly seconds: number;
  readonly engine: string;
  readonly cached: number;
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
  /** Image mode: how the base descriptors were extracted (db, queries). */
  features?: Record<string, FeatureRecord>;
  seconds: number;
}
