/**
 * Plain numbers bumped on the hot path. A tenant's `stats` reply is built from
 * these, and the metrics exporter copies them at scrape time (no label hashing
 * per request).
 */
import { COMMAND_COUNT, CommandClass } from '../protocol/text/commands.js';

/** How a request ended, for `memgate_requests_total{outcome}`. */
export const Outcome = {
  /** answered as asked (stored, found, deleted, …) */
  OK: 0,
  /** a get / touch / delete / incr … that found no item (NOT_FOUND, EN, a get key without VALUE) */
  MISS: 1,
  /** refused by policy: denied command, key outside the prefixes, over an item or key limit */
  DENIED: 2,
  /** refused by a rate limit (SERVER_ERROR rate limited) */
  RATE_LIMITED: 3,
  /** ERROR, CLIENT_ERROR, SERVER_ERROR (backend failure, …) */
  ERROR: 4,
  /** a multi-key get answered with some keys as misses because their server was marked down */
  BACKEND_MISS: 5,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];
export const OUTCOME_COUNT = 6;
/** Label values by `Outcome`. */
export const OUTCOME_NAMES: readonly string[] = Object.freeze([
  'ok',
  'miss',
  'denied',
  'rate_limited',
  'error',
  'backend_miss',
]);

/** Slots per command class, indexed by `CommandClass` value (0 unused). */
export const CLASS_COUNT: number = Math.max(...Object.values(CommandClass)) + 1;
/** Label values by `CommandClass` value ('' at the unused 0). */
export const CLASS_NAMES: readonly string[] = Object.freeze(
  (() => {
    const names = new Array<string>(CLASS_COUNT).fill('');
    for (const [name, id] of Object.entries(CommandClass)) names[id] = name.toLowerCase();
    return names;
  })(),
);

/**
 * Upper bounds of the request latency buckets, in microseconds (inclusive, as
 * Prometheus' `le`). A last, implicit bucket takes everything above.
 */
export const LATENCY_BOUNDS_US = [
  100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
] as const;
/** Buckets per class: one per bound plus the overflow bucket. */
export const LATENCY_BUCKET_COUNT = LATENCY_BOUNDS_US.length + 1;

/** One slot per `Admit` reason (0 = ok is unused). */
export const RATE_BUDGET_SLOTS = 5;

export class TenantCounters {
  /** requests refused by a rate budget */
  rateLimited = 0;
  /** the same, by the budget that refused them (index: `Admit` from policy/rate-limit.ts) */
  readonly rateLimitedBy: Float64Array = new Float64Array(RATE_BUDGET_SLOTS);
  /** connections closed by the idle deadline */
  idleKicks = 0;
  cmdGet = 0;
  getHits = 0;
  getMisses = 0;
  cmdSet = 0;
  cmdTouch = 0;
  touchHits = 0;
  touchMisses = 0;
  cmdFlush = 0;
  deleteHits = 0;
  deleteMisses = 0;
  incrHits = 0;
  incrMisses = 0;
  decrHits = 0;
  decrMisses = 0;
  casHits = 0;
  casMisses = 0;
  casBadval = 0;
  currConnections = 0;
  totalConnections = 0;
  bytesRead = 0;
  bytesWritten = 0;
  denied = 0;
  errors = 0;
  /** requests by command id × outcome, at `cmd * OUTCOME_COUNT + outcome` (see countOutcome) */
  readonly outcomes: Float64Array = new Float64Array(COMMAND_COUNT * OUTCOME_COUNT);
  /**
   * Latency histogram by command class: per-bucket (not cumulative) counts at
   * `klass * LATENCY_BUCKET_COUNT + bucket`, bucket i counting latencies
   * ≤ LATENCY_BOUNDS_US[i] (and > the previous bound); the last is the overflow.
   */
  readonly latencyBuckets: Float64Array = new Float64Array(CLASS_COUNT * LATENCY_BUCKET_COUNT);
  /** sum of observed latencies by command class, in microseconds */
  readonly latencySumUs: Float64Array = new Float64Array(CLASS_COUNT);
}

/** Counts one request of command `cmd` that ended with `outcome`. */
export function countOutcome(c: TenantCounters, cmd: number, outcome: Outcome): void {
  const i = cmd * OUTCOME_COUNT + outcome;
  c.outcomes[i] = (c.outcomes[i] ?? 0) + 1;
}

/** Records one request of class `klass` that took `us` microseconds (request read → reply written). */
export function observeLatencyUs(c: TenantCounters, klass: number, us: number): void {
  let bucket = 0;
  while (bucket < LATENCY_BOUNDS_US.length && us > (LATENCY_BOUNDS_US[bucket] ?? Infinity)) bucket++;
  const i = klass * LATENCY_BUCKET_COUNT + bucket;
  c.latencyBuckets[i] = (c.latencyBuckets[i] ?? 0) + 1;
  c.latencySumUs[klass] = (c.latencySumUs[klass] ?? 0) + us;
}

export class ProcessCounters {
  readonly startedAtMs = Date.now();
  connectionsAccepted = 0;
  connectionsRejected = 0;
  /** tenant generation rotations (flush_all, admin API, CLI, scheduled) */
  rotations = 0;
  /** failed authentications (ASCII auth, SASL), every tenant and none */
  authFailures = 0;
  /** source addresses locked out after too many failed authentications */
  authLockouts = 0;
  /** config reloads applied */
  reloads = 0;
  /** config reloads refused (invalid config; the old one stays) */
  reloadFailures = 0;
  /** per upstream server: connection resets by reason */
  readonly upstream: UpstreamCounterSet = new UpstreamCounterSet();
}

/**
 * Why an upstream connection was reset, for `memgate_upstream_resets_total{reason}`.
 * Every path that ends a connection other than close() counts exactly one.
 */
export const ResetReason = {
  /** the oldest in-flight request had no reply within requestTimeoutMs */
  TIMEOUT: 0,
  /** memcached closed the socket */
  CLOSED: 1,
  /** memcached sent bytes that do not answer the request at the head of the FIFO */
  DESYNC: 2,
  /** memcached answered a storage request CLIENT_ERROR / ERROR: it may read the data block as commands */
  BACKEND_ERROR: 3,
  /** connecting failed or took longer than connectTimeoutMs */
  CONNECT_FAILED: 4,
  /** the socket reported an error while connected */
  SOCKET_ERROR: 5,
} as const;
export type ResetReason = (typeof ResetReason)[keyof typeof ResetReason];
/** Label values by `ResetReason`. */
export const RESET_REASON_NAMES: readonly string[] = Object.freeze([
  'timeout',
  'closed',
  'desync',
  'backend_error',
  'connect_failed',
  'socket_error',
]);
export const RESET_REASON_COUNT = RESET_REASON_NAMES.length;

/** Plain numbers of one upstream server, bumped by its connections. */
export class UpstreamCounters {
  readonly server: string;
  /** resets by `ResetReason` */
  readonly resets: Float64Array = new Float64Array(RESET_REASON_COUNT);

  constructor(server: string) {
    this.server = server;
  }

  /** Resets of every reason. */
  get resetsTotal(): number {
    let n = 0;
    for (let i = 0; i < RESET_REASON_COUNT; i++) n += this.resets[i] ?? 0;
    return n;
  }
}

/**
 * The UpstreamCounters of every server, kept by the process so that a config
 * reload that replaces the pool does not restart its counters from zero.
 */
export class UpstreamCounterSet {
  private readonly byServer = new Map<string, UpstreamCounters>();

  /** The counters of `server` ("host:port"), made on first use (pool construction, not per request). */
  forServer(server: string): UpstreamCounters {
    let c = this.byServer.get(server);
    if (c === undefined) {
      c = new UpstreamCounters(server);
      this.byServer.set(server, c);
    }
    return c;
  }

  all(): Iterable<UpstreamCounters> {
    return this.byServer.values();
  }
}
