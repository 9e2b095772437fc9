/**
 * The tfjs backend, chosen in one place: tfjs-node-gpu, else tfjs-node (native TensorFlow, when
 * installed: optional peer dependencies, as they download libtensorflow when they install), else
 * the wasm backend, else the plain cpu backend. Why native TensorFlow did not run is returned for
 * the log (not installed, or installed and failing to load, with the cause). On wasm, slow kernels are replaced by
 * compositions of its fast ones (see docs/design.md and BENCHMARKS.md).
 */
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { registerWasmConvKernels, type KernelArgs, type WasmBackend } from './wasmConv.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend name in use: 'tensorflow', 'wasm' or 'cpu'. */
  readonly backend: string;
  /** Where it came from, for logs and manifests. */
  readonly source: string;
  readonly tfjsVersion: string;
  /** Why native TensorFlow did not run (auto mode): none installed, or which failed to load and why. */
  readonly why?: string;
}

/** The native TensorFlow packages, best first (optional peer dependencies of the package). */
export const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** Whether an import error says the module itself is not installed (not that it failed inside). */
function notInstalled(err: unknown, pkg: string): boolean {
  const e = err as { code?: string; message?: string };
  return (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && (e.message ?? '').includes(pkg);
}

/**
 * Loads the first native tfjs package that is installed and loads (it registers the 'tensorflow'
 * backend). Returns it, and one line for each installed package that failed to load, with its
 * cause (a missing CUDA library, a version that does not match @tensorflow/tfjs, …).
 */
async function loadNative(packages: readonly string[]): Promise<{ pkg: string | null; failures: string[] }> {
  const failures: string[] = [];
  for (const pkg of packages) {
    try {
      await import(pkg);
      return { pkg, failures };
    } catch (err) {
      if (!notInstalled(err, pkg)) failures.push(`${pkg} is installed but failed to load (${firstLine(err)})`);
    }
  }
  return { pkg: null, failures };
}

const firstLine = (err: unknown) => String((err as Error).message ?? err).split('\n')[0]!;

/** The names of the machine's NVIDIA GPUs (nvidia-smi), or null when none is visible. */
export function nvidiaGpus(): string[] | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    const names = out.split('\n').map((l) => l.trim()).filter(Boolean);
    return names.length > 0 ? names : null;
  } catch {
    return null;
  }
}

/**
 * Where native TensorFlow computes, for the log: tfjs-node-gpu on the GPUs it can see (else
 * TensorFlow falls back to the CPU, which is said), tfjs-node on the CPU.
 */
export function nativeSource(pkg: string, gpus: () => string[] | null = nvidiaGpus): string {
  if (!pkg.endsWith('-gpu')) return `${pkg}, TensorFlow on the CPU`;
  const names = gpus();
  return names ? `${pkg}, TensorFlow on GPU ${names.join(', ')}` : `${pkg}, but no GPU is visible (nvidia-smi): TensorFlow on the CPU`;
}

let wasmFixed = false;

/**
 * wasm's BatchMatMul with transposeA/transposeB runs 10× slower than on an explicitly
 * transposed copy (2.2 vs 24.8 GFLOP/s measured): transpose first, then call the original kernel.
 * Backpropagation through dense layers uses the transposed forms, so a triplet step of a
 * 784→1024→128 MLP goes from 2.5 s to 0.18 s.
 *
 * Which copies to make is chosen by their size: A·B as asked (each operand stored transposed
 * gets a transposed copy), or C = (Bᵀ·Aᵀ)ᵀ, which copies the operands stored the other way and
 * then the result. Backpropagation's dY·Wᵀ takes the second form: it copies the small dY and
 * the result instead of the weight matrix, and wasm's transpose of a large matrix is slow (38 ms
 * for 2048 × 2048). The products are the same sums in the same order (equal to the last bit,
 * checked in test/tfjs.test.ts); 96 × 2048 by (2048 × 2048)ᵀ takes 23 ms instead of 71 ms.
 */
export function registerWasmKernelFixes(): void {
  if (wasmFixed) return;
  const matMul = tf.getKernel('BatchMatMul', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!matMul || !transpose) throw new Error('the wasm backend lacks BatchMatMul or Transpose; is @tensorflow/tfjs-backend-wasm loaded?');
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      // Transposes the last two dimensions.
      const swapLast = (x: tf.TensorInfo): tf.TensorInfo => {
        const rank = x.shape.length;
        const perm = Array.from({ length: rank }, (_, i) => i);
        [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
        return transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
      };
      const temporary: tf.TensorInfo[] = [];
      const copy = (x: tf.TensorInfo): tf.TensorInfo => {
        const y = swapLast(x);
        temporary.push(y);
        return y;
      };
      const [a, b] = [inputs.a!, inputs.b!];
      const size = (x: tf.TensorInfo) => x.shape.reduce((p, d) => p * d, 1);
      const rows = a.shape[a.shape.length - (transposeA ? 1 : 2)]!;
      const cols = b.shape[b.shape.length - (transposeB ? 2 : 1)]!;
      const batch = Math.max(size(a) / (a.shape.at(-1)! * a.shape.at(-2)!), size(b) / (b.shape.at(-1)! * b.shape.at(-2)!));
      // Elements copied by each form.
      const asked = (transposeA ? size(a) : 0) + (transposeB ? size(b) : 0);
      const swapped = (transposeA ? 0 : size(a)) + (transposeB ? 0 : size(b)) + batch * rows * cols;
      const plain = { ...attrs, transposeA: false, transposeB: false };
      let out: tf.TensorInfo;
      if (swapped < asked) {
        const product = matMul.kernelFunc({ inputs: { ...inputs, a: transposeB ? b : copy(b), b: transposeA ? a : copy(a) }, backend, attrs: plain }) as tf.TensorInfo;
        temporary.push(product);
        out = swapLast(product);
      } else {
        out = matMul.kernelFunc({ inputs: { ...inputs, a: transposeA ? copy(a) : a, b: transposeB ? copy(b) : b }, backend, attrs: plain }) as tf.TensorInfo;
      }
      for (const t of temporary) (backend as tf.KernelBackend).disposeData(t.dataId);
      return out;
    },
  });
  wasmFixed = true;
}

/**
 * UnsortedSegmentSum, which wasm lacks (it is the gradient of gather): out[s] = Σ x[i] over the
 * rows i with segmentIds[i] = s; ids outside [0, numSegments) are dropped, as on cpu. A plain
 * loop over the heap arrays, O(size of x).
 */
function unsortedSegmentSum({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as WasmBackend;
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as { numSegments: number };
  const rows = segmentIds.shape.reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(segmentIds.shape.length).reduce((p, d) => p * d, 1);
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  const xs = wasm.typedArrayFromHeap(x);
  const ids = wasm.typedArrayFromHeap(segmentIds);
  const o = wasm.typedArrayFromHeap(out);
  o.fill(0);
  for (let i = 0; i < rows; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const from = i * inner;
    const to = s * inner;
    for (let j = 0; j < inner; j++) o[to + j]! += xs[from + j]!;
  }
  return out;
}

/**
 * Tile with block copies: the innermost dimension's runs are copied with `set`, then each
 * outer level repeats the finished block with `copyWithin` (wasm's own kernel computes every
 * element's source index).
 */
function tile({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as WasmBackend;
  const x = inputs.x!;
  const { reps } = attrs as { reps: number[] };
  const shape = x.shape;
  const rank = shape.length;
  const outShape = shape.map((d, i) => d * reps[i]!);
  const out = wasm.makeOutput(outShape, x.dtype);
  const src = wasm.typedArrayFromHeap(x);
  const dst = wasm.typedArrayFromHeap(out);
  if (rank === 0 || src.length === 0) {
    if (rank === 0) dst[0] = src[0]!;
    return out;
  }
  // Writes the tile of x's sub-block at `inOffset` (dims from `axis` on) to `outOffset`.
  const inStride = new Array<number>(rank + 1).fill(1);
  const outStride = new Array<number>(rank + 1).fill(1);
  for (let i = rank - 1; i >= 0; i--) {
    inStride[i] = inStride[i + 1]! * shape[i]!;
    outStride[i] = outStride[i + 1]! * outShape[i]!;
  }
  const fill = (axis: number, inOffset: number, outOffset: number): void => {
    if (axis === rank - 1) {
      const run = src.subarray(inOffset, inOffset + shape[axis]!);
      dst.set(run, outOffset);
    } else {
      for (let i = 0; i < shape[axis]!; i++) fill(axis + 1, inOffset + i * inStride[axis + 1]!, outOffset + i * outStride[axis + 1]!);
    }
    // Repeat the block just written (shape[axis] sub-blocks) reps[axis] − 1 more times.
    const block = shape[axis]! * outStride[axis + 1]!;
    for (let r = 1; r < reps[axis]!; r++) dst.copyWithin(outOffset + r * block, outOffset, outOffset + block);
  };
  fill(0, 0, 0);
  return out;
}

/** Registers the kernels wasm lacks and replaces its slow ones (idempotent). */
export function registerWasmKernels(): void {
  registerWasmKernelFixes();
  registerWasmConvKernels();
  if (!tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum as tf.KernelFunc });
  }
  if (!tileReplaced) {
    tf.unregisterKernel('Tile', 'wasm');
    tf.registerKernel({ kernelName: 'Tile', backendName: 'wasm', kernelFunc: tile as tf.KernelFunc });
    tileReplaced = true;
  }
}
let tileReplaced = false;

/**
 * Picks and initialises the backend ('auto': tensorflow, else wasm, else cpu). The tfjs banner
 * about tfjs-node is silenced; callers log the returned choice, and `why` when it is not native
 * TensorFlow: no native package installed, or which one failed to load and its cause.
 */
export async function initBackend(choice: BackendChoice = 'auto', o: { nativePackages?: readonly string[]; gpus?: () => string[] | null } = {}): Promise<BackendInfo> {
  tf.env().set('PROD', true);
  const info = (backend: string, source: string, why?: string): BackendInfo => ({ backend, source, tfjsVersion: tf.version.tfjs, ...(why ? { why } : {}) });
  let why: string | undefined;
  if (choice === 'auto' || choice === 'tensorflow') {
    const packages = o.nativePackages ?? NATIVE_PACKAGES;
    const { pkg, failures } = await loadNative(packages);
    if (pkg && (await tf.setBackend('tensorflow'))) return info('tensorflow', nativeSource(pkg, o.gpus));
    why = failures.length > 0 ? failures.join('; ') : `no native TensorFlow installed (${packages.join(' or ')})`;
    if (choice === 'tensorflow') {
      throw new UserError(
        failures.length > 0
          ? `--backend tensorflow: ${why}; fix that install (its version must match @tensorflow/tfjs ${tf.version.tfjs}) or use --backend wasm`
          : `--backend tensorflow needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu ${tf.version.tfjs}; install one (it downloads libtensorflow) or use --backend wasm`,
      );
    }
  }
  if (choice === 'auto' || choice === 'wasm') {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
      if (await tf.setBackend('wasm')) {
        registerWasmKernels();
        return info('wasm', '@tensorflow/tfjs-backend-wasm (SIMD, 1 thread)', why);
      }
    } catch (err) {
      if (choice === 'wasm') throw new UserError(`the wasm backend failed to start (${(err as Error).message}); use --backend cpu`);
      why = `${why ? `${why}; ` : ''}the wasm backend failed to start (${firstLine(err)})`;
    }
  }
  await tf.setBackend('cpu');
  return info('cpu', '@tensorflow/tfjs cpu backend (slow: about 1 GFLOP/s)', why);
}

/** A tensor's values as a plain array and its shape (what crosses to a worker thread). */
export interface TensorData {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Whether inputs are tensors (not TensorData). */
export const isTensor = (x: tf.Tensor | TensorData): x is tf.Tensor => x instanceof tf.Tensor;

/** TensorData as tensors, one for each. */
export function tensorsOf<T extends TensorData | readonly TensorData[]>(x: T): T extends TensorData ? tf.Tensor : tf.Tensor[];
export function tensorsOf(x: TensorData | readonly TensorData[]): tf.Tensor | tf.Tensor[] {
  return Array.isArray(x) ? (x as readonly TensorData[]).map((t) => tf.tensor(t.data, [...t.shape])) : tf.tensor((x as TensorData).data, [...(x as TensorData).shape]);
}

/**
 * A float32 tensor's values where the wasm backend keeps them (a view of its memory, valid until
 * the next tfjs call; to read, not to write), or null on another backend.
 */
function heapValues(t: tf.Tensor): Float32Array | null {
  if (tf.getBackend() !== 'wasm' || t.dtype !== 'float32') return null;
  return (tf.backend() as unknown as WasmBackend).typedArrayFromHeap(t) as Float32Array;
}

/** The values of `tensors`, concatenated in order, into `out` (a flat layout, e.g. shared memory). */
export function writeFlat(tensors: readonly tf.Tensor[], out: Float32Array): void {
  let offset = 0;
  for (const t of tensors) {
    out.set(heapValues(t) ?? (t.dataSync() as Float32Array), offset);
    offset += t.size;
  }
}

/** The inverse of writeFlat: `values` (tensors concatenated in order) assigned to `variables`. */
export function assignFlat(variables: readonly tf.Variable[], values: Float32Array): void {
  // Each weight takes a new tensor: writing into its memory would leave stale the copies that
  // wasm's matrix products keep of their weights (XNNPACK's packed operands, per tensor).
  // wasm copies the values into its memory; the cpu backend would keep a view of `values`
  // (shared memory) as the weight's storage, so it gets a copy.
  const copy = tf.getBackend() !== 'wasm';
  let offset = 0;
  for (const v of variables) {
    const part = values.subarray(offset, offset + v.size);
    const t = tf.tensor(copy ? part.slice() : part, v.shape);
    v.assign(t);
    t.dispose();
    offset += v.size;
  }
}

export { tf };
