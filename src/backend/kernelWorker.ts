/**
 * The worker side of parallel.ts: runs one kernel call per message. A message names the kernel
 * module (its URL) and the kernel; modules are imported once per worker.
 */
import { parentPort } from 'node:worker_threads';
import type { KernelArgs } from './parallel.js';

type Kernels = Record<string, (args: KernelArgs) => unknown>;
const modules = new Map<string, Promise<Kernels>>();

function kernelsOf(url: string): Promise<Kernels> {
  let m = modules.get(url);
  if (!m) {
    m = import(url).then((mod: { KERNELS?: Kernels }) => {
      if (!mod.KERNELS) throw new Error(`${url} exports no KERNELS`);
      return mod.KERNELS;
    });
    modules.set(url, m);
  }
  return m;
}

/** The worker-owned buffers of a result's typed arrays: moved to the main thread, not copied. */
function ownBuffers(result: unknown): ArrayBuffer[] {
  const values = ArrayBuffer.isView(result) ? [result] : result && typeof result === 'object' ? Object.values(result) : [];
  const buffers = new Set<ArrayBuffer>();
  for (const v of values) if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer) buffers.add(v.buffer);
  return [...buffers];
}

interface Job {
  readonly id: number;
  readonly module: string;
  readonly kernel: string;
  readonly args: KernelArgs;
}

parentPort!.on('message', async ({ id, module, kernel, args }: Job) => {
  try {
    const kernels = await kernelsOf(module);
    if (kernel === '') return parentPort!.postMessage({ id, result: null }); // a warm-up: import only
    const fn = kernels[kernel];
    if (!fn) throw new Error(`${module} has no kernel '${kernel}'`);
    const result = fn(args);
    parentPort!.postMessage({ id, result }, ownBuffers(result));
  } catch (err) {
    parentPort!.postMessage({ id, error: String((err as Error)?.stack ?? err) });
  }
});
