/**
 * The approximate-search index of a collection: an HNSW graph (usearch) over the embeddings,
 * squared Euclidean distance, keys = row ids. Chosen over LanceDB's own index after measuring both
 * (docs/design.md, "Collections"): sub-millisecond single queries in-process.
 */
import usearch from 'usearch';
import type { Matrix } from '../matrix.js';

const { Index, MetricKind, ScalarKind } = usearch as unknown as typeof import('usearch');
type HnswIndex = InstanceType<typeof Index>;

/** HNSW parameters (usearch names): graph degree and the beam widths for insertion and search. */
export interface AnnParams {
  readonly connectivity: number;
  readonly expansionAdd: number;
  readonly expansionSearch: number;
}

export const ANN_DEFAULTS: AnnParams = { connectivity: 16, expansionAdd: 128, expansionSearch: 128 };

export class AnnIndex {
  private constructor(private readonly index: HnswIndex, readonly dimension: number, readonly params: AnnParams) {}

  static empty(dimension: number, params: AnnParams = ANN_DEFAULTS): AnnIndex {
    const index = new Index({
      dimensions: dimension, metric: MetricKind.L2sq, quantization: ScalarKind.F32,
      connectivity: params.connectivity, expansion_add: params.expansionAdd, expansion_search: params.expansionSearch, multi: false,
    });
    return new AnnIndex(index, dimension, params);
  }

  static load(path: string, dimension: number, params: AnnParams): AnnIndex {
    const a = AnnIndex.empty(dimension, params);
    a.index.load(path);
    return a;
  }

  /** Adds the rows of `m` under the ids firstId, firstId + 1, …, on `threads` threads. */
  add(m: Matrix, firstId: number, threads: number): void {
    if (m.rows === 0) return;
    const keys = BigUint64Array.from({ length: m.rows }, (_, i) => BigInt(firstId + i));
    this.index.add(keys, m.data, threads);
  }

  /** The k nearest ids of one query vector, nearest first, with squared distances. */
  search(q: Float32Array, k: number): { ids: Int32Array; distances: Float32Array } {
    const r = this.index.search(q, k, 1);
    return { ids: Int32Array.from(r.keys, (key) => Number(key)), distances: Float32Array.from(r.distances) };
  }

  /** The k nearest ids of each row of `m` (row-major ids × k), searched on `threads` threads. */
  searchMany(m: Matrix, k: number, threads: number): Int32Array {
    const rows = Array.from({ length: m.rows }, (_, i) => m.data.subarray(i * m.cols, (i + 1) * m.cols));
    const r = this.index.search(rows, k, threads);
    return Int32Array.from(r.keys, (key) => Number(key));
  }

  save(path: string): void {
    this.index.save(path);
  }
}
