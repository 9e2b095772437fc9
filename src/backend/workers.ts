/**
 * Starts a worker thread from a module of this package. Built code (dist/, `.js`) is loaded as is;
 * source code (`.ts`, under tsx or vitest) is loaded through tsx's loader, which the worker
 * registers for itself, so tests and scripts run the same worker modules as the CLI.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** The URL of module `name` next to `here` (an `import.meta.url`), with `here`'s extension. */
export function siblingModule(here: string, name: string): URL {
  const ext = here.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${ext}`, here);
}

/** tsx's ESM loader API, resolved from this package (bare when the runner has no import.meta.resolve). */
function tsxLoader(): string {
  try {
    return typeof import.meta.resolve === 'function' ? import.meta.resolve('tsx/esm/api') : 'tsx/esm/api';
  } catch {
    return 'tsx/esm/api';
  }
}

/** A worker running the module at `url`. */
export function moduleWorker(url: URL, options: WorkerOptions = {}): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, options);
  const tsx = tsxLoader();
  const boot = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
