/**
 * The worker side of data-parallel training (dataParallel.ts): a replica of the model and of its
 * momentum buffers on the worker's own tfjs backend. Per step: its shard's loss and gradients
 * (batchGradients, the one-thread code) go to its shared buffer; then, once every worker has
 * written, each one adds all the shards' gradients in worker order and applies the same SGD
 * update (applySgd), so that the replicas stay identical without the weights travelling.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { assignFlat, initBackend, tensorsOf, tf, writeFlat, type BackendChoice } from '../backend/tfjs.js';
// Registers the custom layers (GeM, L2 normalisation, preprocessing), so that every model loads.
import '../model/io.js';
import { applySgd, batchGradients, trainableVariables } from './loop.js';
import type { WorkerMessage, WorkerSetup } from './dataParallel.js';

const setup = workerData as WorkerSetup;

async function start(): Promise<{ model: tf.LayersModel; weights: tf.Variable[]; momentum: tf.Variable[] }> {
  await initBackend(setup.backend as BackendChoice);
  const model = await tf.loadLayersModel(tf.io.fromMemory(setup.artifacts));
  const weights = trainableVariables(model);
  const shapes = weights.map((w) => w.shape.join('×')).join(', ');
  if (shapes !== setup.shapes.map((s) => s.join('×')).join(', ')) throw new Error(`the replica's trainable weights (${shapes}) differ from the model's`);
  return { model, weights, momentum: weights.map((w) => tf.variable(tf.zerosLike(w), false)) };
}

const ready = start();
ready.then(
  () => parentPort!.postMessage({ ready: true }),
  (err: Error) => parentPort!.postMessage({ error: String(err?.stack ?? err) }),
);

const total = setup.shapes.reduce((s, shape) => s + shape.reduce((p, d) => p * d, 1), 0);
const state = new Float32Array(setup.state);
const grads = setup.grads.map((b) => new Float32Array(b));

parentPort!.on('message', async (m: WorkerMessage) => {
  try {
    const { model, weights, momentum } = await ready;
    if (m.kind === 'load') {
      assignFlat(weights, state.subarray(0, total));
      assignFlat(momentum, state.subarray(total));
      parentPort!.postMessage({});
    } else if (m.kind === 'save') {
      writeFlat([...weights, ...momentum], state);
      parentPort!.postMessage({});
    } else if (m.kind === 'shard') {
      const x = tensorsOf(m.x);
      const margins = tf.tensor1d(m.margins);
      const r = batchGradients(model, weights, x, margins, setup.options, m.share);
      tf.dispose([margins, ...(Array.isArray(x) ? x : [x])]);
      writeFlat(weights.map((w) => r.grads[w.name]!), grads[setup.index]!);
      tf.dispose(Object.values(r.grads));
      parentPort!.postMessage({ loss: r.loss, active: r.active });
    } else {
      // Every shard's gradients, added in worker order (the same sum in every worker), on the backend.
      let offset = 0;
      const named: tf.NamedTensorMap = {};
      for (const w of weights) {
        const parts = grads.slice(0, m.shards).map((g) => tf.tensor(g.subarray(offset, offset + w.size), w.shape));
        named[w.name] = parts.length === 1 ? parts[0]! : tf.addN(parts);
        if (parts.length > 1) tf.dispose(parts);
        offset += w.size;
      }
      const gradNorm = applySgd(weights, momentum, named, setup.sgd, m.lr);
      parentPort!.postMessage({ gradNorm });
    }
  } catch (err) {
    parentPort!.postMessage({ error: String((err as Error)?.stack ?? err) });
  }
});
