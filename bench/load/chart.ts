/**
 * The bench's picture: an SVG drawn by plain string code from a results JSON's
 * `summary` (no chart library). Three panels of grouped bars, one group per
 * pipeline depth, one bar per target:
 *
 *   ┌ throughput (ops/s) ───────────┐   higher is better
 *   ├ proxy CPU per request (µs) ───┤   lower is better; `direct` has none
 *   └ p99 latency (µs) ─────────────┘   lower is better
 *
 * `npm run bench` writes it next to its JSON; `node --import tsx
 * bench/load/chart.ts <results.json> [out.svg]` redraws one from an old JSON.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TARGETS, type SummaryRow, type TargetName } from './report.js';

/** What the chart reads from a results JSON (the rest is ignored). */
export interface ChartInput {
  readonly startedAt?: string;
  readonly options?: { readonly connections?: number; readonly durationSec?: number; readonly rounds?: number };
  readonly summary: readonly SummaryRow[];
}

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly value: (r: SummaryRow) => number | null;
}

const PANELS: readonly Panel[] = [
  { title: 'Throughput (ops/s, higher is better)', unit: 'ops/s', value: (r) => r.opsPerSec },
  { title: 'Proxy CPU per request (µs, lower is better)', unit: 'µs', value: (r) => r.proxyCpuUsPerReq },
  { title: 'p99 latency (µs, lower is better)', unit: 'µs', value: (r) => r.p99Us },
];

/** A fixed colour per target, so charts of different runs compare at a glance. */
const COLOURS: Readonly<Record<TargetName, string>> = {
  direct: '#7f7f7f',
  memgate: '#1f77b4',
  'memgate-nolimits': '#6baed6',
  'memgate-bare': '#9ecae1',
  'memgate-redis': '#08519c',
  twemproxy: '#ff7f0e',
  pipe: '#2ca02c',
};

const WIDTH = 900;
const PANEL_HEIGHT = 250;
const MARGIN = { left: 80, right: 20, top: 40, bottom: 40 };
const HEADER = 70;

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );
}

/** A round axis maximum and its tick step: 1, 2 or 5 × 10^n, about 4 ticks. */
export function niceScale(max: number): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { max: Math.ceil(max / step) * step, step };
}

function formatValue(n: number): string {
  if (n === 0) return '0';
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function text(x: number, y: number, body: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}"${attrs === '' ? '' : ` ${attrs}`}>${escapeXml(body)}</text>`;
}

function drawPanel(panel: Panel, rows: readonly SummaryRow[], targets: readonly TargetName[], top: number): string[] {
  const out: string[] = [];
  const depths = [...new Set(rows.map((r) => r.depth))].sort((a, b) => a - b);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x0 = MARGIN.left;
  const y0 = top + MARGIN.top;
  const values = rows.map(panel.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const scale = niceScale(Math.max(0, ...values));
  out.push(`<g class="panel">`, text(x0, top + 24, panel.title, 'class="title"'));
  for (let v = 0; v <= scale.max + scale.step / 2; v += scale.step) {
    const y = y0 + plotH - (v / scale.max) * plotH;
    out.push(`<line x1="${x0}" y1="${y.toFixed(1)}" x2="${x0 + plotW}" y2="${y.toFixed(1)}" class="grid"/>`);
    out.push(text(x0 - 6, y + 4, formatValue(v), 'class="tick" text-anchor="end"'));
  }
  const groupW = plotW / Math.max(1, depths.length);
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, targets.length));
  depths.forEach((depth, g) => {
    const groupX = x0 + g * groupW + (groupW - barW * targets.length) / 2;
    targets.forEach((target, i) => {
      const row = rows.find((r) => r.target === target && r.depth === depth);
      const v = row === undefined ? null : panel.value(row);
      const x = groupX + i * barW;
      if (v === null || !Number.isFinite(v)) {
        out.push(text(x + barW / 2, y0 + plotH - 4, 'n/a', 'class="na" text-anchor="middle"'));
        return;
      }
      const h = (v / scale.max) * plotH;
      out.push(
        `<rect x="${(x + 1).toFixed(1)}" y="${(y0 + plotH - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" ` +
          `height="${h.toFixed(1)}" fill="${COLOURS[target]}"><title>${escapeXml(
            `${target}, depth ${depth}: ${formatValue(v)} ${panel.unit}`,
          )}</title></rect>`,
      );
      out.push(text(x + barW / 2, y0 + plotH - h - 4, formatValue(v), 'class="value" text-anchor="middle"'));
    });
    out.push(
      text(x0 + g * groupW + groupW / 2, y0 + plotH + 20, `depth ${depth}`, 'class="axis" text-anchor="middle"'),
    );
  });
  out.push(`<line x1="${x0}" y1="${y0 + plotH}" x2="${x0 + plotW}" y2="${y0 + plotH}" class="baseline"/>`, '</g>');
  return out;
}

/** The whole SVG document for a results JSON. */
export function renderBenchSvg(input: ChartInput): string {
  const present = new Set(input.summary.map((r) => r.target));
  const targets = TARGETS.filter((t) => present.has(t));
  const height = HEADER + PANELS.length * PANEL_HEIGHT;
  const o = input.options ?? {};
  const subtitle = [
    input.startedAt === undefined ? null : input.startedAt.slice(0, 16).replace('T', ' ') + ' UTC',
    o.connections === undefined ? null : `${o.connections} connections`,
    o.durationSec === undefined || o.rounds === undefined ? null : `${o.durationSec} s x ${o.rounds} round(s), medians`,
  ]
    .filter((s) => s !== null)
    .join(', ');
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
      'font-family="Helvetica, Arial, sans-serif" font-size="12">',
    '<style>.title{font-size:14px;font-weight:bold}.tick,.axis{fill:#444}.value{font-size:10px;fill:#222}' +
      '.na{font-size:10px;fill:#999}.grid{stroke:#e5e5e5}.baseline{stroke:#444}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    text(MARGIN.left, 22, 'memgate bench', 'class="title"'),
    text(MARGIN.left, 40, subtitle, 'class="axis"'),
  ];
  // the legend: one swatch and name per target, in table order
  let lx = MARGIN.left;
  for (const t of targets) {
    out.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${COLOURS[t]}"/>`, text(lx + 16, 60, t));
    lx += 30 + t.length * 8;
  }
  PANELS.forEach((p, i) => out.push(...drawPanel(p, input.summary, targets, HEADER + i * PANEL_HEIGHT)));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** `results/x.json` → `results/x.svg` */
export function svgPathFor(jsonPath: string): string {
  return jsonPath.replace(/\.json$/, '') + '.svg';
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  const [json, svg] = process.argv.slice(2);
  if (json === undefined) {
    process.stderr.write('usage: node --import tsx bench/load/chart.ts <results.json> [out.svg]\n');
    process.exit(2);
  }
  const out = svg ?? svgPathFor(json);
  writeFileSync(out, renderBenchSvg(JSON.parse(readFileSync(json, 'utf8')) as ChartInput));
  process.stdout.write(`chart: ${out}\n`);
}
