import { afterEach, beforeEach, vi } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
/** The shared data folder next to the project (absent on users' machines). */
export const SHARED = resolve(ROOT, '..', 'shared');
export const HAS_SHARED = existsSync(join(SHARED, 'data'));
export const SHARED_SKIP_MESSAGE = `../shared is absent (${SHARED}): skipping tests on shared data`;
if (!HAS_SHARED) console.warn(SHARED_SKIP_MESSAGE);

/** A fresh temporary folder, removed after the callback. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'ddistill-test-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Seeded pseudo-random numbers (mulberry32), uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gaussian samples by Box–Muller. */
export function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** `n` noisy photos-to-be of 4 colour classes (image i: class i % 4), 40 × 30 px. */
export async function colourImages(dir: string, n: number): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const r = rng(7);
  const base = [[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]];
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const data = Buffer.alloc(40 * 30 * 3);
    for (let p = 0; p < 40 * 30; p++) for (let k = 0; k < 3; k++) data[p * 3 + k] = Math.round(base[i % 4]![k]! * (0.6 + 0.4 * r()));
    const path = join(dir, `${String(i).padStart(2, '0')}.jpg`);
    await sharp(data, { raw: { width: 40, height: 30, channels: 3 } }).jpeg().toFile(path);
    paths.push(path);
  }
  return paths;
}

/**
 * Class mAP (%) of Euclidean search of `q` in `db`, by brute force: every distance, a full sort
 * (ties by index), mean over queries of the precision at each same-label item. Independent of
 * src/eval and src/search, to check the figures the pipeline reports.
 */
export function bruteClassMap(db: { rows: number; cols: number; data: Float32Array }, q: { rows: number; cols: number; data: Float32Array }, dbLabels: ArrayLike<number>, qLabels: ArrayLike<number>): number {
  let sum = 0;
  let counted = 0;
  for (let i = 0; i < q.rows; i++) {
    const d = Array.from({ length: db.rows }, (_, j) => {
      let s = 0;
      for (let c = 0; c < db.cols; c++) s += (q.data[i * q.cols + c]! - db.data[j * db.cols + c]!) ** 2;
      return [s, j] as const;
    }).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let hits = 0;
    let ap = 0;
    d.forEach(([, j], rank) => {
      if (dbLabels[j] === qLabels[i]) ap += ++hits / (rank + 1);
    });
    if (hits === 0) continue;
    sum += ap / hits;
    counted++;
  }
  return (100 * sum) / counted;
}

/** Rows scaled to unit length (zero rows stay zero). */
export function unitRows(m: { rows: number; cols: number; data: Float32Array }): { rows: number; cols: number; data: Float32Array } {
  const data = new Float32Array(m.data.length);
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    for (let c = 0; c < m.cols; c++) s += m.data[i * m.cols + c]! ** 2;
    const n = Math.sqrt(s) || 1;
    for (let c = 0; c < m.cols; c++) data[i * m.cols + c] = m.data[i * m.cols + c]! / n;
  }
  return { rows: m.rows, cols: m.cols, data };
}

/**
 * Captures what the CLI writes: `out` and `err` hold this test's stdout and stderr chunks (reset
 * before each test, the streams restored after it). Call at the top of a test file.
 */
export function captureOutput(): { out: string[]; err: string[] } {
  const cap = { out: [] as string[], err: [] as string[] };
  beforeEach(() => {
    cap.out.length = 0;
    cap.err.length = 0;
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => (cap.out.push(String(s)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (cap.err.push(String(s)), true));
  });
  afterEach(() => vi.restoreAllMocks());
  return cap;
}
