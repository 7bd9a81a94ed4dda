/**
 * Turns the bench's raw runs into the one comparison table: medians over rounds per
 * (target, depth), and memgate's ratios to the direct, twemproxy and pipe baselines.
 * Pure functions over plain data, so the table can be rebuilt from a results JSON.
 */
import type { LoadResult } from './generator.js';

export const TARGETS = ['direct', 'memgate', 'twemproxy', 'pipe'] as const;
export type TargetName = (typeof TARGETS)[number];

/** One timed run of the load generator against one target. */
export interface RunRecord {
  readonly target: TargetName;
  readonly depth: number;
  readonly round: number;
  readonly result: LoadResult;
  /** CPU seconds of the proxy process over the timed phase; null for direct */
  readonly proxyCpuSec: number | null;
  readonly memcachedCpuSec: number;
}

/** Medians over the rounds of one (target, depth). */
export interface SummaryRow {
  readonly target: TargetName;
  readonly depth: number;
  readonly rounds: number;
  readonly opsPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly errors: number;
  readonly misses: number;
  /** proxy CPU µs per request; null for direct */
  readonly proxyCpuUsPerReq: number | null;
  readonly memcachedCpuUsPerReq: number;
  /** memgate rows only: memgate / baseline */
  readonly ratios: Ratios | null;
}

export interface Ratios {
  /** throughput */
  readonly opsVsDirect: number | null;
  readonly opsVsTwemproxy: number | null;
  /** CPU per request */
  readonly cpuVsTwemproxy: number | null;
  readonly cpuVsPipe: number | null;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const hi = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? hi : ((sorted[mid - 1] ?? hi) + hi) / 2;
}

const perRequestUs = (cpuSec: number, ops: number): number => (ops > 0 ? (cpuSec * 1e6) / ops : Number.NaN);

const round2 = (n: number): number => Math.round(n * 100) / 100;

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !(b > 0) || !Number.isFinite(a)) return null;
  return round2(a / b);
}

/** Medians per (target, depth), in the order targets and depths first appear. */
export function summarize(runs: readonly RunRecord[]): SummaryRow[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const key = `${r.target}\u0000${r.depth}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [r]);
    else list.push(r);
  }
  const rows: SummaryRow[] = [];
  for (const list of groups.values()) {
    const first = list[0];
    if (first === undefined) continue;
    const proxyCpu = list.map((r) => (r.proxyCpuSec === null ? Number.NaN : perRequestUs(r.proxyCpuSec, r.result.ops)));
    rows.push({
      target: first.target,
      depth: first.depth,
      rounds: list.length,
      opsPerSec: Math.round(median(list.map((r) => r.result.opsPerSec))),
      p50Us: round2(median(list.map((r) => r.result.p50Us))),
      p99Us: round2(median(list.map((r) => r.result.p99Us))),
      p999Us: round2(median(list.map((r) => r.result.p999Us))),
      errors: list.reduce((n, r) => n + r.result.errors, 0),
      misses: list.reduce((n, r) => n + r.result.misses, 0),
      proxyCpuUsPerReq: first.proxyCpuSec === null ? null : round2(median(proxyCpu)),
      memcachedCpuUsPerReq: round2(median(list.map((r) => perRequestUs(r.memcachedCpuSec, r.result.ops)))),
      ratios: null,
    });
  }
  return rows.map((row) => (row.target === 'memgate' ? { ...row, ratios: ratiosFor(row, rows) } : row));
}

function ratiosFor(row: SummaryRow, rows: readonly SummaryRow[]): Ratios {
  const at = (target: TargetName): SummaryRow | undefined =>
    rows.find((r) => r.target === target && r.depth === row.depth);
  return {
    opsVsDirect: ratio(row.opsPerSec, at('direct')?.opsPerSec),
    opsVsTwemproxy: ratio(row.opsPerSec, at('twemproxy')?.opsPerSec),
    cpuVsTwemproxy: ratio(row.proxyCpuUsPerReq, at('twemproxy')?.proxyCpuUsPerReq),
    cpuVsPipe: ratio(row.proxyCpuUsPerReq, at('pipe')?.proxyCpuUsPerReq),
  };
}

const fmtRatio = (n: number | null): string => (n === null ? 'n/a' : `${n.toFixed(2)}x`);
const fmtNum = (n: number | null, digits: number): string =>
  n === null || !Number.isFinite(n) ? '-' : n.toFixed(digits);

/** A plain-text (and Markdown) table: columns padded, numbers right-aligned. */
export function formatTable(header: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 2 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/** The comparison table printed at the end of `npm run bench`. */
export function comparisonTable(rows: readonly SummaryRow[]): string {
  const header = [
    'target',
    'depth',
    'ops/s',
    'p50 µs',
    'p99 µs',
    'proxy CPU µs/req',
    'ops vs direct',
    'ops vs twemproxy',
    'CPU vs twemproxy',
    'CPU vs pipe',
  ];
  const sorted = [...rows].sort((a, b) => a.depth - b.depth);
  const body = sorted.map((r) => [
    r.target,
    String(r.depth),
    String(r.opsPerSec),
    fmtNum(r.p50Us, 1),
    fmtNum(r.p99Us, 1),
    fmtNum(r.proxyCpuUsPerReq, 2),
    r.ratios === null ? '' : fmtRatio(r.ratios.opsVsDirect),
    r.ratios === null ? '' : fmtRatio(r.ratios.opsVsTwemproxy),
    r.ratios === null ? '' : fmtRatio(r.ratios.cpuVsTwemproxy),
    r.ratios === null ? '' : fmtRatio(r.ratios.cpuVsPipe),
  ]);
  return formatTable(header, body);
}
