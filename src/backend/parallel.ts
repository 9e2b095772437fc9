/**
 * Runs the kernels of kernels.ts over row ranges on all cores: worker threads share the big arrays
 * through SharedArrayBuffers. Small jobs (or a single core) run in the main thread.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { HELPERS, KERNELS, type KernelArgs, type KernelName } from './kernels.js';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
${HELPERS.map((fn) => fn.toString()).join('\n')}
const KERNELS = {
${Object.entries(KERNELS)
  .map(([name, fn]) => `  ${name}: ${fn.toString()},`)
  .join('\n')}
};
parentPort.on('message', ({ id, kernel, args }) => {
  try {
    parentPort.postMessage({ id, result: KERNELS[kernel](args) });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.stack || err) });
  }
});
`;

/** A typed array backed by shared memory (so workers see the same data); shared input is returned as is. */
export function sharedCopy<T extends Float64Array | Float32Array | Int32Array>(src: T): T {
  if (src.buffer instanceof SharedArrayBuffer) return src;
  const Ctor = src.constructor as { new (b: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };
  const out = new Ctor(new SharedArrayBuffer(Math.max(8, src.length * Ctor.BYTES_PER_ELEMENT)));
  out.set(src as never);
  return (out.length === src.length ? out : (out.subarray(0, src.length) as T));
}

/** `a` in shared memory when work will run on worker threads, else `a` itself. */
export function shareIf<T extends Float64Array | Float32Array | Int32Array>(a: T, parallel: boolean): T {
  return parallel ? sharedCopy(a) : a;
}

export function sharedFloat64(length: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(Math.max(8, length * 8))).subarray(0, length);
}

class Pool {
  private readonly workers: Worker[] = [];
  private next = 0;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(readonly size: number) {}

  private worker(i: number): Worker {
    let w = this.workers[i];
    if (!w) {
      w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', ({ id, result, error }: { id: number; result?: unknown; error?: string }) => {
        const p = this.pending.get(id);
        this.pending.delete(id);
        if (this.pending.size === 0) for (const x of this.workers) x.unref();
        if (error) p?.reject(new Error(`kernel failed in a worker: ${error}`));
        else p?.resolve(result);
      });
      w.on('error', (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      w.unref();
      this.workers[i] = w;
    }
    return w;
  }

  run(i: number, kernel: KernelName, args: KernelArgs): Promise<unknown> {
    const id = this.next++;
    const w = this.worker(i);
    w.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, kernel, args });
    });
  }
}

let pool: Pool | null = null;

/** Number of threads kernels may use. */
export function threads(): number {
  return Math.max(1, Math.min(availableParallelism(), 8));
}

/**
 * Runs `kernel` over the ranges [bounds[t], bounds[t + 1]), one per thread, and returns each
 * range's result. Arrays in `args` that workers must see have to be shared (sharedCopy).
 */
export async function runRanges(kernel: KernelName, args: KernelArgs, bounds: number[], parallel: boolean): Promise<unknown[]> {
  const ranges = bounds.slice(0, -1).map((from, t) => ({ ...args, from, to: bounds[t + 1]! }));
  if (!parallel || ranges.length === 1) return ranges.map((r) => (KERNELS[kernel] as (a: KernelArgs) => unknown)(r));
  pool ??= new Pool(threads());
  return Promise.all(ranges.map((r, t) => pool!.run(t % pool!.size, kernel, r)));
}

/** Bounds splitting [from, from + count) into `parts` ranges of about equal length. */
export function evenBounds(from: number, count: number, parts: number): number[] {
  return Array.from({ length: parts + 1 }, (_, u) => from + Math.round((u * count) / parts));
}

/** Splits [0, n) into `parts` ranges of about equal cost, given the cost of each item. */
export function balancedBounds(n: number, parts: number, cost: (i: number) => number): number[] {
  let total = 0;
  for (let i = 0; i < n; i++) total += cost(i);
  const bounds = [0];
  let acc = 0;
  for (let i = 0; i < n && bounds.length < parts; i++) {
    acc += cost(i);
    if (acc >= (total * bounds.length) / parts) bounds.push(i + 1);
  }
  bounds.push(n);
  return bounds;
}
