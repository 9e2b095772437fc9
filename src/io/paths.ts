import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A file given directly, or `name` inside a given folder (a stage's output folder). */
export function fileOrInFolder(path: string, name: string): string {
  return existsSync(path) && statSync(path).isDirectory() ? join(path, name) : path;
}
