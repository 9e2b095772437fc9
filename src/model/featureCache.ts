/**
 * Features kept as they are computed, so that a run stopped half-way (a crash, kill -9, Ctrl-C)
 * resumes without decoding a photo twice. Each part is `part-N.npy` (the rows) and `part-N.json`
 * (written last: the settings and one key per row). A photo's key is its path, its file's size and
 * modification time, and its crop: a photo replaced or edited since is computed again. Parts made
 * with other settings (network, size, …) are ignored.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readMatrix, writeMatrix } from '../matrix.js';

/** Rows written per part at most, and seconds between parts at most. */
const PART_ROWS = 512;
const PART_SECONDS = 20;

/** The key of a photo as it is on disk now, or null when it cannot be read (its decoding reports why). */
export function photoKey(path: string, crop: readonly number[] | null | undefined): string | null {
  try {
    const s = statSync(path);
    return JSON.stringify([path, s.size, s.mtimeMs, crop ?? null]);
  } catch {
    return null;
  }
}

export class FeatureCache {
  private readonly rows = new Map<string, Float32Array>();
  private pending: { key: string; row: Float32Array }[] = [];
  private lastWrite = performance.now();
  private nextPart = 0;

  /** Opens (creating) the cache folder `dir` for features made with `settings`, reading its usable parts. */
  constructor(readonly dir: string, private readonly settings: unknown) {
    mkdirSync(dir, { recursive: true });
    const wanted = JSON.stringify(settings);
    for (const name of readdirSync(dir)) {
      const m = /^part-(\d+)\.json$/.exec(name);
      if (!m) continue;
      this.nextPart = Math.max(this.nextPart, Number(m[1]) + 1);
      try {
        const meta = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { settings: unknown; keys: string[] };
        if (JSON.stringify(meta.settings) !== wanted) continue;
        const matrix = readMatrix(join(dir, `part-${m[1]}.npy`));
        if (matrix.rows !== meta.keys.length) continue;
        meta.keys.forEach((key, i) => this.rows.set(key, matrix.data.slice(i * matrix.cols, (i + 1) * matrix.cols)));
      } catch {
        // A part cut short by a crash: computed again.
      }
    }
  }

  /** How many photos the cache holds. */
  get size(): number {
    return this.rows.size;
  }

  get(key: string | null): Float32Array | undefined {
    return key === null ? undefined : this.rows.get(key);
  }

  /** Keeps a row; parts are written every PART_ROWS rows or PART_SECONDS seconds. */
  add(key: string | null, row: Float32Array): void {
    if (key === null) return;
    this.rows.set(key, row);
    this.pending.push({ key, row });
    if (this.pending.length >= PART_ROWS || performance.now() - this.lastWrite > PART_SECONDS * 1000) this.flush();
  }

  /** Writes the rows not yet on disk as one part. */
  flush(): void {
    this.lastWrite = performance.now();
    if (this.pending.length === 0) return;
    const cols = this.pending[0]!.row.length;
    const data = new Float32Array(this.pending.length * cols);
    this.pending.forEach((p, i) => data.set(p.row, i * cols));
    const part = this.nextPart++;
    writeMatrix(join(this.dir, `part-${part}.npy`), { rows: this.pending.length, cols, data });
    writeFileAtomic(join(this.dir, `part-${part}.json`), JSON.stringify({ settings: this.settings, keys: this.pending.map((p) => p.key) }) + '\n');
    this.pending = [];
  }

  /** Removes the cache folder (once the features are written in full). */
  remove(): void {
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}
