/**
 * The worker side of data-parallel training (dataParallel.ts): a replica of the model on the
 * worker's own tfjs backend. Per step: its shard's loss and gradients (batchGradients, the
 * one-thread code) go to its shared buffer; then, once every worker has written, each one updates
 * its own range of the shared weights and momentum (sgdRange: the shards' gradients added in
 * worker order, the SGD rule); the replica takes the new weights before its next shard.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { assignFlat, initBackend, tensorsOf, tf, writeFlat, type BackendChoice } from '../backend/tfjs.js';
// Registers the custom layers (GeM, L2 normalisation, preprocessing), so that every model loads.
import '../model/io.js';
import { flatLayout, sgdRange } from './flatSgd.js';
import { trainableVariables } from './sgd.js';
import { batchGradients } from './step.js';
import type { WorkerMessage, WorkerSetup } from './dataParallel.js';

const setup = workerData as WorkerSetup;

async function start(): Promise<{ model: tf.LayersModel; weights: tf.Variable[] }> {
  await initBackend(setup.backend as BackendChoice);
  const model = await tf.loadLayersModel(tf.io.fromMemory(setup.artifacts));
  const weights = trainableVariables(model);
  const shapes = weights.map((w) => w.shape.join('×')).join(', ');
  if (shapes !== setup.shapes.map((s) => s.join('×')).join(', ')) throw new Error(`the replica's trainable weights (${shapes}) differ from the model's`);
  return { model, weights };
}

const ready = start();
ready.then(
  () => parentPort!.postMessage({ ready: true }),
  (err: Error) => parentPort!.postMessage({ error: String(err?.stack ?? err) }),
);

const layout = flatLayout(setup.shapes, setup.sgd.groups);
const total = layout.offsets.at(-1)!;
const state = new Float32Array(setup.state);
const grads = setup.grads.map((b) => new Float32Array(b));

parentPort!.on('message', async (m: WorkerMessage) => {
  try {
    const { model, weights } = await ready;
    if (m.kind === 'shard') {
      // Every shard follows a change of the shared weights: the first step's, or the last update.
      assignFlat(weights, state.subarray(0, total));
      const x = tensorsOf(m.x);
      const margins = tf.tensor1d(m.margins);
      const r = batchGradients(model, weights, x, margins, setup.options, m.share);
      tf.dispose([margins, ...(Array.isArray(x) ? x : [x])]);
      writeFlat(weights.map((w) => r.grads[w.name]!), grads[setup.index]!);
      tf.dispose(Object.values(r.grads));
      parentPort!.postMessage({ loss: r.loss, active: r.active });
    } else {
      const squares = sgdRange(state, grads.slice(0, m.shards), layout, setup.sgd, m.lr, m.start, m.end);
      parentPort!.postMessage({ squares });
    }
  } catch (err) {
    parentPort!.postMessage({ error: String((err as Error)?.stack ?? err) });
  }
});
