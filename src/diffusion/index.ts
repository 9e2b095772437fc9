/** One interface for every diffusion: descriptors in, ranked neighbours out. */
import type { Matrix } from '../matrix.js';
import { cas, CAS_DEFAULTS, CAS_PRESETS, type CasParams } from './cas.js';
import type { DiffusionResult, DiffusionRunOptions } from './common.js';
import { iscen, ISCEN_DEFAULTS, type IscenParams } from './iscen.js';
import { lcdp, LCDP_DEFAULTS, type LcdpParams } from './lcdp.js';

export type DiffusionMethod = 'cas' | 'lcdp' | 'iscen';
export const DIFFUSION_METHODS: readonly DiffusionMethod[] = ['cas', 'lcdp', 'iscen'];

export type DiffusionParams = Partial<CasParams> | Partial<LcdpParams> | Partial<IscenParams>;

export const DIFFUSION_DEFAULTS = { cas: CAS_DEFAULTS, lcdp: LCDP_DEFAULTS, iscen: ISCEN_DEFAULTS } as const;
export { CAS_PRESETS };

/**
 * Runs a diffusion. With `queries`, ranks the database for each query (query re-ranking); with
 * null, ranks every database item's neighbours, leaving the item itself out (self-ranking).
 */
export function diffuse(
  method: DiffusionMethod,
  db: Matrix,
  queries: Matrix | null,
  params: DiffusionParams = {},
  opts: DiffusionRunOptions = {},
): Promise<DiffusionResult> {
  switch (method) {
    case 'cas':
      return cas(db, queries, params as Partial<CasParams>, opts);
    case 'lcdp':
      return lcdp(db, queries, params as Partial<LcdpParams>, opts);
    case 'iscen':
      return iscen(db, queries, params as Partial<IscenParams>, opts);
  }
}

export type { DiffusionResult, DiffusionRunOptions } from './common.js';
