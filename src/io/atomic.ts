import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** A temporary name next to `path`, so that the final rename stays on one file system. */
export function tempPathFor(path: string): string {
  return `${path}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`;
}

/**
 * Writes a file under a temporary name and renames it into place, so that a crash never leaves a
 * half-written file under the final name.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    if (Array.isArray(data)) writeFileSync(tmp, Buffer.concat(data as readonly Uint8Array[]));
    else writeFileSync(tmp, data as string | Uint8Array);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Replaces the folder `dir` by one written through `write(tmpDir)`, atomically (rename). */
export async function replaceFolder(dir: string, write: (tmp: string) => Promise<void> | void): Promise<void> {
  const tmp = tempPathFor(dir);
  mkdirSync(tmp, { recursive: true });
  try {
    await write(tmp);
    const old = existsSync(dir) ? tempPathFor(dir) : null;
    if (old) renameSync(dir, old);
    renameSync(tmp, dir);
    if (old) rmSync(old, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
