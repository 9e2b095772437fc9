/**
 * The `diffuse` stage on files: descriptors (.npy) in; `indices.npy` (int32 rows × K),
 * `scores.npy` (float32) and `diffusion.json` (method, parameters, timings) out.
 */
import { join } from 'node:path';
import type { EngineChoice } from '../backend/dense.js';
import { packageVersion } from '../version.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { ensureOutputFolder } from '../io/paths.js';
import { writeNpy } from '../io/npy.js';
import { readMatrix } from '../matrix.js';
import { diffuse, DIFFUSION_DEFAULTS, type DiffusionMethod, type DiffusionParams } from './index.js';
import { CAS_PRESETS } from './cas.js';

export interface DiffuseFilesOptions {
  readonly method: DiffusionMethod;
  readonly db: string;
  readonly query?: string;
  readonly out: string;
  readonly topK?: number;
  readonly params?: DiffusionParams;
  /** CAS only: 'default' or 'small'. */
  readonly preset?: keyof typeof CAS_PRESETS;
  readonly normalize?: boolean;
  readonly engine?: EngineChoice;
  readonly onProgress?: (stage: string, done: number, total: number) => void;
}

export interface DiffusionManifest {
  readonly method: DiffusionMethod;
  readonly mode: 'query' | 'self';
  readonly db: string;
  readonly query: string | null;
  readonly rows: number;
  readonly databaseSize: number;
  readonly k: number;
  readonly order: 'ascending' | 'descending';
  readonly parameters: Record<string, unknown>;
  readonly info: Record<string, unknown>;
  readonly timings: Record<string, number>;
  readonly seconds: number;
  readonly version: string;
}


/** Reads parameters given as a JSON file or inline JSON; unknown names are an error. */
export function parseParams(method: DiffusionMethod, text: string, source: string): DiffusionParams {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${source}: invalid JSON (${(err as Error).message}); give an object such as {"k1": 5}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${source}: parameters must be a JSON object`);
  const known = Object.keys(DIFFUSION_DEFAULTS[method]);
  for (const [key, value] of Object.entries(raw)) {
    if (!known.includes(key)) throw new UserError(`${source}: unknown ${method} parameter '${key}'; known: ${known.join(', ')}`);
    const expected = typeof (DIFFUSION_DEFAULTS[method] as unknown as Record<string, unknown>)[key];
    if (value !== null && expected !== 'object' && typeof value !== expected) {
      throw new UserError(`${source}: parameter '${key}' must be a ${expected}, got ${JSON.stringify(value)}`);
    }
  }
  return raw as DiffusionParams;
}

/** Runs a diffusion between `.npy` files and writes the ranked neighbours into `out`. */
export async function diffuseFiles(o: DiffuseFilesOptions): Promise<DiffusionManifest> {
  const started = performance.now();
  ensureOutputFolder(o.out);
  const db = readMatrix(o.db);
  const queries = o.query ? readMatrix(o.query) : null;
  if (queries && queries.cols !== db.cols) {
    throw new UserError(`${o.query} has ${queries.cols} dimensions but ${o.db} has ${db.cols}; use descriptors from the same extractor`);
  }
  if (o.preset && o.method !== 'cas') throw new UserError(`--preset applies to CAS only, not ${o.method}`);
  const params = { ...(o.preset ? CAS_PRESETS[o.preset] : {}), ...(o.params ?? {}) };
  const res = await diffuse(o.method, db, queries, params, {
    topK: o.topK,
    normalize: o.normalize,
    engine: o.engine,
    onProgress: o.onProgress,
  });
  const manifest: DiffusionManifest = {
    method: o.method,
    mode: res.mode,
    db: o.db,
    query: o.query ?? null,
    rows: res.rows,
    databaseSize: db.rows,
    k: res.k,
    order: res.order,
    parameters: { ...DIFFUSION_DEFAULTS[o.method], ...params, normalize: o.normalize ?? true },
    info: res.info ?? {},
    timings: res.timings,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
    version: packageVersion(),
  };
  writeNpy(join(o.out, 'indices.npy'), { dtype: 'int32', shape: [res.rows, res.k], data: res.indices });
  writeNpy(join(o.out, 'scores.npy'), { dtype: 'float32', shape: [res.rows, res.k], data: res.scores });
  // Written last: its presence says the folder is complete.
  writeFileAtomic(join(o.out, 'diffusion.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
