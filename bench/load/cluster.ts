/**
 * The bench's cluster pair (`--cluster`): memgate and twemproxy each in front of the
 * same three memcached processes, keys placed by ketama (memgate's default;
 * twemproxy with `hash: md5, distribution: ketama`, libmemcached's placement),
 * driven with single-key gets and 10-key multi-gets.
 *
 *   generator ─▶ memgate-cluster   ─┬─▶ memcached A
 *   generator ─▶ twemproxy-cluster ─┼─▶ memcached B
 *                                   └─▶ memcached C
 *
 * Pure functions over plain data here (the runner, bench/run.ts, starts the
 * processes): medians per (workload, depth, target) and one table of memgate over
 * twemproxy. `spread` is each memcached's share of the CPU the three burned during a
 * target's runs, which shows whether a proxy really spreads its keys.
 */
import type { LoadResult } from './generator.js';
import { formatTable, median } from './report.js';

export const CLUSTER_SERVERS = 3;
export const CLUSTER_TARGETS = ['memgate-cluster', 'twemproxy-cluster'] as const;
export type ClusterTarget = (typeof CLUSTER_TARGETS)[number];

/** Workloads of the pair: keys per get (sets stay single-key). */
export const CLUSTER_WORKLOADS = [
  { name: 'get', getKeys: 1 },
  { name: 'mget10', getKeys: 10 },
] as const;
export type ClusterWorkload = (typeof CLUSTER_WORKLOADS)[number]['name'];

export interface ClusterRunRecord {
  readonly target: ClusterTarget;
  readonly workload: ClusterWorkload;
  readonly depth: number;
  readonly round: number;
  readonly result: LoadResult;
  /** proxy CPU seconds over the timed phase */
  readonly proxyCpuSec: number;
  /** CPU seconds of each cluster memcached over the whole generator run (in server order) */
  readonly serverCpuSec: readonly number[];
}

export interface ClusterSummaryRow {
  readonly workload: ClusterWorkload;
  readonly depth: number;
  readonly target: ClusterTarget;
  readonly rounds: number;
  /** requests per second: a 10-key multi-get is one request */
  readonly opsPerSec: number;
  readonly proxyCpuUsPerReq: number;
  /** each server's share of the three servers' CPU, summed over rounds (0..1) */
  readonly spread: readonly number[];
  readonly errors: number;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/** Medians per (workload, depth, target), in the order they first appear. */
export function summarizeCluster(runs: readonly ClusterRunRecord[]): ClusterSummaryRow[] {
  const groups = new Map<string, ClusterRunRecord[]>();
  for (const r of runs) {
    const key = `${r.workload}\u0000${r.depth}\u0000${r.target}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [r]);
    else list.push(r);
  }
  const rows: ClusterSummaryRow[] = [];
  for (const list of groups.values()) {
    const first = list[0];
    if (first === undefined) continue;
    const perServer = first.serverCpuSec.map((_, i) => list.reduce((sum, r) => sum + (r.serverCpuSec[i] ?? 0), 0));
    const total = perServer.reduce((a, b) => a + b, 0);
    rows.push({
      workload: first.workload,
      depth: first.depth,
      target: first.target,
      rounds: list.length,
      opsPerSec: Math.round(median(list.map((r) => r.result.opsPerSec))),
      proxyCpuUsPerReq: round2(
        median(list.map((r) => (r.result.ops > 0 ? (r.proxyCpuSec * 1e6) / r.result.ops : Number.NaN))),
      ),
      spread: perServer.map((s) => (total > 0 ? round2(s / total) : 0)),
      errors: list.reduce((n, r) => n + r.result.errors, 0),
    });
  }
  return rows;
}

const ratioText = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !(b > 0) || !Number.isFinite(a) ? 'n/a' : `${(a / b).toFixed(2)}x`;
const num = (n: number | undefined, digits: number): string =>
  n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
const spreadText = (row: ClusterSummaryRow | undefined): string =>
  row === undefined ? '-' : row.spread.map((s) => `${Math.round(s * 100)}`).join('/');

/** One row per (workload, depth): memgate's and twemproxy's figures and memgate over twemproxy. */
export function clusterTable(rows: readonly ClusterSummaryRow[]): string {
  const keys: { workload: ClusterWorkload; depth: number }[] = [];
  for (const r of rows) {
    if (!keys.some((k) => k.workload === r.workload && k.depth === r.depth))
      keys.push({ workload: r.workload, depth: r.depth });
  }
  const at = (workload: ClusterWorkload, depth: number, target: ClusterTarget): ClusterSummaryRow | undefined =>
    rows.find((r) => r.workload === workload && r.depth === depth && r.target === target);
  const body = keys.map(({ workload, depth }) => {
    const m = at(workload, depth, 'memgate-cluster');
    const t = at(workload, depth, 'twemproxy-cluster');
    return [
      workload,
      String(depth),
      m === undefined ? '-' : String(m.opsPerSec),
      t === undefined ? '-' : String(t.opsPerSec),
      ratioText(m?.opsPerSec, t?.opsPerSec),
      num(m?.proxyCpuUsPerReq, 2),
      num(t?.proxyCpuUsPerReq, 2),
      ratioText(m?.proxyCpuUsPerReq, t?.proxyCpuUsPerReq),
      spreadText(m),
      spreadText(t),
    ];
  });
  return formatTable(
    [
      'cluster workload',
      'depth',
      'memgate ops/s',
      'twemproxy ops/s',
      'ops vs twemproxy',
      'memgate CPU µs/req',
      'twemproxy CPU µs/req',
      'CPU vs twemproxy',
      'memgate server CPU %',
      'twemproxy server CPU %',
    ],
    body,
  );
}
