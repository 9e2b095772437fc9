/** Shared pieces of the command-line shell: hidden aliases, progress display, output. */
import { Option } from 'commander';
import type { EpochRecord, StepProgress } from '../train/records.js';

/**
 * An old spelling that keeps working, hidden from --help. The vocabulary every command shares:
 * --queries for query descriptors, --top-k for result counts, --triplet-range for the triplet
 * range; --query and -k are the hidden aliases.
 */
export function hiddenAlias(flags: string, parse?: (value: string) => unknown): Option {
  const option = new Option(flags).hideHelp();
  return parse ? option.argParser(parse) : option;
}

/** The value given under the alias when there is one, else under the name (or its default). */
export const aliased = <T>(value: T, alias: T | undefined): T => (alias !== undefined ? alias : value);

/** Progress of named stages: one self-updating line per stage on a terminal. */
export function stageProgress(): { update(stage: string, done: number, total: number): void; done(): void } {
  let current = '';
  let bar = progress('');
  return {
    update(stage, done, total) {
      if (stage !== current) {
        bar.done();
        bar = progress(stage);
        current = stage;
      }
      bar.update(done, total);
    },
    done() {
      bar.done();
    },
  };
}

/**
 * Progress on stderr: a self-updating line on a terminal, nothing when stderr is piped (so logs
 * stay clean). Reports a fraction, elapsed time and an ETA.
 */
export function progress(label: string): { update(done: number, total: number, detail?: string): void; done(): void } {
  const tty = process.stderr.isTTY === true;
  const start = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(done, total, detail) {
      if (!tty) return;
      const now = performance.now();
      if (now - last < 200 && done < total) return;
      last = now;
      const elapsed = (now - start) / 1000;
      const frac = total > 0 ? done / total : 1;
      const eta = frac > 0 ? (elapsed / frac) * (1 - frac) : NaN;
      const extra = detail ? `  ${detail}` : '';
      process.stderr.write(`\r${label}: ${(frac * 100).toFixed(0).padStart(3)}%${extra}  ${duration(elapsed)} elapsed, ETA ${Number.isFinite(eta) ? duration(eta) : '?'}   `);
      shown = true;
    },
    done() {
      if (shown) process.stderr.write('\n');
    },
  };
}

/**
 * The images bar's detail: photos done of all, and photos per second since the first report
 * (photos already done then, e.g. found in a feature cache, do not count as speed).
 */
export function photoRate(): (done: number, total: number) => string {
  let start: { done: number; at: number } | null = null;
  return (done, total) => {
    start ??= { done, at: performance.now() };
    const seconds = (performance.now() - start.at) / 1000;
    const rate = seconds > 0.5 ? `, ${((done - start.done) / seconds).toFixed(1)} photos/s` : '';
    return `${done}/${total} photos${rate}`;
  };
}

/** A progress bar over images (photos/s, time left), unreadable ones skipped noted each on its own line. */
export function imageProgress(label: string): { onSkip(path: string, message: string): void; onProgress(done: number, total: number): void; done(): void } {
  const bar = progress(label);
  const rate = photoRate();
  return {
    onSkip(path, message) {
      bar.done();
      note(`skipped ${path}: ${message}`);
    },
    onProgress: (done, total) => bar.update(done, total, rate(done, total)),
    done: () => bar.done(),
  };
}

/** The training bar's detail: epoch, running loss, triplets/s. */
export function stepDetail(p: StepProgress): string {
  return `epoch ${p.epoch + 1}  loss ${p.loss.toFixed(4)}  ${Math.round(p.tripletsPerSecond)} triplets/s`;
}

/** The log line of a finished epoch. */
export function epochLine(r: EpochRecord): string {
  const val = r.validation ? `, validation ${Object.entries(r.validation).map(([k, v]) => `${k} ${v}`).join(' / ')}` : '';
  const agreement = r.agreement !== undefined ? `, agreement with the teacher ${r.agreement.toFixed(4)}` : '';
  return `epoch ${r.epoch + 1}: loss ${r.loss.toFixed(4)}, active hinges ${(r.active * 100).toFixed(1)} %, ${Math.round(r.tripletsPerSecond)} triplets/s, ${duration(r.seconds)}${agreement}${val}`;
}

/** The backend a command runs on, and why it is not native TensorFlow when it is not. */
export function backendLine(b: { backend: string; source: string; tfjsVersion: string; why?: string }): string {
  return `backend: ${b.backend} (${b.source}), tfjs ${b.tfjsVersion}${b.why ? `; not native TensorFlow: ${b.why}` : ''}`;
}

/** 4.2 s, 3m05s, 1h02m. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** A message on stderr (logs, progress notes), keeping stdout for results. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}
