/**
 * An image network (a tfjs LayersModel: backbone, GeM, optional head) written as an ONNX graph, so
 * that onnxruntime-node's native kernels run it on every core (docs/design.md, "Features"). The
 * graph takes the decoded bytes themselves, [n, height, width, 3] uint8, and does what the tfjs
 * path does in JavaScript and in the network: bytes / 255, then the network's layers one by one,
 * in NCHW (ONNX's layout; Keras kernels are transposed once, here). Weights are read from the
 * model as it is now, so a trained model converts as well as a pretrained one.
 *
 * Only the layers our image networks use are written; any other layer makes `imageModelToOnnx`
 * return the reason, and callers keep the tfjs path.
 */
import { tf } from '../backend/tfjs.js';
import { ElemType, onnxModel, type Attr, type OnnxConstant, type OnnxNode } from '../backend/onnxGraph.js';
import { ownNode, tensorKey } from './compose.js';

/** A tensor of the graph being written: its ONNX name and rank (4: NCHW feature maps; 2: rows). */
interface Value {
  readonly name: string;
  readonly rank: number;
}

class Unsupported extends Error {}

/** The graph being written: nodes, constants and fresh names. */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly constants: OnnxConstant[] = [];
  private count = 0;

  fresh(hint: string): string {
    return `${hint.replace(/[^A-Za-z0-9_]/g, '_')}_${this.count++}`;
  }

  constant(hint: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const name = this.fresh(hint);
    this.constants.push({ name, dims, data });
    return name;
  }

  op(op: string, inputs: string[], hint: string, attrs?: Attr[]): string {
    const out = this.fresh(hint);
    this.nodes.push({ op, inputs, outputs: [out], attrs });
    return out;
  }
}

/** A layer's weights by the last part of their names (kernel, bias, gamma, moving_mean, …). */
function weightsOf(layer: tf.layers.Layer): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const w of layer.weights) out.set(w.originalName.split('/').pop()!, w.read());
  return out;
}

const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [v[0] as number, (v[1] ?? v[0]) as number] : [v as number, v as number]);

/** Keras's padding as ONNX's auto_pad: TensorFlow's 'same' puts the odd pixel at the end (SAME_UPPER). */
function autoPad(padding: unknown): Attr {
  if (padding === 'same') return { name: 'auto_pad', str: 'SAME_UPPER' };
  if (padding === 'valid') return { name: 'auto_pad', str: 'VALID' };
  throw new Unsupported(`padding '${String(padding)}'`);
}

/** The dims and values of the tensor `make()` computes, read back and freed. */
function constantOf(make: () => tf.Tensor): { dims: number[]; data: Float32Array } {
  const t = tf.tidy(make);
  const data = (t.dataSync() as Float32Array).slice();
  const dims = t.shape as number[];
  t.dispose();
  return { dims, data };
}

/** [kh, kw, in, out] (Keras) → [out, in, kh, kw] (ONNX). */
const convKernel = (k: tf.Tensor) => constantOf(() => tf.transpose(k, [3, 2, 0, 1]));

/** [kh, kw, channels, multiplier] (Keras depthwise) → [channels·multiplier, 1, kh, kw], output c·m + j. */
function depthwiseKernel(k: tf.Tensor): { dims: number[]; data: Float32Array } {
  const [kh, kw, c, m] = k.shape as number[];
  return constantOf(() => tf.reshape(tf.transpose(k, [2, 3, 0, 1]), [c! * m!, 1, kh!, kw!]));
}

const values = (t: tf.Tensor): Float32Array => (t.dataSync() as Float32Array).slice();

/** The activation `name` applied to `x`. */
function activation(g: GraphBuilder, x: Value, name: unknown, hint: string): Value {
  switch (name ?? 'linear') {
    case 'linear':
      return x;
    case 'relu':
      return { name: g.op('Relu', [x.name], hint), rank: x.rank };
    case 'relu6':
      return { name: g.op('Clip', [x.name, g.constant('zero', [], Float32Array.of(0)), g.constant('six', [], Float32Array.of(6))], hint), rank: x.rank };
    case 'sigmoid':
      return { name: g.op('Sigmoid', [x.name], hint), rank: x.rank };
    case 'tanh':
      return { name: g.op('Tanh', [x.name], hint), rank: x.rank };
    default:
      throw new Unsupported(`activation '${String(name)}'`);
  }
}

/** Channel-wise constants broadcast over NCHW maps ([1, C, 1, 1]) or rows ([1, C]). */
const channelDims = (rank: number, c: number) => (rank === 4 ? [1, c, 1, 1] : [1, c]);

/** One layer of the network applied to its inputs. */
function layerOp(g: GraphBuilder, layer: tf.layers.Layer, inputs: Value[]): Value {
  const cls = layer.getClassName();
  const config = layer.getConfig() as Record<string, unknown>;
  const x = inputs[0]!;
  const w = weightsOf(layer);
  const n = layer.name;
  switch (cls) {
    case 'Dropout':
    case 'SpatialDropout2D':
      return x;
    case 'Rescaling': {
      const scaled = g.op('Mul', [x.name, g.constant(`${n}_scale`, [], Float32Array.of(config.scale as number))], n);
      return { name: g.op('Add', [scaled, g.constant(`${n}_offset`, [], Float32Array.of(config.offset as number))], n), rank: x.rank };
    }
    case 'CaffePreprocess': {
      const bgr = g.op('Gather', [x.name, g.constant('bgr', [3], BigInt64Array.of(2n, 1n, 0n))], n, [{ name: 'axis', int: 1 }]);
      const scaled = g.op('Mul', [bgr, g.constant('c255', [], Float32Array.of(255))], n);
      return { name: g.op('Sub', [scaled, g.constant('mean_bgr', [1, 3, 1, 1], Float32Array.from([103.939, 116.779, 123.68]))], n), rank: 4 };
    }
    case 'Conv2D':
    case 'DepthwiseConv2D': {
      if (x.rank !== 4) throw new Unsupported(`${cls} on rank-${x.rank} input`);
      const depthwise = cls === 'DepthwiseConv2D';
      const k = depthwise ? depthwiseKernel(w.get('depthwise_kernel')!) : convKernel(w.get('kernel')!);
      const bias = w.get('bias');
      const attrs: Attr[] = [
        { name: 'kernel_shape', ints: k.dims.slice(2) },
        { name: 'strides', ints: pair(config.strides) },
        { name: 'dilations', ints: pair(config.dilationRate ?? config.dilation_rate ?? 1) },
        autoPad(config.padding),
      ];
      if (depthwise) attrs.push({ name: 'group', int: w.get('depthwise_kernel')!.shape[2]! });
      const ins = [x.name, g.constant(`${n}_kernel`, k.dims, k.data)];
      if (bias) ins.push(g.constant(`${n}_bias`, [bias.size], values(bias)));
      return activation(g, { name: g.op('Conv', ins, n, attrs), rank: 4 }, config.activation, `${n}_act`);
    }
    case 'BatchNormalization': {
      const axis = config.axis as number;
      if (axis !== -1 && axis !== x.rank - 1) throw new Unsupported(`BatchNormalization on axis ${axis}`);
      const mean = w.get('moving_mean')!;
      const c = mean.size;
      const gamma = w.get('gamma') ? values(w.get('gamma')!) : new Float32Array(c).fill(1);
      const beta = w.get('beta') ? values(w.get('beta')!) : new Float32Array(c);
      const ins = [x.name, g.constant(`${n}_gamma`, [c], gamma), g.constant(`${n}_beta`, [c], beta), g.constant(`${n}_mean`, [c], values(mean)), g.constant(`${n}_var`, [c], values(w.get('moving_variance')!))];
      return { name: g.op('BatchNormalization', ins, n, [{ name: 'epsilon', float: config.epsilon as number }]), rank: x.rank };
    }
    case 'Activation':
      return activation(g, x, config.activation, n);
    case 'ReLU': {
      const max = config.maxValue ?? config.max_value;
      if (max === null || max === undefined) return { name: g.op('Relu', [x.name], n), rank: x.rank };
      return { name: g.op('Clip', [x.name, g.constant('zero', [], Float32Array.of(0)), g.constant(`${n}_max`, [], Float32Array.of(max as number))], n), rank: x.rank };
    }
    case 'ZeroPadding2D': {
      const p = config.padding as number | [number, number] | [[number, number], [number, number]];
      const [[top, bottom], [left, right]] = typeof p === 'number' ? [[p, p], [p, p]] : Array.isArray(p[0]) ? (p as [[number, number], [number, number]]) : [[p[0] as number, p[0] as number], [p[1] as number, p[1] as number]];
      return { name: g.op('Pad', [x.name, g.constant(`${n}_pads`, [8], BigInt64Array.from([0, 0, top, left, 0, 0, bottom, right].map(BigInt)))], n), rank: 4 };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const attrs: Attr[] = [{ name: 'kernel_shape', ints: pair(config.poolSize ?? config.pool_size) }, { name: 'strides', ints: pair(config.strides ?? config.poolSize) }, autoPad(config.padding)];
      return { name: g.op(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x.name], n, attrs), rank: 4 };
    }
    case 'GlobalAveragePooling2D':
      return { name: g.op('ReduceMean', [x.name], n, [{ name: 'axes', ints: [2, 3] }, { name: 'keepdims', int: 0 }]), rank: 2 };
    case 'GeM': {
      // As the layer computes it: exp(log(mean(exp(p · log(max(x, eps))))) / p).
      const p = g.constant(`${n}_p`, [], values(w.get('p')!));
      const clamped = g.op('Max', [x.name, g.constant(`${n}_eps`, [], Float32Array.of(config.eps as number))], n);
      const powered = g.op('Exp', [g.op('Mul', [g.op('Log', [clamped], n), p], n)], n);
      const mean = g.op('ReduceMean', [powered], n, [{ name: 'axes', ints: [2, 3] }, { name: 'keepdims', int: 0 }]);
      return { name: g.op('Exp', [g.op('Div', [g.op('Log', [mean], n), p], n)], n), rank: 2 };
    }
    case 'L2Normalize': {
      const norm = g.op('ReduceL2', [x.name], n, [{ name: 'axes', ints: [1] }, { name: 'keepdims', int: 1 }]);
      return { name: g.op('Div', [x.name, g.op('Max', [norm, g.constant(`${n}_tiny`, [], Float32Array.of(1e-12))], n)], n), rank: x.rank };
    }
    case 'Dense': {
      if (x.rank !== 2) throw new Unsupported(`Dense on rank-${x.rank} input`);
      const kernel = w.get('kernel')!;
      let y = g.op('MatMul', [x.name, g.constant(`${n}_kernel`, kernel.shape as number[], values(kernel))], n);
      const bias = w.get('bias');
      if (bias) y = g.op('Add', [y, g.constant(`${n}_bias`, channelDims(2, bias.size), values(bias))], n);
      return activation(g, { name: y, rank: 2 }, config.activation, `${n}_act`);
    }
    case 'Add':
      return { name: g.op('Sum', inputs.map((i) => i.name), n), rank: x.rank };
    case 'Concatenate': {
      const axis = config.axis as number;
      if (axis !== -1 && axis !== x.rank - 1) throw new Unsupported(`Concatenate on axis ${axis}`);
      return { name: g.op('Concat', inputs.map((i) => i.name), n, [{ name: 'axis', int: 1 }]), rank: x.rank };
    }
    default:
      throw new Unsupported(`layer ${n} (${cls})`);
  }
}

const isModel = (layer: tf.layers.Layer): layer is tf.LayersModel => 'layers' in layer && Array.isArray((layer as tf.LayersModel).layers);

/** Writes `model`'s layers, in order, from `input`; nested models (a chained head) recursively. */
function writeModel(g: GraphBuilder, model: tf.LayersModel, input: Value): Value {
  const byTensor = new Map<string, Value>([[tensorKey(model.inputs[0]!), input]]);
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const node = ownNode(model, layer);
    const inputs = node.inputs.map((t) => {
      const v = byTensor.get(tensorKey(t));
      if (!v) throw new Unsupported(`layer ${layer.name} reads a tensor written nowhere`);
      return v;
    });
    byTensor.set(tensorKey(node.output), isModel(layer) ? writeModel(g, layer, inputs[0]!) : layerOp(g, layer, inputs));
  }
  const out = byTensor.get(tensorKey(model.outputs[0]!));
  if (!out) throw new Unsupported('the output depends on no layer');
  return out;
}

/**
 * The ONNX graph of an image network whose output is one row per image: input `bytes`
 * [n, h, w, 3] uint8, output `rows` [n, d] float32 (not normalised, as the tfjs model's). Returns
 * the reason instead when a layer has no ONNX counterpart here.
 */
export function imageModelToOnnx(model: tf.LayersModel): { onnx: Uint8Array; dim: number } | { unsupported: string } {
  const shape = model.outputs[0]!.shape;
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return { unsupported: 'the network has several inputs or outputs' };
  if (shape.length !== 2 || shape[1] === null) return { unsupported: `the network outputs shape ${JSON.stringify(shape)}, not rows` };
  const g = new GraphBuilder();
  try {
    const floats = g.op('Cast', ['bytes'], 'float', [{ name: 'to', int: ElemType.float }]);
    const unit = g.op('Div', [floats, g.constant('c255', [], Float32Array.of(255))], 'unit');
    const nchw = g.op('Transpose', [unit], 'nchw', [{ name: 'perm', ints: [0, 3, 1, 2] }]);
    const out = writeModel(g, model, { name: nchw, rank: 4 });
    if (out.rank !== 2) return { unsupported: 'the network does not end in rows' };
    g.nodes.push({ op: 'Identity', inputs: [out.name], outputs: ['rows'] });
  } catch (err) {
    if (err instanceof Unsupported) return { unsupported: err.message };
    throw err;
  }
  const dim = shape[1]!;
  return {
    dim,
    onnx: onnxModel({
      nodes: g.nodes,
      constants: g.constants,
      inputs: [{ name: 'bytes', elem: ElemType.uint8, dims: ['n', 'h', 'w', 3] }],
      outputs: [{ name: 'rows', elem: ElemType.float, dims: ['n', dim] }],
    }),
  };
}
