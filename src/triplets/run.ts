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

export interface SelfRanking {
  /** The indices.npy read. */
  readonly file: string;
  /** rows × length neighbour indices, best first, the item itself left out. */
  readonly neighbours: Int32Array;
  readonly rows: number;
  readonly length: number;
  /** The diffusion.json beside it, when there is one. */
  readonly diffusion: Record<string, unknown> | null;
  /** The scores.npy beside it (rows × length, in `order`), when there is one. */
  readonly scores: Float32Array | null;
  readonly order: 'ascending' | 'descending';
}

/** Reads a database self-ranking (a `diffuse` folder without queries, or its indices.npy). */
export function readSelfRanking(ranks: string): SelfRanking {
  const file = fileOrInFolder(ranks, 'indices.npy');
  const manifestPath = join(dirname(file), 'diffusion.json');
  let diffusion: Record<string, unknown> | null = null;
  if (existsSync(manifestPath)) {
    diffusion = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
    if (diffusion.mode === 'query') {
      throw new UserError(`${manifestPath}: this is a query re-ranking; triplets need a database self-ranking (run ddistill diffuse without --queries)`);
    }
  }
  const arr = readNpy(file);
  if (arr.shape.length !== 2 || (arr.dtype !== 'int32' && arr.dtype !== 'int64')) {
    throw new UserError(`${file}: expected int32 neighbour lists (items × K), got ${arr.dtype} of shape (${arr.shape.join(', ')})`);
  }
  const [rows, length] = arr.shape as [number, number];
  const neighbours = arr.data instanceof Int32Array ? arr.data : Int32Array.from(arr.data as BigInt64Array, (v) => Number(v));
  for (let i = 0; i < neighbours.length; i++) {
    const v = neighbours[i]!;
    if (v < 0 || v >= rows) throw new UserError(`${file}: neighbour index ${v} is outside the ${rows} ranked items; is this a self-ranking of this database?`);
    // An item in its own list would become an anchor's "closer" item: triplets that teach nothing.
    const row = Math.floor(i / length);
    if (v === row) throw new UserError(`${file}: row ${row} lists item ${row} itself; a self-ranking leaves each item out (ddistill search --exclude-self, or ddistill diffuse without --queries)`);
  }
  const scoresFile = join(dirname(file), 'scores.npy');
  let scores: Float32Array | null = null;
  if (existsSync(scoresFile)) {
    const s = readNpy(scoresFile);
    if (s.dtype === 'float32' && s.shape.join() === arr.shape.join()) scores = s.data as Float32Array;
  }
  const order = diffusion?.order === 'descending' ? 'descending' : 'ascending';
  return { file, neighbours, rows, length, diffusion, scores, order };
}

/** Mines triplets from a self-ranking on disk and writes them into `out`. */
export function tripletFiles(o: TripletFilesOptions): TripletManifest {
  const { file, neighbours: idx, rows } = readSelfRanking(o.ranks);
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
