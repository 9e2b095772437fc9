/**
 * Where a descriptor head starts (both modes): PCA-initialised from the descriptors, the weights
 * of another run (a bootstrap's previous iteration), or a checkpoint; and what its training is
 * judged against.
 */
import type { EngineChoice } from '../backend/dense.js';
import { tf } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { copyWeightsByName } from '../model/compose.js';
import { buildHead, DESCRIPTOR_HEAD, embedRows, type HeadSpec } from '../model/head.js';
import { loadModelFolder } from '../model/io.js';
import { learnPca, pcaProjection } from '../model/pca.js';
import type { HeadOptions } from './options.js';

/** A PCA-initialised head cannot have more outputs than inputs. */
export function checkHeadFits(head: HeadOptions, inputDim: number): void {
  if (head.kind !== 'mlp' && head.init !== 'random' && head.dim > inputDim) {
    throw new UserError(`a PCA-initialised head cannot output ${head.dim} dimensions from ${inputDim}-d descriptors; use --dim ≤ ${inputDim} or --init random`);
  }
}

export const headSpec = (head: HeadOptions, inputDim: number, seed: number): HeadSpec => ({ kind: head.kind, inputDim, outputDim: head.dim, hidden: head.hidden, init: head.init, seed });

/**
 * The head to train on the descriptors `x`: PCA-initialised from them (residual and linear heads
 * with init pca/whiten), or from the weights of `initFrom`; when resuming, the checkpoint will
 * supply the weights. Returns the PCA's record (null when none was learnt).
 */
export async function initialHead(
  x: Matrix,
  head: HeadOptions,
  seed: number,
  o: { readonly resume?: boolean; readonly initFrom?: string; readonly engine?: EngineChoice; readonly onStage?: (message: string) => void },
): Promise<{ model: tf.LayersModel; pca: Record<string, unknown> | null }> {
  checkHeadFits(head, x.cols);
  const spec = headSpec(head, x.cols, seed);
  let pca: Record<string, unknown> | null = null;
  let projection;
  if (!o.resume && !o.initFrom && head.kind !== 'mlp' && head.init !== 'random') {
    o.onStage?.(`learning ${head.init === 'whiten' ? 'PCA-whitening' : 'PCA'} (${x.cols} → ${head.dim}) on ${x.rows} descriptors`);
    const t = performance.now();
    const learnt = await learnPca(x, head.dim, { method: head.pcaMethod, engine: o.engine, seed });
    projection = pcaProjection(learnt, head.init === 'whiten');
    const kept = learnt.eigenvalues.reduce((sum, v) => sum + v, 0);
    pca = { method: learnt.method, seconds: Number(((performance.now() - t) / 1000).toFixed(3)), varianceKept: Number((kept / learnt.totalVariance).toFixed(4)) };
  }
  // Resuming: the checkpoint holds the weights, so the head starts from any initialisation.
  const model = buildHead(o.resume || o.initFrom ? { ...spec, init: 'random' } : spec, projection);
  if (o.initFrom && !o.resume) await copyWeights(o.initFrom, model);
  return { model, pca };
}


/**
 * What a head's training is judged against: the descriptors themselves for a fresh head, the
 * starting head's embeddings when it continues another run (a bootstrap's previous iteration).
 */
export async function startingPoint(plan: { readonly heldOut: Int32Array }, x: Matrix, initFrom: string | undefined): Promise<Matrix> {
  if (!initFrom || plan.heldOut.length === 0) return x;
  const { model } = await loadModelFolder(initFrom);
  try {
    // An image model folder (frozen backbone + head) holds the head as one layer.
    const head = model.layers.some((l) => l.name === DESCRIPTOR_HEAD) ? (model.getLayer(DESCRIPTOR_HEAD) as unknown as tf.LayersModel) : model;
    return embedRows(head, x);
  } finally {
    model.dispose();
  }
}

/** Starts `model` from the weights of the model folder (or run folder) `from`, matched by name. */
export async function copyWeights(from: string, model: tf.LayersModel): Promise<void> {
  const { dir, model: source } = await loadModelFolder(from);
  try {
    copyWeightsByName(model, source, dir);
  } finally {
    source.dispose();
  }
}
