/**
 * The README's picture of a report: the result table and the report's three plots in one SVG,
 * drawn from a run's manifest (default: the demo's).
 *
 *   npx tsx scripts/report-preview.ts [ddistill-demo/run/manifest.json] [docs/report-preview.svg]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RunManifest } from '../src/report/manifest.js';
import { resultRows } from '../src/report/table.js';
import { escapeHtml, reportCharts } from '../src/report/html.js';

const [input = 'ddistill-demo/run/manifest.json', output = 'docs/report-preview.svg'] = process.argv.slice(2);
const m = JSON.parse(readFileSync(input, 'utf8')) as RunManifest;
const rows = resultRows(m);
const charts = reportCharts(m);
const chartW = 520;
const chartH = 314;
const tableH = 40 + 22 * (rows.length + 1);
const width = Math.max(chartW * Math.min(charts.length, 3), 900);
const height = tableH + chartH + 20;
const parts: string[] = [];
parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`);
parts.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
parts.push(`<text x="16" y="26" font-size="18" font-weight="600">report.html — MNIST demo (${m.iterations.length} iterations, ${m.seconds.toFixed(0)} s)</text>`);
const cols = [16, 340, 480];
['method', 'accuracy', 'time to answer the queries'].forEach((h, i) => parts.push(`<text x="${cols[i]}" y="${56}" font-size="13" font-weight="600">${h}</text>`));
rows.forEach((r, j) => r.forEach((cell, i) => parts.push(`<text x="${cols[i]}" y="${78 + 22 * j}" font-size="13">${escapeHtml(cell)}</text>`)));
charts.forEach((svg, i) => {
  const inner = svg.replace(/^<svg[^>]*>/, '').replace(/<\/svg>$/, '');
  parts.push(`<g transform="translate(${i * chartW} ${tableH})">${inner}</g>`);
});
parts.push('</svg>');
mkdirSync(dirname(output), { recursive: true });
writeFileSync(output, parts.join('\n') + '\n');
console.log(`wrote ${output} from ${input}`);
