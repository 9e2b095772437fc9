import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.js';

/** A file given directly, or `name` inside a given folder (a stage's output folder). */
export function fileOrInFolder(path: string, name: string): string {
  return existsSync(path) && statSync(path).isDirectory() ? join(path, name) : path;
}

/**
 * Checks, before any work, that `path` can be an output folder: it is a folder or can be created
 * as one (its nearest existing ancestor is a writable folder). A one-line error otherwise.
 */
export function ensureOutputFolder(path: string, flag = '--out'): void {
  let p = resolve(path);
  while (!existsSync(p)) {
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  if (!statSync(p).isDirectory()) {
    throw new UserError(`${flag} ${path}: ${p} is a file, not a folder; choose another ${flag}`);
  }
  try {
    accessSync(p, constants.W_OK);
  } catch {
    throw new UserError(`${flag} ${path}: cannot write in ${p} (permission denied); choose another ${flag}`);
  }
}
