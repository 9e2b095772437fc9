/** --params: diffusion parameters as inline JSON or a JSON file (`diffuse`, `bootstrap`). */
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../../errors.js';
import type { DiffusionMethod, DiffusionParams } from '../../diffusion/index.js';
import { parseParams } from '../../diffusion/run.js';

export function paramsFlag(method: DiffusionMethod, value: string): DiffusionParams {
  const inline = value.trim().startsWith('{');
  if (!inline && !existsSync(value)) throw new UserError(`--params: ${value}: no such file; give a JSON object or a file holding one`);
  return parseParams(method, inline ? value : readFileSync(value, 'utf8'), inline ? '--params' : value);
}
