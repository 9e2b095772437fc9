/**
 * onnxruntime-node, loaded in one place: the native CPU kernels that run our dense products
 * (dense.ts) and the image networks converted to ONNX (model/onnxImage.ts). Absent or failing to
 * load, callers fall back to their TypeScript or tfjs path.
 */
import { availableParallelism } from 'node:os';

export type Ort = typeof import('onnxruntime-node');

let ort: Promise<Ort | null> | null = null;

/** The onnxruntime-node module, or null when it is not installed or does not load here. */
export function loadOrt(): Promise<Ort | null> {
  ort ??= import('onnxruntime-node').then(
    (m) => m,
    () => null,
  );
  return ort;
}

/** Session options: every core for one operator, all graph optimisations (Conv + BatchNorm fusion…), quiet. */
export const sessionOptions = () => ({
  intraOpNumThreads: availableParallelism(),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all' as const,
  logSeverityLevel: 3 as const,
});

/** `a`, or a copy of it in ordinary memory when it lives in a SharedArrayBuffer (onnxruntime refuses those). */
export function unshared(a: Float32Array): Float32Array {
  return a.buffer instanceof SharedArrayBuffer ? a.slice() : a;
}
