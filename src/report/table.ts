/** The result table of a bootstrap run, for people (the CLI, the demo and the report). */
import type { Measured, RunManifest } from './manifest.js';

/** "69.24", "E 35.99 / M 26.86 / H 9.03" or "N-S 3.21". */
export function formatMetrics(metrics: Record<string, number> | undefined): string {
  if (!metrics || Object.keys(metrics).length === 0) return '—';
  if (metrics.mAP !== undefined) return metrics.mAP.toFixed(2);
  if (metrics.medium !== undefined) return `E ${metrics.easy!.toFixed(2)} / M ${metrics.medium.toFixed(2)} / H ${metrics.hard!.toFixed(2)}`;
  if (metrics.NS !== undefined) return `N-S ${metrics.NS.toFixed(2)}`;
  return JSON.stringify(metrics);
}

export function formatLatency(m: Pick<Measured, 'querySeconds' | 'queries'> | null | undefined): string {
  if (!m || m.querySeconds === null || !m.queries) return '—';
  return `${m.querySeconds.toFixed(2)} s (${((1000 * m.querySeconds) / m.queries).toFixed(2)} ms/query)`;
}

/** The rows: method, accuracy, time to answer the queries. */
export function resultRows(m: RunManifest): [string, string, string][] {
  const rows: [string, string, string][] = [];
  if (m.baseline) rows.push([`Euclidean search on the input${m.result?.iteration === 0 ? ' (result)' : ''}`, formatMetrics(m.baseline.metrics), formatLatency(m.baseline)]);
  if (m.reranking) rows.push([`${m.reranking.method.toUpperCase()} query re-ranking`, formatMetrics(m.reranking.metrics), formatLatency(m.reranking)]);
  for (const it of m.iterations) {
    const mark = it.kept === false ? ' (not kept)' : m.result?.iteration === it.iteration ? ' (result)' : '';
    rows.push([`distilled, iteration ${it.iteration}${mark}`, formatMetrics(it.metrics), formatLatency(it)]);
  }
  return rows;
}

/** An aligned plain-text table. */
export function resultTable(m: RunManifest): string[] {
  const q = m.baseline?.queries ?? m.iterations[0]?.queries;
  const head: [string, string, string] = ['method', m.iterations[0]?.metrics.medium !== undefined ? 'mAP (revisited)' : 'accuracy', `time for ${q ?? 'the'} queries`];
  const rows = [head, ...resultRows(m)];
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
}
