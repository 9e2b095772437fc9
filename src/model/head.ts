/**
 * Descriptor-mode networks: a head on frozen descriptors, built from standard tfjs layers only
 * (so an exported model loads in any tfjs runtime without custom classes). The output is
 * L2-normalised by `embedRows` (and by any consumer, as the model manifest says).
 *
 * - `residual` (default): y = P·x + b + W₂·relu(W₁·x + b₁) + b₂, with P, b from PCA (or
 *   PCA-whitening) of the database and W₂ = 0, so the untrained head *is* the PCA projection.
 * - `linear`: y = P·x + b, PCA-initialised.
 * - `mlp`: y = W₂·relu(W₁·x + b₁) + b₂, randomly initialised (Glorot, seeded).
 */
import { UserError } from '../errors.js';
import { tf } from '../backend/tfjs.js';
import type { Matrix } from '../matrix.js';

export type HeadKind = 'residual' | 'linear' | 'mlp';
export const HEAD_KINDS: readonly HeadKind[] = ['residual', 'linear', 'mlp'];
export type HeadInit = 'pca' | 'whiten' | 'random';
export const HEAD_INITS: readonly HeadInit[] = ['pca', 'whiten', 'random'];

export interface HeadSpec {
  readonly kind: HeadKind;
  readonly inputDim: number;
  readonly outputDim: number;
  /** Width of the hidden layer (residual and mlp). */
  readonly hidden: number;
  /** How the linear projection starts (residual and linear; mlp is always random). */
  readonly init: HeadInit;
  readonly seed: number;
}

/** The initial projection: outputDim × inputDim weights and outputDim biases. */
export interface Projection {
  readonly weights: Float32Array;
  readonly bias: Float32Array;
}

/** Builds the head; `projection` is required unless init is 'random' or kind is 'mlp'. */
export function buildHead(spec: HeadSpec, projection?: Projection): tf.LayersModel {
  const { kind, inputDim: d, outputDim: e, hidden, seed } = spec;
  if (!Number.isInteger(e) || e < 1) throw new UserError(`embedding dimension must be a positive integer, got ${e}`);
  if (kind !== 'linear' && (!Number.isInteger(hidden) || hidden < 1)) throw new UserError(`hidden width must be a positive integer, got ${hidden}`);
  const usesPca = kind !== 'mlp' && spec.init !== 'random';
  if (usesPca && e > d) {
    throw new UserError(`a PCA-initialised head cannot output ${e} dimensions from ${d}-d descriptors; use --dim ≤ ${d} or --init random`);
  }
  const input = tf.input({ shape: [d], name: 'descriptor' });
  const glorot = (offset: number) => tf.initializers.glorotUniform({ seed: seed * 7919 + offset });
  const mlpBranch = (x: tf.SymbolicTensor, zeroOut: boolean) => {
    const h = tf.layers.dense({ units: hidden, activation: 'relu', name: 'hidden', kernelInitializer: glorot(1) }).apply(x) as tf.SymbolicTensor;
    return tf.layers
      .dense({ units: e, name: zeroOut ? 'residual' : 'output', kernelInitializer: zeroOut ? 'zeros' : glorot(2) })
      .apply(h) as tf.SymbolicTensor;
  };
  let output: tf.SymbolicTensor;
  if (kind === 'mlp') {
    output = mlpBranch(input, false);
  } else {
    const projectionLayer = tf.layers.dense({ units: e, name: 'projection', kernelInitializer: glorot(3) });
    const projected = projectionLayer.apply(input) as tf.SymbolicTensor;
    if (usesPca) {
      if (!projection || projection.weights.length !== e * d || projection.bias.length !== e) {
        throw new Error(`buildHead: a ${e}×${d} projection is required for init '${spec.init}'`);
      }
      // tfjs Dense kernels are inputDim × units: the transpose of the projection.
      const kernel = new Float32Array(d * e);
      for (let k = 0; k < e; k++) for (let j = 0; j < d; j++) kernel[j * e + k] = projection.weights[k * d + j]!;
      const values = [tf.tensor2d(kernel, [d, e]), tf.tensor1d(projection.bias)];
      projectionLayer.setWeights(values);
      tf.dispose(values);
    }
    output = kind === 'linear' ? projected : (tf.layers.add({ name: 'sum' }).apply([projected, mlpBranch(input, true)]) as tf.SymbolicTensor);
  }
  return tf.model({ inputs: input, outputs: output, name: `head_${kind}` });
}

/**
 * A layer that L2-normalises its input rows: what puts pooled image features on the unit sphere
 * before a descriptor head, inside one exportable image network.
 */
export class L2Normalize extends tf.layers.Layer {
  static readonly className = 'L2Normalize';
  override computeOutputShape(inputShape: tf.Shape): tf.Shape {
    return inputShape;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return l2Normalize((Array.isArray(inputs) ? inputs[0]! : inputs) as tf.Tensor2D);
  }
}
tf.serialization.registerClass(L2Normalize);

/** The name of the descriptor head inside an image network (backbone → GeM → head). */
export const DESCRIPTOR_HEAD = 'descriptor_head';

/** `head` behind an L2 normalisation of its input, as one model named DESCRIPTOR_HEAD. */
export function normalizedHead(head: tf.LayersModel): tf.LayersModel {
  const input = tf.input({ shape: head.inputs[0]!.shape.slice(1) as number[], name: 'pooled' });
  const unit = new L2Normalize({ name: 'pooled_l2' }).apply(input) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: head.apply(unit) as tf.SymbolicTensor, name: DESCRIPTOR_HEAD });
}

/** x / ‖x‖ per row (zero rows stay zero), inside a tidy. */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

/**
 * Runs the model over the rows of `m` in batches. Outputs of any shape are flattened to one row
 * per input row; with `normalize` (the default) they are L2-normalised: the embeddings.
 */
export function embedRows(model: tf.LayersModel, m: Matrix, batch = 1024, normalize = true): Matrix {
  const cols = (model.outputs[0]!.shape.slice(1) as number[]).reduce((p, d) => p * d, 1);
  const out = new Float32Array(m.rows * cols);
  for (let start = 0; start < m.rows; start += batch) {
    const count = Math.min(batch, m.rows - start);
    const y = tf.tidy(() => {
      const x = tf.tensor2d(m.data.subarray(start * m.cols, (start + count) * m.cols), [count, m.cols]);
      const raw = model.predict(x) as tf.Tensor;
      return normalize ? l2Normalize(raw as tf.Tensor2D) : raw;
    });
    // Read back outside the tidy scope (inside, wasm reads are several times slower).
    out.set(y.dataSync() as Float32Array, start * cols);
    y.dispose();
  }
  return { rows: m.rows, cols, data: out };
}
