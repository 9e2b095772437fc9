/**
 * Convolution gradient kernels for the wasm backend, which lacks Conv2DBackpropFilter and the
 * depthwise backprops and whose Conv2DBackpropInput is slow. The dense gradients are rewritten as
 * plain convolutions for wasm's fast (XNNPACK) Conv2D — the input gradient on the dilated, padded
 * output gradient, the filter gradient on transposed tensors (im2col + BatchMatMul when its
 * padding would be negative); the depthwise ones are direct loops (their work is small). NHWC
 * only, as the layers use.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs's wasm backend the extra kernels use: outputs and views of its heap. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
  disposeData(dataId: object): boolean;
}

type Info = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown };

function convInfo(xShape: number[], filterShape: number[], a: { strides: number | [number, number]; pad: unknown; dimRoundingMode?: 'floor' | 'round' | 'ceil'; dilations?: number | [number, number]; dataFormat?: string }, depthwise: boolean): Info {
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') throw new Error(`wasm convolution gradients support NHWC only, not ${a.dataFormat}`);
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad as 'same',
    a.dimRoundingMode,
    depthwise,
  );
}

/**
 * Calls fn(row, kk, pixel) for every output position and filter tap that lands inside the input:
 * row = (n·OH + oh)·OW + ow, kk = kh·KW + kw, pixel = (n·H + ih)·W + iw. The index walk of the
 * im2col filter gradient and the depthwise kernels.
 */
function forEachTap(c: Info, fn: (row: number, kk: number, pixel: number) => void): void {
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, filterHeight: KH, filterWidth: KW } = c;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const row = (n * OH + oh) * OW + ow;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sh - top + kh * dh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sw - left + kw * dw;
            if (iw < 0 || iw >= W) continue;
            fn(row, kh * KW + kw, (n * H + ih) * W + iw);
          }
        }
      }
    }
  }
}

/** wasm's BatchMatMul (with this project's transpose fix) on 2-d heap views, result as a new output. */
function matMul(backend: unknown, a: tf.TensorInfo, aShape: [number, number], b: tf.TensorInfo, bShape: [number, number], transposeA: boolean, transposeB: boolean): tf.TensorInfo {
  const kernel = tf.getKernel('BatchMatMul', 'wasm')!;
  return kernel.kernelFunc({
    inputs: { a: { ...a, shape: [1, ...aShape] }, b: { ...b, shape: [1, ...bShape] } },
    backend: backend as tf.KernelBackend,
    attrs: { transposeA, transposeB },
  }) as tf.TensorInfo;
}

/**
 * dW as a plain convolution on transposed tensors, so that wasm's fast Conv2D does the work:
 * x viewed as CI images of H × W with N channels, dy as an OH × OW filter from N to CO channels,
 * dilated by the stride: dW[kh, kw, ci, co] = Σ x[n, oh·s + kh − pad, ow·s + kw − pad, ci] ·
 * dy[n, oh, ow, co]. Falls back to im2col + BatchMatMul when the padding would be negative.
 */
function conv2DBackpropFilter({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as WasmBackend;
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const c = convInfo(x.shape, a.filterShape, a, false);
  const { inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = c;
  const top = c.padInfo.top;
  const left = c.padInfo.left;
  const bottom = KH - 1 + (OH - 1) * sh + 1 - H - top;
  const right = KW - 1 + (OW - 1) * sw + 1 - W - left;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) return conv2DBackpropFilterIm2col(wasm, backend, x, dy, a.filterShape, c);
  const transpose = tf.getKernel('Transpose', 'wasm')!;
  const conv = tf.getKernel('Conv2D', 'wasm')!;
  const kb = backend as tf.KernelBackend;
  const xt = transpose.kernelFunc({ inputs: { x }, backend: kb, attrs: { perm: [3, 1, 2, 0] } }) as tf.TensorInfo; // CI, H, W, N
  const dyt = transpose.kernelFunc({ inputs: { x: dy }, backend: kb, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo; // OH, OW, N, CO
  const out = conv.kernelFunc({
    inputs: { x: xt, filter: dyt },
    backend: kb,
    attrs: { strides: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], dataFormat: 'NHWC', dilations: [sh, sw] },
  }) as tf.TensorInfo; // CI, KH, KW, CO
  wasm.disposeData(xt.dataId);
  wasm.disposeData(dyt.dataId);
  const result = transpose.kernelFunc({ inputs: { x: out }, backend: kb, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo; // KH, KW, CI, CO
  wasm.disposeData(out.dataId);
  return result;
}

/** dW = im2col(x)ᵀ · dy: [KH·KW·CI, N·OH·OW] × [N·OH·OW, CO]. */
function conv2DBackpropFilterIm2col(wasm: WasmBackend, backend: unknown, x: tf.TensorInfo, dy: tf.TensorInfo, filterShape: number[], c: Info): tf.TensorInfo {
  const CI = c.inChannels;
  const rows = c.batchSize * c.outHeight * c.outWidth;
  const width = c.filterHeight * c.filterWidth * CI;
  const cols = wasm.makeOutput([rows, width], 'float32');
  const P = wasm.typedArrayFromHeap(cols) as Float32Array;
  P.fill(0);
  const X = wasm.typedArrayFromHeap(x) as Float32Array;
  forEachTap(c, (row, kk, pixel) => {
    const to = row * width + kk * CI;
    const from = pixel * CI;
    for (let ci = 0; ci < CI; ci++) P[to + ci] = X[from + ci]!;
  });
  const product = matMul(backend, cols, [rows, width], dy, [rows, c.outChannels], true, false);
  wasm.disposeData(cols.dataId);
  const out = wasm.makeOutput(filterShape, 'float32');
  (wasm.typedArrayFromHeap(out) as Float32Array).set(wasm.typedArrayFromHeap(product) as Float32Array);
  wasm.disposeData(product.dataId);
  return out;
}

/**
 * dx as a plain convolution, so that wasm's fast (XNNPACK) Conv2D does the work: dy is dilated by
 * the stride and padded (one pass over the heap), then convolved ('valid', stride 1) with the
 * filter flipped in space and with its channel axes swapped:
 * dx[i, j, ci] = Σ dy_padded[i + a, j + b, co] · W[KH−1−a, KW−1−b, ci, co].
 */
function conv2DBackpropInput({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as WasmBackend;
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const c = convInfo(a.inputShape, filter.shape, a, false);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO, filterHeight: KH, filterWidth: KW } = c;
  const { strideHeight: sh, strideWidth: sw } = c;
  const top = KH - 1 - c.padInfo.top;
  const left = KW - 1 - c.padInfo.left;
  const HP = H + KH - 1;
  const WP = W + KW - 1;
  const padded = wasm.makeOutput([N, HP, WP, CO], 'float32');
  const P = wasm.typedArrayFromHeap(padded) as Float32Array;
  P.fill(0);
  const DY = wasm.typedArrayFromHeap(dy) as Float32Array;
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      const i = oh * sh + top;
      if (i < 0 || i >= HP) continue;
      for (let ow = 0; ow < OW; ow++) {
        const j = ow * sw + left;
        if (j < 0 || j >= WP) continue;
        const from = ((n * OH + oh) * OW + ow) * CO;
        P.set(DY.subarray(from, from + CO), ((n * HP + i) * WP + j) * CO);
      }
    }
  }
  // Flipped filter, [KH, KW, CO, CI].
  const flipped = wasm.makeOutput([KH, KW, CO, CI], 'float32');
  const F = wasm.typedArrayFromHeap(filter) as Float32Array;
  const G = wasm.typedArrayFromHeap(flipped) as Float32Array;
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const src = ((KH - 1 - kh) * KW + (KW - 1 - kw)) * CI * CO;
      const dst = (kh * KW + kw) * CO * CI;
      for (let ci = 0; ci < CI; ci++) for (let co = 0; co < CO; co++) G[dst + co * CI + ci] = F[src + ci * CO + co]!;
    }
  }
  const conv = tf.getKernel('Conv2D', 'wasm')!;
  const out = conv.kernelFunc({
    inputs: { x: padded, filter: flipped },
    backend: backend as tf.KernelBackend,
    attrs: { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] },
  }) as tf.TensorInfo;
  wasm.disposeData(padded.dataId);
  wasm.disposeData(flipped.dataId);
  return out;
}

/**
 * The depthwise gradients, direct loops over the taps (their work is small):
 *   filter: dW[kh, kw, c, m] = Σ x[n, ih, iw, c] · dy[n, oh, ow, c·M + m]
 *   input:  dx[n, ih, iw, c] = Σ W[kh, kw, c, m] · dy[n, oh, ow, c·M + m]
 */
function depthwiseBackprop(wrt: 'filter' | 'input', { inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as WasmBackend;
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs & tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const dy = inputs.dy!;
  const other = wrt === 'filter' ? inputs.x! : inputs.filter!; // x, or the filter
  const c = wrt === 'filter' ? convInfo(other.shape, a.filterShape, a, true) : convInfo(a.inputShape, other.shape, a, true);
  const C = c.inChannels;
  const M = c.outChannels / C;
  const CM = C * M;
  const V = wasm.typedArrayFromHeap(other) as Float32Array;
  const DY = wasm.typedArrayFromHeap(dy) as Float32Array;
  const out = wasm.makeOutput(wrt === 'filter' ? a.filterShape : a.inputShape, 'float32');
  const O = wasm.typedArrayFromHeap(out) as Float32Array;
  O.fill(0);
  forEachTap(c, (row, kk, pixel) => {
    const xo = pixel * C;
    const yo = row * CM;
    const wo = kk * CM;
    for (let ch = 0; ch < C; ch++) {
      if (wrt === 'filter') {
        const xv = V[xo + ch]!;
        for (let m = 0; m < M; m++) O[wo + ch * M + m]! += xv * DY[yo + ch * M + m]!;
      } else {
        let s = 0;
        for (let m = 0; m < M; m++) s += V[wo + ch * M + m]! * DY[yo + ch * M + m]!;
        O[xo + ch]! += s;
      }
    }
  });
  return out;
}

let registered = false;

/** Registers (or replaces) the four convolution gradient kernels on wasm. Idempotent. */
export function registerWasmConvKernels(): void {
  if (registered) return;
  const kernels: [string, (args: KernelArgs) => tf.TensorInfo][] = [
    ['Conv2DBackpropFilter', conv2DBackpropFilter],
    ['Conv2DBackpropInput', conv2DBackpropInput],
    ['DepthwiseConv2dNativeBackpropFilter', (args) => depthwiseBackprop('filter', args)],
    ['DepthwiseConv2dNativeBackpropInput', (args) => depthwiseBackprop('input', args)],
  ];
  for (const [kernelName, fn] of kernels) {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: fn as tf.KernelFunc });
  }
  registered = true;
}
