/**
 * The `eval` stage on files: a ranking (from descriptors, a score matrix, or ranked neighbour
 * lists) scored against ground truth (revisited Oxford/Paris, class labels, or UKBench groups).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineChoice } from '../backend/dense.js';
import { UserError } from '../errors.js';
import { consecutiveGroups, loadLabels, loadRevisitedGroundTruth, type RevisitedGroundTruth } from '../io/groundTruth.js';
import { readNpy } from '../io/npy.js';
import { fileOrInFolder } from '../io/paths.js';
import { readMatrix, rowSquaredNorms, toMatrix, type Matrix } from '../matrix.js';
import type { Metric } from '../search/exact.js';
import { fullRanking } from './fullRanking.js';
import { classMap, nsScore } from './classLevel.js';
import { meanPrecisionRecall, type QueryRelevance } from './pr.js';
import { ranking, rankingFromScores, type Ranking } from './ranking.js';
import { PROTOCOLS, REVISITED_KAPPAS, revisitedMap, type Protocol } from './revisited.js';

export interface EvalFilesOptions {
  /** Database descriptors (.npy, or in memory); with `query`, rank by `metric`. */
  readonly db?: string | Matrix;
  /** Query descriptors (.npy, or in memory); omitted means the database items are the queries. */
  readonly query?: string | Matrix;
  readonly metric?: Metric;
  readonly engine?: EngineChoice;
  /** Ranked neighbour lists: int32/int64 queries × K (.npy), or a folder holding indices.npy. */
  readonly ranks?: string;
  /** A ranking already in memory (e.g. a diffusion result). */
  readonly ranking?: Ranking;
  /** Dense queries × n score matrix (.npy). */
  readonly scores?: string;
  /** How to read `scores`: larger is better (similarity) or smaller is better (distance). */
  readonly order?: 'similarity' | 'distance';
  /** Revisited ground truth (gnd_*.pkl or .json). */
  readonly gnd?: string;
  /** Database class labels; with `queryLabels` for separate queries, else self-retrieval. */
  readonly labels?: string;
  readonly queryLabels?: string;
  /** UKBench groups: a group size (consecutive items) or a file of group ids per item. */
  readonly groups?: string;
  readonly queryGroups?: string;
  /** Also compute the mean interpolated precision–recall curve (11 points; revisited: Medium). */
  readonly curve?: boolean;
}

type Percent = number;

/** How a truncated ranking's unlisted items were ordered (absent when every list was complete). */
export type Completion = 'base distance' | 'index order';

export type EvalReport = (
  | {
      readonly protocol: 'revisited';
      readonly queries: number;
      readonly databaseSize: number;
      readonly mAP: Readonly<Record<Protocol, Percent>>;
      readonly mP: Readonly<Record<Protocol, Readonly<Record<string, Percent>>>>;
      readonly pr?: number[];
    }
  | { readonly protocol: 'class'; readonly queries: number; readonly databaseSize: number; readonly mAP: Percent; readonly pr?: number[] }
  | {
      readonly protocol: 'ns';
      readonly queries: number;
      readonly databaseSize: number;
      readonly nsScore: number;
      /** A self-ranking (no list holds its own item): each item was counted as its own first result. */
      readonly selfRanking?: boolean;
      readonly pr?: number[];
    }
) & { readonly completion?: Completion };

/** `rep` with the completion of a truncated ranking `r` recorded. */
function completed<T extends object>(rep: T, r: Ranking): T & { completion?: Completion } {
  return r.length < r.dbSize ? { ...rep, completion: r.tail ? 'base distance' : 'index order' } : rep;
}

const pct = (x: number) => Number((x * 100).toFixed(2));

/** The ranking a set of options describes, for a database of `dbSize` items (if known). */
async function loadRanking(o: EvalFilesOptions, dbSize: number | null): Promise<Ranking> {
  const sources = [o.ranks ? undefined : o.db, o.ranks, o.scores, o.ranking].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new UserError('give exactly one of --db (descriptors), --ranks (neighbour lists) or --scores (score matrix)');
  if (o.ranking) {
    if (dbSize !== null && o.ranking.dbSize !== dbSize) throw new UserError(`the ranking covers ${o.ranking.dbSize} items but the ground truth describes ${dbSize}`);
    return o.ranking;
  }
  if (o.db && !o.ranks) {
    const { db, q } = descriptors(o, dbSize);
    return fullRanking(db, q, o.metric ?? 'cosine', o.engine);
  }
  const r = await rankingFile(o, dbSize);
  if (!o.ranks || r.length >= r.dbSize) return r;
  const base: { db?: string | Matrix; query?: string | Matrix; metric?: Metric } | null = o.db ? o : descriptorsNamedBy(o.ranks);
  if (!base) return r;
  const { db, q } = descriptors({ ...o, ...base }, r.dbSize);
  if ((q ?? db).rows !== r.queries) {
    const named = base.query ?? base.db;
    throw new UserError(`${typeof named === 'string' ? named : 'the descriptors'}: ${(q ?? db).rows} rows for a ranking of ${r.queries} queries; give the descriptors the ranking was made from`);
  }
  return { ...r, tail: baseOrder(db, q, o.db ? (o.metric ?? 'cosine') : base.metric!) };
}

/** The descriptors of `o` (db, and queries unless self-retrieval), checked against each other and the ground truth. */
function descriptors(o: EvalFilesOptions, dbSize: number | null): { db: Matrix; q: Matrix | null } {
  const db = typeof o.db === 'string' ? readMatrix(o.db) : o.db!;
  const q: Matrix | null = o.query === undefined ? null : typeof o.query === 'string' ? readMatrix(o.query) : o.query;
  const dbName = typeof o.db === 'string' ? o.db : 'the database matrix';
  if (q && q.cols !== db.cols) {
    throw new UserError(`${typeof o.query === 'string' ? o.query : 'the query matrix'} has ${q.cols} dimensions but ${dbName} has ${db.cols}; use descriptors from the same extractor`);
  }
  if (dbSize !== null && db.rows !== dbSize) {
    throw new UserError(`${dbName} has ${db.rows} rows but the ground truth describes ${dbSize} database items; give descriptors in ground-truth order`);
  }
  return { db, q };
}

/** The descriptors (and their metric) a `diffuse` or `search` output folder says it was made from, when they are still there. */
function descriptorsNamedBy(ranks: string): { db: string; query?: string; metric: Metric } | null {
  for (const name of ['diffusion.json', 'search.json']) {
    const file = join(ranks, name);
    if (!existsSync(file)) continue;
    try {
      const meta = JSON.parse(readFileSync(file, 'utf8')) as { db?: unknown; query?: unknown; metric?: unknown; parameters?: { normalize?: unknown } };
      if (typeof meta.db !== 'string' || !existsSync(meta.db)) return null;
      if (meta.query !== undefined && meta.query !== null && (typeof meta.query !== 'string' || !existsSync(meta.query))) return null;
      // search records its metric; a diffusion ranks L2-normalised descriptors unless told not to.
      const metric: Metric = meta.metric === 'euclidean' || meta.parameters?.normalize === false ? 'euclidean' : 'cosine';
      return { db: meta.db, ...(typeof meta.query === 'string' ? { query: meta.query } : {}), metric };
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * Each query's database items by base distance, nearest first, computed when asked (one pass over
 * the database per query): cosine or Euclidean, as `metric` says; ties keep the lower index.
 */
function baseOrder(db: Matrix, q: Matrix | null, metric: Metric): (query: number) => Int32Array {
  const d = db.cols;
  const norms = rowSquaredNorms(db);
  const cosine = metric === 'cosine';
  const score = new Float32Array(db.rows);
  return (query) => {
    const src = q ?? db;
    const row = src.data.subarray(query * d, (query + 1) * d);
    let qq = 0;
    for (let l = 0; l < d; l++) qq += row[l]! * row[l]!;
    for (let j = 0; j < db.rows; j++) {
      let dot = 0;
      for (let l = 0, o = j * d; l < d; l++) dot += row[l]! * db.data[o + l]!;
      // Larger is nearer: cos for cosine, 2·q·x − ‖x‖² for Euclidean.
      score[j] = cosine ? dot / Math.sqrt(qq * norms[j]! || 1) : 2 * dot - norms[j]!;
    }
    return rankingFromScores(score, 1, db.rows, 'descending').indices;
  };
}

/** The ranking stored in a --ranks or --scores file. */
async function rankingFile(o: EvalFilesOptions, dbSize: number | null): Promise<Ranking> {
  const path = o.ranks ?? o.scores!;
  const file = o.ranks ? fileOrInFolder(o.ranks, 'indices.npy') : path;
  const arr = readNpy(file);
  if (arr.shape.length !== 2) throw new UserError(`${file}: expected a 2-d array (queries × items), got shape (${arr.shape.join(', ')})`);
  const [rows, cols] = arr.shape as [number, number];
  if (o.scores) {
    const m = toMatrix(arr, file);
    if (dbSize !== null && cols !== dbSize) {
      throw new UserError(`${file} has ${cols} columns but the ground truth describes ${dbSize} database items; give one column per database item`);
    }
    return rankingFromScores(m.data, rows, cols, o.order === 'distance' ? 'ascending' : 'descending');
  }
  if (arr.dtype !== 'int32' && arr.dtype !== 'int64') {
    throw new UserError(`${file}: neighbour lists must be int32 or int64 indices, got ${arr.dtype}`);
  }
  const idx = arr.data instanceof Int32Array ? arr.data : Int32Array.from(arr.data as BigInt64Array, (v) => Number(v));
  const n = dbSize ?? rows;
  try {
    return ranking(idx, rows, n);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`${file}: ${err.message}`);
    throw err;
  }
}

function checkQueryCount(r: Ranking, expected: number, what: string): void {
  if (r.queries !== expected) throw new UserError(`the ranking has ${r.queries} query rows but ${what} describes ${expected} queries; give one row per query, in order`);
}

/** The items labelled `label` (but `self`) as positives, `self` ignored. */
function membersOf(labels: Int32Array, label: number, self: number): QueryRelevance {
  const positives: number[] = [];
  labels.forEach((l, i) => {
    if (l === label && i !== self) positives.push(i);
  });
  return { positives, ignored: self >= 0 ? [self] : [] };
}

/** Whether `r` ranks the database against itself with each item left out of its own list. */
export function isSelfRanking(r: Ranking): boolean {
  if (r.queries !== r.dbSize || r.length >= r.dbSize) return false;
  for (let q = 0; q < r.queries; q++) for (let j = 0; j < r.length; j++) if (r.indices[q * r.length + j] === q) return false;
  return true;
}

/** `r` with each query's own item put first (its list one longer). */
export function withSelfFirst(r: Ranking): Ranking {
  const length = r.length + 1;
  const indices = new Int32Array(r.queries * length);
  for (let q = 0; q < r.queries; q++) {
    indices[q * length] = q;
    indices.set(r.indices.subarray(q * r.length, (q + 1) * r.length), q * length + 1);
  }
  return { ...r, length, indices };
}

/** Evaluates according to the options; exactly one kind of ground truth must be given. */
export async function evaluateFiles(o: EvalFilesOptions): Promise<EvalReport> {
  const kinds = [o.gnd, o.labels, o.groups].filter((s) => s !== undefined).length;
  if (kinds !== 1) throw new UserError('give exactly one kind of ground truth: --gnd (revisited), --labels (classes) or --groups (UKBench)');

  if (o.gnd) {
    const gt: RevisitedGroundTruth = loadRevisitedGroundTruth(o.gnd);
    if (o.db && !o.query) throw new UserError('revisited evaluation needs --queries descriptors (one row per query of the ground truth)');
    const r = await loadRanking(o, gt.imlist.length);
    checkQueryCount(r, gt.gnd.length, o.gnd);
    const res = revisitedMap(r, gt);
    const mAP = {} as Record<Protocol, Percent>;
    const mP = {} as Record<Protocol, Record<string, Percent>>;
    for (const p of PROTOCOLS) {
      mAP[p] = pct(res[p].mAP);
      mP[p] = Object.fromEntries(REVISITED_KAPPAS.map((k) => [String(k), pct(res[p].mP[k]!)]));
    }
    const pr = o.curve
      ? meanPrecisionRecall(r, (q) => {
          const g = gt.gnd[q]!;
          return { positives: [...g.easy, ...g.hard], ignored: g.junk };
        })
      : undefined;
    return completed({ protocol: 'revisited' as const, queries: r.queries, databaseSize: r.dbSize, mAP, mP, ...(pr ? { pr } : {}) }, r);
  }

  if (o.labels) {
    const dict = new Map<string, number>();
    const dbLabels = loadLabels(o.labels, dict);
    const r = await loadRanking(o, dbLabels.ids.length);
    const separate = o.queryLabels !== undefined;
    if (!separate && (o.query || o.scores)) throw new UserError('with separate queries, give their labels with --query-labels');
    const qLabels = separate ? loadLabels(o.queryLabels!, dict).ids : dbLabels.ids;
    checkQueryCount(r, qLabels.length, separate ? o.queryLabels! : o.labels);
    const self = separate ? undefined : Int32Array.from({ length: r.queries }, (_, i) => i);
    const res = classMap(r, qLabels, dbLabels.ids, self);
    const pr = o.curve ? meanPrecisionRecall(r, (q) => membersOf(dbLabels.ids, qLabels[q]!, self ? q : -1)) : undefined;
    return completed({ protocol: 'class' as const, queries: r.queries, databaseSize: r.dbSize, mAP: pct(res.mAP), ...(pr ? { pr } : {}) }, r);
  }

  const dict = new Map<string, number>();
  const groupsOf = (spec: string, n: number | null) => {
    if (/^\d+$/.test(spec)) {
      if (n === null) throw new UserError('--groups SIZE needs the database size: give --db descriptors or a group file');
      return consecutiveGroups(n, Number(spec));
    }
    return loadLabels(spec, dict).ids;
  };
  // Size of the database when the groups are a file; else the ranking tells it.
  const fileGroups = /^\d+$/.test(o.groups!) ? null : groupsOf(o.groups!, null);
  const r = await loadRanking(o, fileGroups ? fileGroups.length : null);
  const dbGroups = fileGroups ?? groupsOf(o.groups!, r.dbSize);
  const qGroups = o.queryGroups ? groupsOf(o.queryGroups, r.queries) : dbGroups;
  checkQueryCount(r, qGroups.length, o.queryGroups ?? o.groups!);
  // A self-ranking leaves each item out of its own list; UKBench's N-S counts the query among the
  // top 4, so the item goes first: the figure is then comparable with `eval --db` (docs/algorithms.md §6).
  const self = !o.queryGroups && isSelfRanking(r);
  const scored = self ? withSelfFirst(r) : r;
  const pr = o.curve ? meanPrecisionRecall(scored, (q) => membersOf(dbGroups, qGroups[q]!, -1)) : undefined;
  return completed({ protocol: 'ns' as const, queries: r.queries, databaseSize: r.dbSize, nsScore: Number(nsScore(scored, qGroups, dbGroups).toFixed(4)), ...(self ? { selfRanking: true } : {}), ...(pr ? { pr } : {}) }, r);
}

/** One line for people: "E 28.89 / M 21.13 / H 4.60", "class mAP 44.84", "N-S 3.21". */
export function formatReport(rep: EvalReport): string {
  switch (rep.protocol) {
    case 'revisited':
      return `E ${rep.mAP.easy.toFixed(2)} / M ${rep.mAP.medium.toFixed(2)} / H ${rep.mAP.hard.toFixed(2)}`;
    case 'class':
      return `class mAP ${rep.mAP.toFixed(2)}`;
    case 'ns':
      return `N-S score ${rep.nsScore.toFixed(3)}${rep.selfRanking ? ' (a self-ranking: each item counted as its own first result, as when it queries the database)' : ''}`;
  }
}

/** The figures of an evaluation report, flat (for per-epoch records). */
export function reportFigures(r: EvalReport): Record<string, number> {
  if (r.protocol === 'revisited') return { ...r.mAP };
  if (r.protocol === 'class') return { mAP: r.mAP };
  return { NS: r.nsScore };
}
