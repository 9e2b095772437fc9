/**
 * Dense matrix products for search and graph building. The fast path is onnxruntime-node (its
 * CPU kernels reach 60–180 GFLOP/s on 2 cores, see BENCHMARKS.md); when it is not installed a
 * plain TypeScript kernel is used (1–4 GFLOP/s) and the choice is reported by `engine.name`.
 */
import type { Matrix } from '../matrix.js';
import { PairHeap } from './heap.js';
import { selectTopK } from './topk.js';
import { ElemType, onnxModel } from './onnxGraph.js';
import { loadOrt, sessionOptions, unshared, type Ort } from './ort.js';


export interface TopKResult {
  /** rows × k values, best (largest) first. */
  readonly values: Float32Array;
  /** rows × k column indices (int32). */
  readonly indices: Int32Array;
  /** Per row, the smallest value over all columns (the farthest row of B in Euclidean terms). */
  readonly minimum: Float32Array;
}

export interface DenseEngine {
  readonly name: 'onnxruntime' | 'js';
  /** A·Bᵀ for A (m×d) and B (n×d): the m×n matrix of dot products. */
  abt(a: Matrix, b: Matrix): Promise<Float32Array>;
  /**
   * For each row a of A, the k largest values of 2·a·b_j − bias_j over rows b_j of B (descending,
   * ties to the lower j). With bias = ‖b_j‖² this ranks B by Euclidean distance to a, since
   * ‖a − b_j‖² = ‖a‖² − (2·a·b_j − ‖b_j‖²).
   */
  topK(a: Matrix, b: Matrix, bias: Float32Array, k: number): Promise<TopKResult>;
}

export type EngineChoice = 'auto' | 'onnxruntime' | 'js';

/** Plain TypeScript: dot products with four accumulators. */
export const jsEngine: DenseEngine = {
  name: 'js',
  async abt(a, b) {
    const out = new Float32Array(a.rows * b.rows);
    const d = a.cols;
    for (let i = 0; i < a.rows; i++) {
      const ao = i * d;
      for (let j = 0; j < b.rows; j++) out[i * b.rows + j] = dot(a.data, ao, b.data, j * d, d);
    }
    return out;
  },
  async topK(a, b, bias, k) {
    const kk = Math.min(k, b.rows);
    const values = new Float32Array(a.rows * kk);
    const indices = new Int32Array(a.rows * kk);
    const minimum = new Float32Array(a.rows);
    const row = new Float32Array(b.rows);
    const heap = new PairHeap(kk, 'max');
    const d = a.cols;
    for (let i = 0; i < a.rows; i++) {
      let min = Infinity;
      for (let j = 0; j < b.rows; j++) {
        const v = 2 * dot(a.data, i * d, b.data, j * d, d) - bias[j]!;
        row[j] = v;
        if (v < min) min = v;
      }
      minimum[i] = min;
      selectTopK(row, kk, values, indices, i * kk, 0, heap);
    }
    return { values, indices, minimum };
  },
};

function dot(x: Float32Array, xo: number, y: Float32Array, yo: number, d: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let l = 0;
  for (; l + 3 < d; l += 4) {
    s0 += x[xo + l]! * y[yo + l]!;
    s1 += x[xo + l + 1]! * y[yo + l + 1]!;
    s2 += x[xo + l + 2]! * y[yo + l + 2]!;
    s3 += x[xo + l + 3]! * y[yo + l + 3]!;
  }
  for (; l < d; l++) s0 += x[xo + l]! * y[yo + l]!;
  return s0 + s1 + s2 + s3;
}

async function createOrtEngine(ort: Ort): Promise<DenseEngine> {
  const options = sessionOptions();
  const f = ElemType.float;
  const abtSession = await ort.InferenceSession.create(
    onnxModel({
      nodes: [{ op: 'Gemm', inputs: ['A', 'B'], outputs: ['C'], attrs: [{ name: 'transB', int: 1 }] }],
      inputs: [{ name: 'A', elem: f, dims: ['m', 'd'] }, { name: 'B', elem: f, dims: ['n', 'd'] }],
      outputs: [{ name: 'C', elem: f, dims: ['m', 'n'] }],
    }),
    options,
  );
  const topKSession = await ort.InferenceSession.create(
    onnxModel({
      nodes: [
        { op: 'Gemm', inputs: ['A', 'B'], outputs: ['S'], attrs: [{ name: 'transB', int: 1 }, { name: 'alpha', float: 2 }] },
        { op: 'Sub', inputs: ['S', 'bias'], outputs: ['T'] },
        {
          op: 'TopK', inputs: ['T', 'K'], outputs: ['V', 'I'],
          attrs: [{ name: 'axis', int: -1 }, { name: 'largest', int: 1 }, { name: 'sorted', int: 1 }],
        },
        { op: 'ReduceMin', inputs: ['T'], outputs: ['M'], attrs: [{ name: 'axes', ints: [1] }, { name: 'keepdims', int: 0 }] },
      ],
      inputs: [
        { name: 'A', elem: f, dims: ['m', 'd'] },
        { name: 'B', elem: f, dims: ['n', 'd'] },
        { name: 'bias', elem: f, dims: ['n'] },
        { name: 'K', elem: ElemType.int64, dims: [1] },
      ],
      outputs: [
        { name: 'V', elem: f, dims: ['m', 'k'] },
        { name: 'I', elem: ElemType.int64, dims: ['m', 'k'] },
        { name: 'M', elem: f, dims: ['m'] },
      ],
    }),
    options,
  );
  // onnxruntime refuses memory shared with worker threads: hand it a plain copy.
  const tensor = (m: Matrix) => new ort.Tensor('float32', unshared(m.data), [m.rows, m.cols]);
  return {
    name: 'onnxruntime',
    async abt(a, b) {
      const out = await abtSession.run({ A: tensor(a), B: tensor(b) });
      return out.C!.data as Float32Array;
    },
    async topK(a, b, bias, k) {
      const kk = Math.min(k, b.rows);
      const out = await topKSession.run({
        A: tensor(a),
        B: tensor(b),
        bias: new ort.Tensor('float32', unshared(bias), [bias.length]),
        K: new ort.Tensor('int64', BigInt64Array.of(BigInt(kk)), [1]),
      });
      const idx64 = out.I!.data as BigInt64Array;
      const indices = new Int32Array(idx64.length);
      for (let i = 0; i < idx64.length; i++) indices[i] = Number(idx64[i]);
      return { values: out.V!.data as Float32Array, indices, minimum: out.M!.data as Float32Array };
    },
  };
}

const engines = new Map<EngineChoice, Promise<DenseEngine>>();

/**
 * The dense engine: onnxruntime-node when installed (or required with 'onnxruntime'), else the
 * TypeScript kernel. Created once per process.
 */
export function denseEngine(choice: EngineChoice = 'auto'): Promise<DenseEngine> {
  let e = engines.get(choice);
  if (!e) {
    e = (async () => {
      if (choice === 'js') return jsEngine;
      const ort = await loadOrt();
      if (ort) return createOrtEngine(ort);
      if (choice === 'onnxruntime') {
        throw new Error('onnxruntime-node is not installed; run `npm install onnxruntime-node` or use the js engine');
      }
      return jsEngine;
    })();
    engines.set(choice, e);
  }
  return e;
}
