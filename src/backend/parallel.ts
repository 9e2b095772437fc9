/**
 * Runs kernels over row ranges on all cores: worker threads (kernelWorker.ts) share the big arrays
 * through SharedArrayBuffers. Small jobs (or a single core) run in the main thread.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { moduleWorker, siblingModule } from './workers.js';

/** Arguments every kernel receives: shared arrays by name, plus scalars. */
export type KernelArgs = Record<string, unknown>;

/** The rows a kernel call works on. */
export interface RowRange {
  readonly from: number;
  readonly to: number;
}

/**
 * A module of kernels: `url` is the module's own `import.meta.url` (workers import it and look
 * the kernel up in its `KERNELS` export), `kernels` the same functions for the main thread.
 */
export interface KernelSet {
  readonly url: string;
  readonly kernels: Readonly<Record<string, (args: KernelArgs) => unknown>>;
}

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

/**
 * `shareIf` with the decision made once: `const share = sharer(parallel)`, then `share(a)` for
 * every array a kernel call reads.
 */
export function sharer(parallel: boolean): <T extends Float64Array | Float32Array | Int32Array>(a: T) => T {
  return (a) => shareIf(a, parallel);
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
      w = moduleWorker(siblingModule(import.meta.url, 'kernelWorker'));
      w.on('message', ({ id, result, error }: { id: number; result?: unknown; error?: string }) => {
        const p = this.pending.get(id);
        this.pending.delete(id);
        if (this.pending.size === 0) for (const x of this.workers) x?.unref();
        if (error) p?.reject(new Error(`kernel failed in a worker: ${error}`));
        else p?.resolve(result);
      });
      const fail = (err: Error) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        if (this.workers[i] === w) delete this.workers[i];
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`a kernel worker stopped (exit code ${code})`)));
      w.unref();
      this.workers[i] = w;
    }
    return w;
  }

  run(i: number, module: string, kernel: string, args: KernelArgs): Promise<unknown> {
    const id = this.next++;
    const w = this.worker(i);
    w.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, module, kernel, args });
    });
  }
}

let pool: Pool | null = null;

/** Number of threads kernels may use. */
export function threads(): number {
  return Math.max(1, Math.min(availableParallelism(), 8));
}

/**
 * Runs kernel `name` of `set` over the ranges [bounds[t], bounds[t + 1]), one per thread, and
 * returns each range's result. Arrays in `args` that workers must see have to be shared (sharedCopy).
 */
export async function runRanges(set: KernelSet, name: string, args: KernelArgs, bounds: number[], parallel: boolean): Promise<unknown[]> {
  const fn = set.kernels[name];
  if (!fn) throw new Error(`no kernel '${name}' in ${set.url}`);
  const ranges = bounds.slice(0, -1).map((from, t) => ({ ...args, from, to: bounds[t + 1]! }));
  if (!parallel || ranges.length === 1) return ranges.map((r) => fn(r));
  const workers = (pool ??= new Pool(threads()));
  // Each thread takes the next range when it finishes one, so uneven ranges do not leave a thread idle.
  const results = new Array<unknown>(ranges.length);
  let next = 0;
  const drain = async (w: number): Promise<void> => {
    while (next < ranges.length) {
      const t = next++;
      results[t] = await workers.run(w, set.url, name, ranges[t]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers.size, ranges.length) }, (_, w) => drain(w)));
  return results;
}

/**
 * Starts the worker threads and has each import the kernel modules, without waiting: a caller
 * that knows parallel kernels will follow calls this before its own serial work, so the threads'
 * start-up (a few hundred milliseconds) overlaps it instead of delaying the first kernel.
 */
export function warmUp(...sets: KernelSet[]): void {
  if (threads() < 2) return;
  pool ??= new Pool(threads());
  for (let t = 0; t < pool.size; t++) for (const set of sets) pool.run(t, set.url, '', {}).catch(() => {});
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
