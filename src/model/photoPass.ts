/**
 * One pass of an image network over photo files (`features`, `embed`, `index`, `query`, and
 * bootstrap's features): photos are decoded a window ahead on sharp's threads while the network
 * runs on the previous window, photos of one shape run as one batch, and rows already in a
 * feature cache are not computed again. Unreadable photos are reported by name and either skipped
 * or fatal, never silently dropped.
 */
import { UserError } from '../errors.js';
import { loadImageBytes, type ImageBytes, type ImageOptions } from '../io/images.js';
import type { Matrix } from '../matrix.js';
import { photoKey, type FeatureCache } from './featureCache.js';
import type { PhotoRunner } from './photoRunner.js';

export interface PhotoPassOptions extends ImageOptions {
  readonly crops?: readonly (readonly number[] | null)[];
  readonly skipBad?: boolean;
  readonly cache?: FeatureCache;
  /** Photos decoded ahead (default 32) and stacked in one batch at most (default 16). */
  readonly window?: number;
  readonly batch?: number;
  readonly onSkip?: (path: string, message: string) => void;
  /** Photos done (computed, found in the cache or skipped) of all. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface PhotoPassResult {
  /** L2-normalised rows of the readable photos, in input order. */
  readonly matrix: Matrix;
  readonly kept: string[];
  readonly skipped: string[];
  /** Photos whose rows came from the cache. */
  readonly cached: number;
}

type Decoded = { index: number; photo: ImageBytes } | { index: number; error: Error };

/** Runs `runner` over `paths`: see the file's comment. */
export async function photoPass(runner: PhotoRunner, paths: readonly string[], o: PhotoPassOptions): Promise<PhotoPassResult> {
  const rows: (Float32Array | null)[] = new Array(paths.length).fill(null);
  const keys = paths.map((p, i) => (o.cache ? photoKey(p, o.crops?.[i] ?? o.crop) : null));
  const todo: number[] = [];
  paths.forEach((_, i) => {
    const hit = o.cache?.get(keys[i]!);
    if (hit) rows[i] = hit;
    else todo.push(i);
  });
  const cached = paths.length - todo.length;
  const skipped = new Set<number>();
  let done = cached;
  o.onProgress?.(done, paths.length);

  const window = o.window ?? 32;
  const decode = (start: number): Promise<Decoded[]> =>
    Promise.all(
      todo.slice(start, start + window).map((index) =>
        loadImageBytes(paths[index]!, { ...o, crop: o.crops?.[index] ?? o.crop }).then(
          (photo) => ({ index, photo }),
          (error: Error) => ({ index, error }),
        ),
      ),
    );
  let next = todo.length > 0 ? decode(0) : null;
  for (let start = 0; next; start += window) {
    const current = await next;
    next = start + window < todo.length ? decode(start + window) : null;
    for (const d of current) {
      if (!('error' in d)) continue;
      if (!o.skipBad) throw d.error instanceof UserError ? d.error : new UserError(`${paths[d.index]}: ${d.error.message}`);
      skipped.add(d.index);
      o.onSkip?.(paths[d.index]!, d.error.message);
    }
    for (const group of byShape(current.filter((d): d is Extract<Decoded, { photo: ImageBytes }> => 'photo' in d), o.batch ?? 16)) {
      const out = await runner.run(group.map((d) => d.photo));
      group.forEach((d, i) => {
        const row = out.slice(i * runner.dim, (i + 1) * runner.dim);
        rows[d.index] = row;
        o.cache?.add(keys[d.index]!, row);
      });
    }
    done += current.length;
    o.onProgress?.(done, paths.length);
  }
  o.cache?.flush();

  const kept = paths.map((_, i) => i).filter((i) => !skipped.has(i));
  const data = new Float32Array(kept.length * runner.dim);
  kept.forEach((i, r) => data.set(rows[i]!, r * runner.dim));
  return { matrix: { rows: kept.length, cols: runner.dim, data }, kept: kept.map((i) => paths[i]!), skipped: [...skipped].map((i) => paths[i]!), cached };
}

/** The decoded photos grouped by height × width (first-seen order), in groups of `batch` at most. */
function byShape<T extends { photo: ImageBytes }>(decoded: readonly T[], batch: number): T[][] {
  const groups = new Map<string, T[]>();
  for (const d of decoded) {
    const key = `${d.photo.height}x${d.photo.width}`;
    const group = groups.get(key);
    if (group) group.push(d);
    else groups.set(key, [d]);
  }
  return [...groups.values()].flatMap((g) => Array.from({ length: Math.ceil(g.length / batch) }, (_, i) => g.slice(i * batch, (i + 1) * batch)));
}
