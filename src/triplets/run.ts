/** The `triplets` stage on files: a self-ranking folder in; triplets.npy, margins.npy, triplets.json out. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readNpy, writeNpy } from '../io/npy.js';
import { fileOrInFolder } from '../io/paths.js';
import { mineTriplets, TRIPLET_DEFAULTS, type TripletOptions } from './mining.js';

export interface TripletFilesOptions extends Partial<TripletOptions> {
  /** A `diffuse` output folder (self-ranking) or its indices.npy. */
  readonly ranks: string;
  readonly out: string;
}

export interface TripletManifest {
  readonly source: string;
  readonly anchors: number;
  readonly count: number;
  readonly k: number;
  readonly kRequested: number;
  readonly m0: number;
  readonly perAnchor: number;
  readonly seed: number;
}

/** Mines triplets from a self-ranking on disk and writes them into `out`. */
export function tripletFiles(o: TripletFilesOptions): TripletManifest {
  const file = fileOrInFolder(o.ranks, 'indices.npy');
  const manifestPath = join(dirname(file), 'diffusion.json');
  if (existsSync(manifestPath)) {
    const mode = (JSON.parse(readFileSync(manifestPath, 'utf8')) as { mode?: string }).mode;
    if (mode === 'query') {
      throw new UserError(`${manifestPath}: this is a query re-ranking; triplets need a database self-ranking (run ddistill diffuse without --query)`);
    }
  }
  const arr = readNpy(file);
  if (arr.shape.length !== 2 || (arr.dtype !== 'int32' && arr.dtype !== 'int64')) {
    throw new UserError(`${file}: expected int32 neighbour lists (items × K), got ${arr.dtype} of shape (${arr.shape.join(', ')})`);
  }
  const [rows] = arr.shape as [number, number];
  const idx = arr.data instanceof Int32Array ? arr.data : Int32Array.from(arr.data as BigInt64Array, (v) => Number(v));
  const opts = { ...TRIPLET_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as TripletOptions;
  const t = mineTriplets(idx, rows, opts);
  writeNpy(join(o.out, 'triplets.npy'), { dtype: 'int32', shape: [t.count, 3], data: t.items });
  writeNpy(join(o.out, 'margins.npy'), { dtype: 'float32', shape: [t.count], data: t.margins });
  const manifest: TripletManifest = {
    source: file, anchors: rows, count: t.count, k: t.k, kRequested: opts.k, m0: opts.m0, perAnchor: opts.perAnchor, seed: opts.seed,
  };
  writeFileAtomic(join(o.out, 'triplets.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
