/**
 * Prometheus metrics (prom-client), served by the admin HTTP server at /metrics.
 *
 * The hot path never touches prom-client: sessions bump plain numbers in
 * `counters.ts`, and every metric here has a `collect()` that COPIES those
 * numbers into prom-client at scrape time (reset, then set each label set). So a
 * request costs a Float64Array increment, and label hashing happens once per
 * scrape. Tenants that disappear from `source.tenants()` disappear from the
 * output at the next scrape.
 *
 * The registry is private to this instance (never prom-client's global one), so
 * several proxies in one process (tests) do not collide.
 *
 *   memgate_requests_total{tenant,command,outcome}          counter  (non-zero series only)
 *   memgate_request_duration_seconds{tenant,class}          histogram (classes seen only)
 *   memgate_client_received_bytes_total{tenant}             counter  bytes read from clients
 *   memgate_client_sent_bytes_total{tenant}                 counter  bytes written to clients
 *   memgate_client_connections{tenant}                      gauge    open client connections
 *   memgate_client_connections_opened_total{tenant}         counter
 *   memgate_rate_limited_total{tenant,budget}               counter  requests refused by a rate budget
 *   memgate_upstream_up{server}                             gauge    1 when the server is not marked down and a connection is up
 *   memgate_upstream_in_flight_requests{server}             gauge
 *   memgate_upstream_resets_total{server,reason}            counter  upstream connections reset (non-zero only)
 *   memgate_state_up                                        gauge    1 while the state store answers
 *   memgate_memory_watermark_reached                        gauge    1 while memory is above the watermark
 *   memgate_connections_accepted_total, memgate_connections_rejected_total,
 *   memgate_rotations_total, memgate_auth_failures_total, memgate_auth_lockouts_total,
 *   memgate_reloads_total, memgate_reload_failures_total     counters
 *   process_*, nodejs_*                                      prom-client default metrics
 *
 * Labels are bounded: tenant (config), command and class (commands.ts), outcome
 * (counters.ts), upstream (config). A key is never a label.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { ADMIT_NAMES } from '../policy/rate-limit.js';
import { COMMAND_BY_ID, COMMAND_COUNT } from '../protocol/text/commands.js';
import {
  CLASS_COUNT,
  CLASS_NAMES,
  LATENCY_BOUNDS_US,
  LATENCY_BUCKET_COUNT,
  OUTCOME_COUNT,
  OUTCOME_NAMES,
  RESET_REASON_COUNT,
  RESET_REASON_NAMES,
  type ProcessCounters,
  type TenantCounters,
} from './counters.js';

export interface MetricsSource {
  /** live tenants (removed ones left out) and their counters */
  tenants(): Iterable<{ readonly name: string; readonly counters: TenantCounters }>;
  /** `UpstreamCluster.health()`: one entry per server of every pool (a server in two pools appears twice) */
  upstream(): readonly { readonly address: string; readonly up: boolean; readonly inFlight: number }[];
  readonly process: ProcessCounters;
  /** 1 while the state store answers (the file store: always; a Redis store: while connected). Absent: 1 */
  stateUp?(): boolean;
  /** true while resident memory is above limits.memoryHighWatermarkBytes (reading paused). Absent: false */
  memoryOverloaded?(): boolean;
}

export interface Metrics {
  readonly registry: Registry;
  /** Content-Type of `render()`'s text */
  readonly contentType: string;
  /** The Prometheus text exposition of every metric, counters copied now. */
  render(): Promise<string>;
}

const US_PER_SECOND = 1_000_000;
/** `le` label values, in seconds, by bucket; the overflow bucket is `+Inf`. */
const LE_LABELS: readonly string[] = Object.freeze([
  ...LATENCY_BOUNDS_US.map((us) => String(us / US_PER_SECOND)),
  '+Inf',
]);
/** `command` label values by command id */
const COMMAND_NAMES: readonly string[] = Object.freeze(
  Array.from({ length: COMMAND_COUNT }, (_, id) => COMMAND_BY_ID[id]?.name ?? ''),
);

interface HistogramValue {
  readonly labels: Record<string, string>;
  readonly value: number;
  readonly metricName: string;
}

/**
 * The request-latency histogram as a prom-client collector. prom-client's own
 * Histogram can only `observe()` one value at a time, and we already hold the
 * bucket counts, so this object hands the registry the `_bucket`/`_sum`/`_count`
 * values directly, in the shape its text formatter reads (`get()` like every
 * prom-client metric).
 */
class CopiedLatencyHistogram {
  readonly name = 'memgate_request_duration_seconds';
  readonly help = 'Time from reading a request to writing its reply, by tenant and command class';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly source: MetricsSource;

  constructor(source: MetricsSource) {
    this.source = source;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    for (const t of this.source.tenants()) this.collectTenant(t.name, t.counters, values);
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    // nothing to reset: the numbers live in TenantCounters
  }

  private collectTenant(tenant: string, c: TenantCounters, out: HistogramValue[]): void {
    for (let klass = 1; klass < CLASS_COUNT; klass++) {
      const base = klass * LATENCY_BUCKET_COUNT;
      let count = 0;
      for (let b = 0; b < LATENCY_BUCKET_COUNT; b++) count += c.latencyBuckets[base + b] ?? 0;
      if (count === 0) continue;
      const klassName = CLASS_NAMES[klass] ?? String(klass);
      let cumulative = 0;
      for (let b = 0; b < LATENCY_BUCKET_COUNT; b++) {
        cumulative += c.latencyBuckets[base + b] ?? 0;
        out.push({
          metricName: `${this.name}_bucket`,
          labels: { tenant, class: klassName, le: LE_LABELS[b] ?? '+Inf' },
          value: cumulative,
        });
      }
      const labels = { tenant, class: klassName };
      out.push({ metricName: `${this.name}_sum`, labels, value: (c.latencySumUs[klass] ?? 0) / US_PER_SECOND });
      out.push({ metricName: `${this.name}_count`, labels, value: count });
    }
  }
}

/** A counter per tenant, copied from one TenantCounters field. */
function perTenantCounter(
  registry: Registry,
  name: string,
  help: string,
  source: MetricsSource,
  read: (c: TenantCounters) => number,
): void {
  new Counter({
    name,
    help,
    labelNames: ['tenant'] as const,
    registers: [registry],
    collect(this: Counter<'tenant'>) {
      this.reset();
      for (const t of source.tenants()) this.inc({ tenant: t.name }, read(t.counters));
    },
  });
}

/** A gauge per tenant, copied from one TenantCounters field. */
function perTenantGauge(
  registry: Registry,
  name: string,
  help: string,
  source: MetricsSource,
  read: (c: TenantCounters) => number,
): void {
  new Gauge({
    name,
    help,
    labelNames: ['tenant'] as const,
    registers: [registry],
    collect(this: Gauge<'tenant'>) {
      this.reset();
      for (const t of source.tenants()) this.set({ tenant: t.name }, read(t.counters));
    },
  });
}

/** A process-wide counter copied from one ProcessCounters field. */
function processCounter(
  registry: Registry,
  name: string,
  help: string,
  source: MetricsSource,
  read: (p: ProcessCounters) => number,
): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect(this: Counter) {
      this.reset();
      this.inc(read(source.process));
    },
  });
}

/** Builds the registry. Call once per proxy; nothing runs until a scrape. */
export function createMetrics(source: MetricsSource): Metrics {
  const registry = new Registry();

  new Counter({
    name: 'memgate_requests_total',
    help: 'Client requests by tenant, command and outcome (ok, miss, denied, rate_limited, error)',
    labelNames: ['tenant', 'command', 'outcome'] as const,
    registers: [registry],
    collect(this: Counter<'tenant' | 'command' | 'outcome'>) {
      this.reset();
      for (const t of source.tenants()) {
        const outcomes = t.counters.outcomes;
        for (let cmd = 1; cmd < COMMAND_COUNT; cmd++) {
          for (let o = 0; o < OUTCOME_COUNT; o++) {
            const v = outcomes[cmd * OUTCOME_COUNT + o] ?? 0;
            if (v === 0) continue;
            this.inc({ tenant: t.name, command: COMMAND_NAMES[cmd] ?? '', outcome: OUTCOME_NAMES[o] ?? '' }, v);
          }
        }
      }
    },
  });
  // NOTE: prom-client's Registry takes any object with name/type/get(); its types only list its own classes.
  registry.registerMetric(new CopiedLatencyHistogram(source) as unknown as Metric);

  perTenantCounter(
    registry,
    'memgate_client_received_bytes_total',
    'Bytes read from client connections, by tenant',
    source,
    (c) => c.bytesRead,
  );
  perTenantCounter(
    registry,
    'memgate_client_sent_bytes_total',
    'Bytes written to client connections, by tenant',
    source,
    (c) => c.bytesWritten,
  );
  perTenantGauge(
    registry,
    'memgate_client_connections',
    'Open client connections, by tenant',
    source,
    (c) => c.currConnections,
  );
  perTenantCounter(
    registry,
    'memgate_client_connections_opened_total',
    'Client connections identified as the tenant since start',
    source,
    (c) => c.totalConnections,
  );

  new Counter({
    name: 'memgate_rate_limited_total',
    help: 'Requests refused by a rate budget, by tenant and budget (ops, bytes, flush, class)',
    labelNames: ['tenant', 'budget'] as const,
    registers: [registry],
    collect(this: Counter<'tenant' | 'budget'>) {
      this.reset();
      for (const { name, counters } of source.tenants()) {
        counters.rateLimitedBy.forEach((n, i) => {
          if (n > 0) this.inc({ tenant: name, budget: ADMIT_NAMES[i] ?? String(i) }, n);
        });
      }
    },
  });

  new Gauge({
    name: 'memgate_upstream_up',
    help: '1 when the memcached server is not marked down and at least one connection to it is up',
    labelNames: ['server'] as const,
    registers: [registry],
    // `--workers N`: the primary aggregates its workers' registries; "up in some worker" keeps the 0/1 meaning
    aggregator: 'max',
    collect(this: Gauge<'server'>) {
      this.reset();
      // a server listed in two pools is up when it is up in either
      const up = new Map<string, boolean>();
      for (const u of source.upstream()) up.set(u.address, u.up || up.get(u.address) === true);
      for (const [server, isUp] of up) this.set({ server }, isUp ? 1 : 0);
    },
  });
  new Gauge({
    name: 'memgate_upstream_in_flight_requests',
    help: 'Requests sent to the memcached server and awaiting its reply',
    labelNames: ['server'] as const,
    registers: [registry],
    collect(this: Gauge<'server'>) {
      this.reset();
      const inFlight = new Map<string, number>();
      for (const u of source.upstream()) inFlight.set(u.address, u.inFlight + (inFlight.get(u.address) ?? 0));
      for (const [server, n] of inFlight) this.set({ server }, n);
    },
  });

  new Counter({
    name: 'memgate_upstream_resets_total',
    help: 'Upstream connections reset (their in-flight requests failed), by server and reason',
    labelNames: ['server', 'reason'] as const,
    registers: [registry],
    collect(this: Counter<'server' | 'reason'>) {
      this.reset();
      for (const u of source.process.upstream.all()) {
        for (let r = 0; r < RESET_REASON_COUNT; r++) {
          const n = u.resets[r] ?? 0;
          if (n > 0) this.inc({ server: u.server, reason: RESET_REASON_NAMES[r] ?? String(r) }, n);
        }
      }
    },
  });

  new Gauge({
    name: 'memgate_state_up',
    help: '1 while the state store (generations, shared budgets) answers',
    registers: [registry],
    aggregator: 'min',
    collect(this: Gauge) {
      this.set(source.stateUp === undefined || source.stateUp() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'memgate_memory_watermark_reached',
    help: '1 while resident memory is above limits.memoryHighWatermarkBytes and sessions stop reading',
    registers: [registry],
    aggregator: 'max',
    collect(this: Gauge) {
      this.set(source.memoryOverloaded?.() === true ? 1 : 0);
    },
  });

  processCounter(
    registry,
    'memgate_connections_accepted_total',
    'Client connections accepted',
    source,
    (p) => p.connectionsAccepted,
  );
  processCounter(
    registry,
    'memgate_connections_rejected_total',
    'Client connections refused (connection limits, lock-out)',
    source,
    (p) => p.connectionsRejected,
  );
  processCounter(
    registry,
    'memgate_rotations_total',
    'Tenant generation rotations (flush_all, admin API, CLI)',
    source,
    (p) => p.rotations,
  );
  processCounter(registry, 'memgate_auth_failures_total', 'Failed authentications', source, (p) => p.authFailures);
  processCounter(
    registry,
    'memgate_auth_lockouts_total',
    'Source addresses locked out after failed authentications',
    source,
    (p) => p.authLockouts,
  );
  processCounter(registry, 'memgate_reloads_total', 'Config reloads applied', source, (p) => p.reloads);
  processCounter(
    registry,
    'memgate_reload_failures_total',
    'Config reloads refused (invalid config)',
    source,
    (p) => p.reloadFailures,
  );

  collectDefaultMetrics({ register: registry });

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}
