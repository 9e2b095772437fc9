/**
 * Cutting and joining tfjs LayersModels: a backbone cut at a named layer, a network split into a
 * frozen front (whose outputs can be computed once and cached) and a trainable back, and the two
 * joined again into one exportable model.
 */
import { tf } from '../backend/tfjs.js';
import { UserError } from '../errors.js';

/** The model from `model`'s input to the output of layer `name`. */
export function cutAt(model: tf.LayersModel, name: string): tf.LayersModel {
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(name);
  } catch {
    const names = model.layers.map((l) => l.name);
    throw new UserError(`the model has no layer '${name}'; its layers end with ${names.slice(-6).join(', ')}`);
  }
  return tf.model({ inputs: model.inputs, outputs: ownNode(model, layer).output, name: `${model.name}_to_${name}` });
}

/**
 * Splits `model` after layer `name` into front (input → that layer's output) and back (that
 * output → the model's output). The cut must separate the graph: no layer after it may read a
 * tensor computed before it, other than the cut output itself (a block output, not a layer inside
 * a residual block).
 */
export function splitAt(model: tf.LayersModel, name: string): { front: tf.LayersModel; back: tf.LayersModel } {
  const front = cutAt(model, name);
  const cutTensor = front.outputs[0]!;
  const cutIndex = model.layers.findIndex((l) => l.name === name);
  const before = new Set(model.layers.slice(0, cutIndex + 1).map((l) => l.name));
  const input = tf.input({ shape: cutTensor.shape.slice(1) as number[], name: `${name}_features` });
  const mapped = new Map<string, tf.SymbolicTensor>([[tensorKey(cutTensor), input]]);
  for (const layer of model.layers.slice(cutIndex + 1)) {
    const node = ownNode(model, layer);
    const inputs = node.inputs.map((t) => {
      const m = mapped.get(tensorKey(t));
      if (m) return m;
      const producer = t.sourceLayer.name;
      if (before.has(producer)) {
        throw new UserError(`cannot split at '${name}': layer '${layer.name}' also reads '${producer}' from before it; cut at a block output instead`);
      }
      throw new Error(`splitAt: no tensor for ${producer} (layers out of order?)`);
    });
    const out = layer.apply(inputs.length === 1 ? inputs[0]! : inputs) as tf.SymbolicTensor;
    mapped.set(tensorKey(node.output), out);
  }
  const output = mapped.get(tensorKey(model.outputs[0]!));
  if (!output) throw new UserError(`cannot split at '${name}': the output does not depend on it`);
  return { front, back: tf.model({ inputs: input, outputs: output, name: `${model.name}_from_${name}` }) };
}

export const tensorKey = (t: tf.SymbolicTensor) => `${t.sourceLayer.name}:${t.nodeIndex}:${t.tensorIndex}`;

interface InboundNode {
  readonly inputTensors: tf.SymbolicTensor[];
}

/**
 * The node of `layer` that belongs to `model` (a layer applied in several graphs has one inbound
 * node per application), with its input tensors and output.
 */
export function ownNode(model: tf.LayersModel, layer: tf.layers.Layer): { inputs: tf.SymbolicTensor[]; output: tf.SymbolicTensor } {
  const nodes = (layer as unknown as { inboundNodes: InboundNode[] }).inboundNodes;
  const own = (model as unknown as { containerNodes: Set<string> }).containerNodes;
  for (let i = 0; i < nodes.length; i++) {
    if (own.has(`${layer.name}_ib-${i}`)) return { inputs: nodes[i]!.inputTensors, output: layer.getOutputAt(i) as tf.SymbolicTensor };
  }
  throw new Error(`layer ${layer.name} has no node in model ${model.name}`);
}

/** Joins models end to end (each one's output feeds the next) into one model. */
export function chain(models: readonly tf.LayersModel[], name: string): tf.LayersModel {
  const input = tf.input({ shape: models[0]!.inputs[0]!.shape.slice(1) as number[], name: `${name}_input` });
  let x: tf.SymbolicTensor = input;
  for (const m of models) x = m.apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x, name });
}

/**
 * Copies weights of `target` from the weights of `source` with the same original name (e.g.
 * `conv1_conv/kernel`, as tfjs and Keras-converted models name them), whatever the nesting (a
 * frozen front and trained back joined by `chain` keep their layers' names). Every weight must be
 * found, unless `partial` (pretrained weights for part of a network); differently shaped ones are
 * an error. Returns how many were copied.
 */
export function copyWeightsByName(target: tf.LayersModel, source: tf.LayersModel, sourceName: string, o: { partial?: boolean } = {}): number {
  const byName = new Map(source.weights.map((w) => [w.originalName, w]));
  let copied = 0;
  for (const w of target.weights) {
    const s = byName.get(w.originalName);
    if (!s) {
      if (o.partial) continue;
      throw new UserError(`${sourceName} has no weight '${w.originalName}'; start from a model of the same network`);
    }
    if (s.shape.join('×') !== w.shape.join('×')) throw new UserError(`${sourceName}: weight '${w.originalName}' is ${s.shape.join('×')}, not ${w.shape.join('×')}; start from a model of the same network`);
    w.write(s.read());
    copied++;
  }
  return copied;
}
