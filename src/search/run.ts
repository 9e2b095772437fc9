/** The `search` stage on files: descriptors in, `indices.npy` / `distances.npy` / `search.json` out. */
import { join } from 'node:path';
import type { EngineChoice } from '../backend/dense.js';
import { writeFileAtomic } from '../io/atomic.js';
import { NpyFile, writeNpy } from '../io/npy.js';
import { readMatrix } from '../matrix.js';
import { npySource } from '../backend/blockedTopK.js';
import { exactSearch, type Metric } from './exact.js';

export interface SearchFilesOptions {
  readonly db: string;
  /** Omit to search the database against itself. */
  readonly query?: string;
  readonly k: number;
  readonly metric: Metric;
  readonly excludeSelf?: boolean;
  readonly out: string;
  readonly engine?: EngineChoice;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface SearchSummary {
  readonly db: string;
  readonly query: string | null;
  readonly queries: number;
  readonly databaseSize: number;
  readonly k: number;
  readonly metric: Metric;
  readonly excludeSelf: boolean;
  readonly engine: string;
  readonly seconds: number;
}

/** Runs an exact search between two `.npy` files and writes the results into `out`. */
export async function searchFiles(o: SearchFilesOptions): Promise<SearchSummary> {
  const started = performance.now();
  const queries = o.query ? readMatrix(o.query) : null;
  const dbFile = NpyFile.open(o.db);
  let res;
  try {
    res = await exactSearch(npySource(dbFile), queries, {
      k: o.k,
      metric: o.metric,
      excludeSelf: o.excludeSelf ?? false,
      engine: o.engine,
      onProgress: o.onProgress,
    });
  } finally {
    dbFile.close();
  }
  const summary: SearchSummary = {
    db: o.db,
    query: o.query ?? null,
    queries: res.queries,
    databaseSize: dbFile.rows,
    k: res.k,
    metric: o.metric,
    excludeSelf: o.excludeSelf ?? false,
    engine: res.engine,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  };
  writeNpy(join(o.out, 'indices.npy'), { dtype: 'int32', shape: [res.queries, res.k], data: res.indices });
  writeNpy(join(o.out, 'distances.npy'), { dtype: 'float32', shape: [res.queries, res.k], data: res.distances });
  // Written last: its presence says the folder is complete.
  writeFileAtomic(join(o.out, 'search.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
