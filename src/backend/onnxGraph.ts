/**
 * A minimal ONNX model writer: just enough protobuf to describe graphs of standard operators
 * (Gemm, TopK, Conv, …) with symbolic dimensions and constant weights, so that onnxruntime-node can
 * run our dense products and image networks with its optimised CPU kernels. Field numbers follow
 * onnx/onnx.proto.
 */

const utf8 = new TextEncoder();

function varint(value: number): number[] {
  const out: number[] = [];
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

const bytesField = (field: number, bytes: number[]) => [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
const stringField = (field: number, s: string) => bytesField(field, [...utf8.encode(s)]);
const varintField = (field: number, v: number) => [...varint(field << 3), ...varint(v)];
function float32Field(field: number, x: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...varint((field << 3) | 5), ...b];
}

/** ONNX TensorProto element types used here. */
export const ElemType = { float: 1, uint8: 2, int64: 7 } as const;

export type Attr = { name: string; int: number } | { name: string; float: number } | { name: string; ints: number[] } | { name: string; str: string };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Attr[];
}

export interface OnnxValue {
  name: string;
  elem: number;
  /** Fixed sizes or symbolic names. */
  dims: (number | string)[];
}

function attribute(a: Attr): number[] {
  // AttributeProto: name = 1, f = 2, i = 3, ints = 8, type = 20 (FLOAT = 1, INT = 2, INTS = 7)
  if ('int' in a) return [...stringField(1, a.name), ...varintField(20, 2), ...varintField(3, a.int)];
  if ('ints' in a) return [...stringField(1, a.name), ...varintField(20, 7), ...a.ints.flatMap((v) => varintField(8, v))];
  // s = 4, type STRING = 3
  if ('str' in a) return [...stringField(1, a.name), ...varintField(20, 3), ...stringField(4, a.str)];
  return [...stringField(1, a.name), ...varintField(20, 1), ...float32Field(2, a.float)];
}

function node(n: OnnxNode): number[] {
  // NodeProto: input = 1, output = 2, op_type = 4, attribute = 5
  return [
    ...n.inputs.flatMap((i) => stringField(1, i)),
    ...n.outputs.flatMap((o) => stringField(2, o)),
    ...stringField(4, n.op),
    ...(n.attrs ?? []).flatMap((a) => bytesField(5, attribute(a))),
  ];
}

function valueInfo(v: OnnxValue): number[] {
  // ValueInfoProto{name = 1, type = 2}; TypeProto{tensor_type = 1}; Tensor{elem_type = 1, shape = 2};
  // TensorShapeProto{dim = 1}; Dimension{dim_value = 1, dim_param = 2}
  const shape = v.dims.flatMap((d) => bytesField(1, typeof d === 'number' ? varintField(1, d) : stringField(2, d)));
  return [...stringField(1, v.name), ...bytesField(2, bytesField(1, [...varintField(1, v.elem), ...bytesField(2, shape)]))];
}

/** A constant of the graph (a weight): float32 or int64 values of a fixed shape. */
export interface OnnxConstant {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

function constant(c: OnnxConstant): Uint8Array {
  // TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian values)
  const raw = new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
  const head = [...c.dims.flatMap((d) => varintField(1, d)), ...varintField(2, c.data instanceof Float32Array ? ElemType.float : ElemType.int64), ...stringField(8, c.name), ...varint((9 << 3) | 2), ...varint(raw.length)];
  const out = new Uint8Array(head.length + raw.length);
  out.set(head);
  out.set(raw, head.length);
  return out;
}

/** Joins byte chunks (weights are too large for spread arrays). */
function concat(chunks: readonly (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A length-delimited field around bytes already encoded. */
const embedded = (field: number, bytes: Uint8Array): Uint8Array => concat([[...varint((field << 3) | 2), ...varint(bytes.length)], bytes]);

/** Serialises a single-graph ONNX model (IR version 8, default opset 17). */
export function onnxModel(graph: { nodes: OnnxNode[]; inputs: OnnxValue[]; outputs: OnnxValue[]; constants?: OnnxConstant[] }): Uint8Array {
  // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12
  const g = concat([
    ...graph.nodes.map((n) => bytesField(1, node(n))),
    stringField(2, 'ddistill'),
    ...(graph.constants ?? []).map((c) => embedded(5, constant(c))),
    ...graph.inputs.map((v) => bytesField(11, valueInfo(v))),
    ...graph.outputs.map((v) => bytesField(12, valueInfo(v))),
  ]);
  // ModelProto: ir_version = 1, graph = 7, opset_import = 8 (OperatorSetIdProto{domain = 1, version = 2})
  return concat([varintField(1, 8), bytesField(8, [...stringField(1, ''), ...varintField(2, 17)]), embedded(7, g)]);
}
