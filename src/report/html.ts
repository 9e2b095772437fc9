/**
 * The run report: one self-contained HTML file (inline CSS and SVG, no scripts, no network) with
 * the result table, accuracy per iteration, training loss, precision–recall of the baseline
 * against the distilled embeddings, and per-stage timings.
 */
import type { Measured, RunManifest } from './manifest.js';
import { formatLatency, formatMetrics, resultRows } from './table.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];

export const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  readonly color?: string;
  readonly dashed?: boolean;
}

/** A line chart as an SVG element (axes, ticks, legend). */
export function lineChart(title: string, series: readonly Series[], xLabel: string, yLabel: string, opts: { width?: number; height?: number; xTicks?: readonly [number, string][] } = {}): string {
  const width = opts.width ?? 520;
  const height = opts.height ?? 300;
  const legendRows = Math.ceil(series.length / 3);
  const m = { left: 66, right: 16, top: 30, bottom: 52 + 14 * legendRows };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '';
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const pad = (y1 - y0) * 0.08 || Math.abs(y1) * 0.1 || 1;
  [y0, y1] = [y0 - pad, y1 + pad];
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right);
  const sy = (y: number) => height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(title)}">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">${escapeHtml(title)}</text>`);
  // y ticks
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    out.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${m.left - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end" font-size="11">${Number(v.toPrecision(3))}</text>`);
  }
  const xTicks = opts.xTicks ?? Array.from({ length: 5 }, (_, i) => { const v = x0 + ((x1 - x0) * i) / 4; return [v, String(Number(v.toPrecision(3)))] as [number, string]; });
  for (const [v, label] of xTicks) out.push(`<text x="${sx(v).toFixed(1)}" y="${height - m.bottom + 16}" text-anchor="middle" font-size="11">${escapeHtml(label)}</text>`);
  out.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${height - m.bottom}" y2="${height - m.bottom}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${height - m.bottom}" stroke="#333"/>`);
  out.push(`<text x="${(m.left + width - m.right) / 2}" y="${height - m.bottom + 34}" text-anchor="middle" font-size="12">${escapeHtml(xLabel)}</text>`);
  out.push(`<text transform="translate(13 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeHtml(yLabel)}</text>`);
  series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length]!;
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const p of s.points.length <= 30 ? s.points : []) out.push(`<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="3" fill="${color}"/>`);
    const lx = m.left + 8 + (i % 3) * ((width - m.left - m.right) / 3);
    const ly = height - m.bottom + 54 + Math.floor(i / 3) * 14;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 22}" y="${ly}" font-size="11">${escapeHtml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The main figure of a measurement (mAP, Medium mAP or N-S). */
export function mainFigure(m: Pick<Measured, 'metrics'> | null | undefined): number | null {
  if (!m) return null;
  return m.metrics.mAP ?? m.metrics.medium ?? m.metrics.NS ?? null;
}

/** The main figure of what the run returns (the input's when iteration 0 is the result). */
export function resultFigure(m: RunManifest): number | null {
  if (!m.result) return null;
  return m.result.iteration === 0 ? mainFigure(m.baseline) : mainFigure(m.iterations.find((r) => r.iteration === m.result!.iteration));
}

/** The figures of a run as SVG charts (also used for the README picture). */
export function reportCharts(m: RunManifest): string[] {
  const charts: string[] = [];
  const last = m.iterations.at(-1);
  const revisited = last?.metrics.medium !== undefined || m.baseline?.metrics.medium !== undefined;
  const yName = revisited ? 'Medium mAP (%)' : m.baseline?.metrics.NS !== undefined ? 'N-S score' : 'mAP (%)';
  // Accuracy per iteration (iteration 0 = the input descriptors).
  const iters = m.iterations.filter((r) => mainFigure(r) !== null);
  if (iters.length > 0) {
    const series: Series[] = [];
    const base = mainFigure(m.baseline);
    const distilled: [number, number][] = iters.map((r) => [r.iteration, mainFigure(r)!]);
    if (base !== null) distilled.unshift([0, base]);
    series.push({ name: 'distilled (0 = input)', points: distilled });
    const rr = mainFigure(m.reranking);
    if (rr !== null) series.push({ name: `${m.reranking!.method.toUpperCase()} re-ranking`, points: [[0, rr], [iters.at(-1)!.iteration, rr]], dashed: true, color: '#d62728' });
    if (base !== null) series.push({ name: 'Euclidean baseline', points: [[0, base], [iters.at(-1)!.iteration, base]], dashed: true, color: '#7f7f7f' });
    const ticks: [number, string][] = [[0, 'input'], ...iters.map((r) => [r.iteration, `iter ${r.iteration}`] as [number, string])];
    charts.push(lineChart('Accuracy per iteration', series, 'bootstrap iteration', yName, { xTicks: ticks }));
  }
  // Training loss per epoch, iterations one after another.
  const loss: Series[] = [];
  let offset = 0;
  for (const r of m.iterations) {
    loss.push({ name: `iteration ${r.iteration}`, points: r.loss.map((l, i) => [offset + i + 1, l] as [number, number]) });
    offset += r.loss.length;
  }
  if (loss.some((s) => s.points.length > 0)) charts.push(lineChart('Training loss', loss, 'epoch (all iterations)', 'mean triplet loss'));
  // Precision–recall.
  const pr: Series[] = [];
  const curve = (name: string, values: readonly number[] | undefined, extra: Partial<Series> = {}) => {
    if (values) pr.push({ name, points: values.map((p, i) => [i / (values.length - 1), p * 100] as [number, number]), ...extra });
  };
  curve('Euclidean baseline', m.baseline?.pr, { color: '#7f7f7f' });
  if (m.reranking) curve(`${m.reranking.method.toUpperCase()} re-ranking`, m.reranking.pr, { color: '#d62728', dashed: true });
  if (last) curve(`distilled, iteration ${last.iteration}`, last.pr, { color: '#1f77b4' });
  if (pr.length > 0) charts.push(lineChart(`Precision–recall${revisited ? ' (Medium)' : ''}`, pr, 'recall', 'interpolated precision (%)', { xTicks: [0, 0.2, 0.4, 0.6, 0.8, 1].map((v) => [v, String(v)] as [number, string]) }));
  return charts;
}

/** Image mode: the features passes, with their speed. */
function featuresTable(m: RunManifest): string {
  const passes = Object.entries(m.features ?? {});
  if (passes.length === 0) return '';
  const rows = passes.map(([name, f]) => {
    const computed = f.photos - f.cached;
    const rate = f.seconds > 0 && computed > 0 ? `${(computed / f.seconds).toFixed(1)}` : '—';
    return `<tr><td>${escapeHtml(name)}</td><td class="num">${f.photos}</td><td class="num">${f.cached}</td><td class="num">${f.seconds.toFixed(1)}</td><td class="num">${rate}</td><td>${escapeHtml(f.engine)}</td></tr>`;
  });
  return `<table id="features">
<tr><th>features</th><th>photos</th><th>from the cache</th><th>seconds</th><th>photos/s</th><th>network on</th></tr>
${rows.join('\n')}
</table>`;
}

/** The whole report page. */
export function renderReport(m: RunManifest, title = 'diffusion-distill run'): string {
  const rows = resultRows(m);
  const stageNames = [...new Set(m.iterations.flatMap((r) => Object.keys(r.seconds)))];
  const opts = m.options as Record<string, unknown>;
  const optionList = Object.entries(opts)
    .filter(([, v]) => v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `<code>${escapeHtml(k)}</code>: ${escapeHtml(String(v))}`)
    .join(', ');
  const nested = ['head', 'train', 'params']
    .filter((k) => opts[k] !== undefined)
    .map((k) => `<code>${k}</code>: <code>${escapeHtml(JSON.stringify(opts[k]))}</code>`)
    .join('<br>');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border-bottom: 1px solid #ddd; padding: 4px 12px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; } .charts svg { border: 1px solid #eee; }
.muted { color: #666; font-size: 0.92em; } code { font-size: 0.92em; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="muted">Status: ${escapeHtml(m.status)} · ${m.iterations.length} iteration(s) · ${m.databaseSize} database items, trained on ${m.trainItems} · ${m.seconds.toFixed(1)} s in all · ${escapeHtml(Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(' · '))}</p>
<h2>Results</h2>
<table id="results">
<tr><th>method</th><th>accuracy</th><th>time to answer the queries</th></tr>
${rows.map(([a, b, c]) => `<tr><td>${escapeHtml(a)}</td><td class="num">${escapeHtml(b)}</td><td class="num">${escapeHtml(c)}</td></tr>`).join('\n')}
</table>
<div class="charts">
${reportCharts(m).join('\n')}
</div>
<h2>Stages</h2>
${featuresTable(m)}
<table id="stages">
<tr><th>iteration</th>${stageNames.map((s) => `<th>${escapeHtml(s)} (s)</th>`).join('')}<th>final loss</th><th>accuracy</th><th>query time</th></tr>
${m.iterations
  .map(
    (r) =>
      `<tr><td>${r.iteration}</td>${stageNames.map((s) => `<td class="num">${r.seconds[s] !== undefined ? r.seconds[s]!.toFixed(1) : '—'}</td>`).join('')}<td class="num">${r.loss.length ? r.loss.at(-1)!.toFixed(4) : '—'}</td><td class="num">${escapeHtml(formatMetrics(r.metrics))}</td><td class="num">${escapeHtml(formatLatency(r))}</td></tr>`,
  )
  .join('\n')}
</table>
<h2>Options</h2>
<p class="muted">${optionList}<br>${nested}</p>
</body>
</html>
`;
}
