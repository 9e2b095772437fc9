/**
 * Ground truth: the revisitop `gnd_*.pkl` / `.json` files of revisited Oxford and Paris, class
 * labels (a JSON array or one label per line) and UKBench-style groups.
 */
import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { pyToJs, unpickle } from './pickle.js';

/** One query of a revisited data set; indices are 0-based database positions. */
export interface RevisitedQuery {
  readonly easy: Int32Array;
  readonly hard: Int32Array;
  readonly junk: Int32Array;
  /** Query crop box [x1, y1, x2, y2] in pixels, when given. */
  readonly bbx: readonly number[] | null;
}

export interface RevisitedGroundTruth {
  readonly imlist: readonly string[];
  readonly qimlist: readonly string[];
  readonly gnd: readonly RevisitedQuery[];
}

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UserError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? err}); check the path`);
  }
}

function indexList(v: unknown, path: string, where: string, dbSize: number): Int32Array {
  if (!Array.isArray(v)) throw new UserError(`${path}: ${where} must be a list of database indices`);
  const out = new Int32Array(v.length);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= dbSize) {
      throw new UserError(`${path}: ${where}[${i}] = ${String(x)} is not a database index in 0..${dbSize - 1}`);
    }
    out[i] = x;
  });
  return out;
}

/** Validates revisitop-shaped data ({imlist, qimlist, gnd: [{easy, hard, junk, bbx}]}). */
export function parseRevisitedGroundTruth(raw: unknown, path: string): RevisitedGroundTruth {
  const bad = (why: string) =>
    new UserError(`${path}: not a revisited ground-truth file (${why}); use gnd_roxford5k.pkl/.json from revisitop`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('top level is not a dict');
  const o = raw as Record<string, unknown>;
  if (!Array.isArray(o.gnd)) throw bad("no 'gnd' list");
  if (!Array.isArray(o.imlist)) throw bad("no 'imlist' list");
  const imlist = o.imlist.map(String);
  const qimlist = Array.isArray(o.qimlist) ? o.qimlist.map(String) : o.gnd.map((_, i) => `query_${i}`);
  if (qimlist.length !== o.gnd.length) throw bad(`'qimlist' has ${qimlist.length} names for ${o.gnd.length} queries`);
  const gnd = o.gnd.map((q, i): RevisitedQuery => {
    if (typeof q !== 'object' || q === null) throw bad(`gnd[${i}] is not a dict`);
    const g = q as Record<string, unknown>;
    const list = (name: string) =>
      g[name] === undefined ? new Int32Array(0) : indexList(g[name], path, `gnd[${i}].${name}`, imlist.length);
    const bbx = Array.isArray(g.bbx) && g.bbx.every((x) => typeof x === 'number') ? (g.bbx as number[]) : null;
    if (g.easy === undefined && g.hard === undefined && g.ok === undefined) throw bad(`gnd[${i}] has no 'easy'/'hard' lists`);
    // Old-style (Oxford5k) files have ok/junk only: treat 'ok' as easy.
    return { easy: g.easy === undefined ? list('ok') : list('easy'), hard: list('hard'), junk: list('junk'), bbx };
  });
  return { imlist, qimlist, gnd };
}

/** The benchmarks whose ground truth ships in the package's data/ folder (data/README.md). */
export const NAMED_GROUND_TRUTH = ['roxford5k', 'rparis6k'] as const;

/**
 * A ground-truth argument as a file path: a benchmark name (`roxford5k`, `rparis6k`) that is not a
 * file here names the copy in the package's data/revisitop/; anything else is a path.
 */
export function groundTruthPath(nameOrPath: string): string {
  const name = nameOrPath.toLowerCase();
  if ((NAMED_GROUND_TRUTH as readonly string[]).includes(name) && !existsSync(nameOrPath)) {
    return fileURLToPath(new URL(`../../data/revisitop/gnd_${name}.pkl`, import.meta.url));
  }
  if (extname(nameOrPath) === '' && !existsSync(nameOrPath)) {
    throw new UserError(`${nameOrPath}: no such ground-truth file or benchmark; give a gnd_*.pkl/.json file or one of ${NAMED_GROUND_TRUTH.join(', ')}`);
  }
  return nameOrPath;
}

/**
 * Reads a revisited ground-truth file, `.pkl` (revisitop pickle) or `.json`, or the shipped copy
 * of a named benchmark (groundTruthPath).
 */
export function loadRevisitedGroundTruth(nameOrPath: string): RevisitedGroundTruth {
  const path = groundTruthPath(nameOrPath);
  const bytes = readBytes(path);
  const isPickle = extname(path).toLowerCase() === '.pkl' || bytes[0] === 0x80;
  let raw: unknown;
  if (isPickle) {
    raw = pyToJs(unpickle(bytes, path));
  } else {
    try {
      raw = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new UserError(`${path}: invalid JSON (${(err as Error).message}); give a .pkl or a valid .json file`);
    }
  }
  return parseRevisitedGroundTruth(raw, path);
}

/** Class labels mapped to dense ids, with the original names. */
export interface Labels {
  readonly ids: Int32Array;
  readonly names: readonly string[];
}

/** Maps arbitrary label values to dense ids 0..m−1 (in order of first appearance). */
export function labelsFrom(values: readonly (string | number)[], dictionary = new Map<string, number>()): Labels {
  const ids = new Int32Array(values.length);
  values.forEach((v, i) => {
    const key = String(v);
    let id = dictionary.get(key);
    if (id === undefined) {
      id = dictionary.size;
      dictionary.set(key, id);
    }
    ids[i] = id;
  });
  return { ids, names: [...dictionary.keys()] };
}

/** Reads raw label values: a JSON array, or one label per line (blank lines ignored at the end). */
export function readLabelValues(path: string): (string | number)[] {
  const text = readBytes(path).toString('utf8');
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch (err) {
      throw new UserError(`${path}: invalid JSON array (${(err as Error).message}); give a JSON array or one label per line`);
    }
    if (!Array.isArray(arr) || !arr.every((x) => typeof x === 'string' || typeof x === 'number')) {
      throw new UserError(`${path}: labels must be a flat JSON array of strings or numbers`);
    }
    return arr as (string | number)[];
  }
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  lines.forEach((l, i) => {
    if (l.trim() === '') throw new UserError(`${path}: line ${i + 1} is empty; give one label per line`);
  });
  return lines.map((l) => l.trim());
}

/** Reads labels; pass the same dictionary for query and database labels so that ids agree. */
export function loadLabels(path: string, dictionary?: Map<string, number>): Labels {
  return labelsFrom(readLabelValues(path), dictionary);
}

/** UKBench-style groups: item i belongs to group ⌊i / size⌋. */
export function consecutiveGroups(n: number, size: number): Int32Array {
  if (!Number.isInteger(size) || size < 1) throw new UserError(`group size must be a positive integer, got ${size}`);
  const g = new Int32Array(n);
  for (let i = 0; i < n; i++) g[i] = Math.floor(i / size);
  return g;
}
