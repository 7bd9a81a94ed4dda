/**
 * Turns the bench's raw runs into the one comparison table: medians over rounds per
 * (target, depth), each memgate variant's ratios to the direct, twemproxy and pipe
 * baselines, and the cost of memgate's policy: `memgate` (namespace + limits) over
 * `memgate-nolimits` (namespace only) and over `memgate-bare` (admin tenant, no policy).
 * Pure functions over plain data, so the table can be rebuilt from a results JSON.
 */
import type { LoadResult } from './generator.js';

/** Every target the runner knows, in the order the table lists them. */
export const TARGETS = [
  'direct',
  'memgate',
  'memgate-redis',
  'memgate-nolimits',
  'memgate-bare',
  'twemproxy',
  'pipe',
] as const;
export type TargetName = (typeof TARGETS)[number];

/** What `npm run bench` drives when --targets is not given. */
export const DEFAULT_TARGETS: readonly TargetName[] = ['direct', 'memgate', 'twemproxy', 'pipe'];

/** The memgate processes: one config each (see memgateConfig in processes.ts). */
export const MEMGATE_TARGETS: readonly TargetName[] = ['memgate', 'memgate-redis', 'memgate-nolimits', 'memgate-bare'];

export const isMemgate = (t: TargetName): boolean => MEMGATE_TARGETS.includes(t);

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
  /** memgate rows (every variant) only: this row / baseline */
  readonly ratios: Ratios | null;
  /** the `memgate` row only, when a variant ran: the cost of its policy */
  readonly policyCost?: PolicyCost | null;
}

/** `memgate` (namespace + limits) over its variants at the same depth; null: the variant did not run. */
export interface PolicyCost {
  /** throughput and CPU per request vs memgate-nolimits: what the rate limits cost */
  readonly opsVsNoLimits: number | null;
  readonly cpuVsNoLimits: number | null;
  /** vs memgate-bare (admin tenant, keys unchanged, no limits): what namespace + policy cost */
  readonly opsVsBare: number | null;
  readonly cpuVsBare: number | null;
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
  return rows.map((row) => {
    if (!isMemgate(row.target)) return row;
    const withRatios = { ...row, ratios: ratiosFor(row, rows) };
    if (row.target !== 'memgate' || !rows.some((r) => r.target === 'memgate-nolimits' || r.target === 'memgate-bare'))
      return withRatios;
    return { ...withRatios, policyCost: policyCostFor(row, rows) };
  });
}

const rowAt = (rows: readonly SummaryRow[], target: TargetName, depth: number): SummaryRow | undefined =>
  rows.find((r) => r.target === target && r.depth === depth);

function policyCostFor(row: SummaryRow, rows: readonly SummaryRow[]): PolicyCost {
  const noLimits = rowAt(rows, 'memgate-nolimits', row.depth);
  const bare = rowAt(rows, 'memgate-bare', row.depth);
  return {
    opsVsNoLimits: ratio(row.opsPerSec, noLimits?.opsPerSec),
    cpuVsNoLimits: ratio(row.proxyCpuUsPerReq, noLimits?.proxyCpuUsPerReq),
    opsVsBare: ratio(row.opsPerSec, bare?.opsPerSec),
    cpuVsBare: ratio(row.proxyCpuUsPerReq, bare?.proxyCpuUsPerReq),
  };
}

function ratiosFor(row: SummaryRow, rows: readonly SummaryRow[]): Ratios {
  const at = (target: TargetName): SummaryRow | undefined => rowAt(rows, target, row.depth);
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

/**
 * The comparison table printed at the end of `npm run bench`. When memgate-nolimits or
 * memgate-bare ran, four columns more on the `memgate` row: its throughput and CPU per
 * request over each variant's (the cost of limits, the cost of namespace + policy).
 */
export function comparisonTable(rows: readonly SummaryRow[]): string {
  const withPolicy = rows.some((r) => r.policyCost !== undefined && r.policyCost !== null);
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
    ...(withPolicy ? ['ops vs nolimits', 'CPU vs nolimits', 'ops vs bare', 'CPU vs bare'] : []),
  ];
  const sorted = [...rows].sort((a, b) => a.depth - b.depth);
  const policyCells = (p: PolicyCost | null | undefined): string[] => {
    if (!withPolicy) return [];
    if (p === undefined || p === null) return ['', '', '', ''];
    return [fmtRatio(p.opsVsNoLimits), fmtRatio(p.cpuVsNoLimits), fmtRatio(p.opsVsBare), fmtRatio(p.cpuVsBare)];
  };
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
    ...policyCells(r.policyCost),
  ]);
  return formatTable(header, body);
}
