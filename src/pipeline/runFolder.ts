/**
 * A bootstrap run folder: its manifest.json, loaded (resume) or created, saved with the report
 * after every stage, and the paths of its stages. A stage is complete once its marker file exists.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { renderReport } from '../report/html.js';
import type { RunManifest } from '../report/manifest.js';

export const MANIFEST = 'manifest.json';

/** Seconds since `t0` (performance.now()), to the millisecond. */
export const secondsSince = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(3));

export class RunFolder {
  private constructor(
    readonly out: string,
    readonly manifest: RunManifest,
    private readonly title: string,
    private lastSave: number,
  ) {}

  /**
   * The run in `out`: the one there when resuming (it must have the same fingerprint), or
   * `fresh()` when starting (there must be none).
   */
  static open(out: string, o: { resume?: boolean; fingerprint: string; title: string; fresh: () => RunManifest; started: number }): RunFolder {
    const path = join(out, MANIFEST);
    if (existsSync(path)) {
      if (!o.resume) throw new UserError(`${out} already holds a bootstrap run; add --resume to continue it, or choose another --out`);
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as RunManifest;
      if (manifest.fingerprint !== o.fingerprint) {
        throw new UserError(`${path}: the run was started with other data or options; resume with the same ones (they are in its manifest), or choose another --out`);
      }
      return new RunFolder(out, manifest, o.title, o.started);
    }
    if (o.resume) throw new UserError(`${out}: no bootstrap run to resume (no ${MANIFEST}); run without --resume`);
    mkdirSync(out, { recursive: true });
    return new RunFolder(out, o.fresh(), o.title, o.started);
  }

  path(...parts: string[]): string {
    return join(this.out, ...parts);
  }

  /** iter-N/… */
  iteration(it: number, ...parts: string[]): string {
    return join(this.out, `iter-${it}`, ...parts);
  }

  has(...parts: string[]): boolean {
    return existsSync(join(this.out, ...parts));
  }

  /** Writes manifest.json (adding the time since the last save, or since `started`) and report.html. */
  save(): void {
    this.manifest.seconds = Number((this.manifest.seconds + secondsSince(this.lastSave)).toFixed(3));
    this.lastSave = performance.now();
    writeFileAtomic(join(this.out, MANIFEST), JSON.stringify(this.manifest, null, 2) + '\n');
    writeFileAtomic(join(this.out, 'report.html'), renderReport(this.manifest, this.title));
  }
}
