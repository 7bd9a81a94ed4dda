/**
 * Global rate limits without a round trip per request: leases.
 *
 * A tenant's ops (and bytes) budget is ONE token bucket shared by every
 * instance (in Redis, or in a `--workers` primary). Each instance leases
 * slices of it and spends them locally; the session's check stays a
 * synchronous integer comparison:
 *
 *   shared bucket (rate, burst)  ──lease(slice)──▶  LeasedBucket.balance ──has/take──▶ session (sync)
 *        ▲                         (async, ahead                │
 *        └────── give back (idle, reconfigure, close) ◀─────────┘
 *
 * - Ahead of time: once the balance falls below half a slice, the next slice
 *   is asked for (one request in flight per bucket); the request is not
 *   awaited by anyone on the hot path.
 * - Slice size: this instance's recent spend rate × SLICE_HORIZON_MS, at
 *   least 1, at most burst ÷ live instances (so the burst is never hoarded by
 *   one instance while the others starve); before any spending, the fair
 *   share rate ÷ instances × SLICE_HORIZON_MS.
 * - An empty shared bucket answers how long until the slice is there; the
 *   bucket asks again then.
 * - Unused tokens go back after LEASE_IDLE_MS without spending.
 * - Credit: a request that finds the balance short while the last lease was
 *   granted in full (the shared bucket had plenty: a cold start, the first
 *   request after an idle give-back) is admitted on credit, up to this
 *   instance's share of the burst (⌊burst ÷ instances⌋), or one request of
 *   up to the whole burst when nothing is owed (a multi-get bigger than the share);
 *   the next lease charges that debt to the shared bucket first. After a
 *   short grant (the shared bucket is empty) there is no credit, so a tenant
 *   over its limit is refused locally without waiting for Redis.
 *
 * Error bound (README "Redis"): every admitted token was first taken from the
 * shared bucket, so over any interval T the tenant's total across all
 * instances is at most burst + rate × T, plus the credit not yet charged
 * (at most ⌊burst ÷ instances⌋, or one request ≤ burst, per instance, charged on the
 * next lease one round trip later: over any window longer than that it is an
 * advance, not an excess; giving back never returns more than was leased). Tokens leased but not yet spent are at most
 * one slice per instance (≤ burst in total), so a tenant with enough demand
 * gets at least rate × T − burst.
 *
 * When the source is unreachable (Redis down) every bucket falls back to a
 * local TokenBucket of ⌈rate ÷ N⌉ and ⌈burst ÷ N⌉, N the last known number
 * of live instances; leased tokens held at that moment stay usable.
 */
import { TokenBucket } from '../policy/rate-limit.js';

/** How far ahead a slice reaches at this instance's spend rate. */
export const SLICE_HORIZON_MS = 100;
/** A balance unused this long is given back. */
export const LEASE_IDLE_MS = 500;
/** How often idle balances are looked for. */
const IDLE_SWEEP_MS = 250;
/** A failed lease request is retried after this (the source's own state decides fallback). */
const RETRY_MS = 200;

export type BudgetKind = 'ops' | 'bytes';

/** One lease request: `want` new tokens, after charging `debt` tokens already admitted on credit. */
export interface LeaseRequest {
  readonly tenant: string;
  readonly kind: BudgetKind;
  readonly want: number;
  /** tokens this instance admitted on credit since its last lease: charged first (the shared level may go below 0) */
  readonly debt: number;
  readonly rate: number;
  readonly burst: number;
}

export interface LeaseGrant {
  /** tokens granted (0..want) */
  readonly granted: number;
  /** when short: milliseconds until `want` (at most the burst) would be there */
  readonly waitMs: number;
}

/** Where slices come from: Redis (redis-store.ts), a `--workers` primary (IPC), or memory (LocalLeaseSource). */
export interface LeaseSource {
  lease(req: LeaseRequest): Promise<LeaseGrant>;
  giveBack(tenant: string, kind: BudgetKind, tokens: number, rate: number, burst: number): Promise<void>;
  /** live instances sharing the budgets (last known while unreachable), at least 1 */
  readonly instances: number;
  /** false while the source cannot be reached: buckets use their local share */
  readonly up: boolean;
}

/** ⌈n ÷ parts⌉, at least 1. */
function shareOf(n: number, parts: number): number {
  return Math.max(1, Math.ceil(n / Math.max(1, parts)));
}

/**
 * The bucket a session sees: TokenBucket's synchronous interface over a
 * leased balance. Only `has`/`take`/`tryTake`/`delayMsFor`/`available` run on
 * the hot path; they allocate nothing and never wait.
 */
export class LeasedBucket {
  private readonly tenant: string;
  private readonly kind: BudgetKind;
  private readonly source: LeaseSource;
  private rate: number;
  private burst: number;
  /** leased tokens not yet spent */
  private balance = 0;
  /** tokens admitted on credit, not yet charged to the shared bucket */
  private debt = 0;
  /** the last lease was granted less than asked: no credit until one is granted in full */
  private short = false;
  /** the local share, used while the source is down */
  private readonly fallback: TokenBucket;
  private fallbackParts: number;
  private requesting = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** spend-rate estimate, tokens per second */
  private spendRate = 0;
  private spentSinceSample = 0;
  private sampleAtMs = Date.now();
  /** takes so far, and at the last sweep: a bucket with no take for LEASE_IDLE_MS gives its balance back */
  private takes = 0;
  private takesAtSweep = 0;
  private idleSinceMs = 0;
  /** the slice size at the last lease request: the hot path compares with it instead of recomputing */
  private slice = 1;
  private closed = false;
  /** the source was down at the last check: a recovery lease is due */
  private wasDown = false;
  /**
   * The last lease failed (a stalled Redis times out without the connection
   * closing, so the source still says up): the local share decides until a
   * lease succeeds again.
   */
  private failing = false;

  constructor(tenant: string, kind: BudgetKind, rate: number, burst: number, source: LeaseSource) {
    this.tenant = tenant;
    this.kind = kind;
    this.source = source;
    this.rate = rate;
    this.burst = burst;
    this.fallbackParts = source.instances;
    this.fallback = new TokenBucket(shareOf(rate, this.fallbackParts), shareOf(burst, this.fallbackParts));
  }

  get ratePerPeriod(): number {
    return this.rate;
  }

  get capacity(): number {
    return this.burst;
  }

  /** Leased tokens on hand (tests, give-back). */
  get leased(): number {
    return this.balance;
  }

  /** Tokens admitted on credit and not yet charged (tests). */
  get owed(): number {
    return this.debt;
  }

  available(nowMs: number): number {
    if (!this.usable) return this.balance + this.fallbackLevel(nowMs);
    return this.balance;
  }

  has(nowMs: number, n: number): boolean {
    if (n <= this.balance) return true;
    if (!this.usable) {
      if (this.failing) this.refillSoon(); // keep probing a source that stopped answering
      return this.fallbackLevel(nowMs) >= n - this.balance;
    }
    this.refillSoon();
    if (this.short) return false;
    // one request larger than the credit share (a big multi-get) may still go on credit when nothing is owed
    return this.debt + n - this.balance <= this.creditLimit() || (this.debt === 0 && n <= this.burst);
  }

  take(n: number): void {
    this.takes++;
    this.spentSinceSample += n;
    if (n <= this.balance) this.balance -= n;
    else if (this.usable) {
      // has() admitted it on credit: charged with the next lease
      this.debt += n - this.balance;
      this.balance = 0;
    } else {
      // has() said yes through the local share
      this.fallback.take(n - this.balance);
      this.balance = 0;
    }
    if (this.balance * 2 < this.slice) this.refillSoon();
  }

  tryTake(nowMs: number, n: number): boolean {
    if (!this.has(nowMs, n)) return false;
    this.take(n);
    return true;
  }

  delayMsFor(nowMs: number, n: number): number {
    if (n > this.burst) return Infinity;
    if (this.has(nowMs, n)) return 0;
    if (!this.usable) return this.fallback.delayMsFor(nowMs, n - this.balance);
    return Math.ceil(((n - this.balance) * 1000) / this.rate);
  }

  /** Config reload: new parameters; the leased balance is kept, clamped to the new burst. */
  reconfigure(rate: number, burst: number): void {
    this.rate = rate;
    this.burst = burst;
    this.resizeFallback();
    if (this.balance > burst) {
      const extra = this.balance - burst;
      this.balance = burst;
      this.giveBack(extra);
    }
  }

  /** Gives back an idle balance (called by the sweep). */
  releaseIfIdle(nowMs: number): void {
    if (this.takes !== this.takesAtSweep) {
      this.takesAtSweep = this.takes;
      this.idleSinceMs = nowMs;
    }
    if (this.balance > 0 && nowMs - this.idleSinceMs >= LEASE_IDLE_MS && !this.requesting) {
      const n = this.balance;
      this.balance = 0;
      this.giveBack(n);
    }
    // a recovered source: take a first slice again before the next request needs it
    if (!this.source.up) this.wasDown = true;
    else if (this.wasDown) {
      this.wasDown = false;
      this.resizeFallback();
    }
  }

  /** Stops leasing and gives back what is left. */
  close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const n = this.balance;
    this.balance = 0;
    if (n === 0 || !this.source.up) return Promise.resolve();
    return this.source.giveBack(this.tenant, this.kind, n, this.rate, this.burst).catch(() => undefined);
  }

  /** Leases can be had: the source is up and answered the last request. */
  private get usable(): boolean {
    return this.source.up && !this.failing;
  }

  private fallbackLevel(nowMs: number): number {
    // sized by the instance count known when the source went away (it may have grown since construction)
    if (this.fallbackParts !== this.source.instances) this.resizeFallback();
    return this.fallback.available(nowMs);
  }

  private resizeFallback(): void {
    this.fallbackParts = this.source.instances;
    this.fallback.reconfigure(shareOf(this.rate, this.fallbackParts), shareOf(this.burst, this.fallbackParts));
  }

  /** Credit while the shared bucket has plenty: this instance's share of the burst (a cold pipeline gets its burst at once). */
  private creditLimit(): number {
    return Math.max(1, Math.floor(this.burst / Math.max(1, this.source.instances)));
  }

  /** Tokens to ask for: the spend rate over the horizon, within [1, burst ÷ instances]. */
  private sliceSize(): number {
    const instances = Math.max(1, this.source.instances);
    const max = Math.max(1, Math.floor(this.burst / instances));
    const rate = this.spendRate > 0 ? this.spendRate : this.rate / instances;
    const want = Math.ceil((rate * SLICE_HORIZON_MS) / 1000);
    return want < 1 ? 1 : want > max ? max : want;
  }

  private sampleSpendRate(): void {
    const now = Date.now();
    const elapsed = now - this.sampleAtMs;
    if (elapsed < 10) return;
    const current = (this.spentSinceSample * 1000) / elapsed;
    // a quick rise (demand arrives), a slower fall
    this.spendRate = current > this.spendRate ? current : this.spendRate * 0.5 + current * 0.5;
    this.spentSinceSample = 0;
    this.sampleAtMs = now;
  }

  /** Asks for the next slice unless a request is already out (or waiting for the shared bucket). */
  private refillSoon(): void {
    if (this.requesting || this.retryTimer !== null || this.closed || !this.source.up) return;
    this.requesting = true;
    this.sampleSpendRate();
    const want = this.sliceSize();
    this.slice = want;
    const debt = this.debt;
    this.debt = 0;
    const req: LeaseRequest = { tenant: this.tenant, kind: this.kind, want, debt, rate: this.rate, burst: this.burst };
    this.source.lease(req).then(
      (g) => this.granted(g, want),
      () => this.failed(debt),
    );
  }

  private granted(g: LeaseGrant, want: number): void {
    this.requesting = false;
    this.failing = false;
    this.short = g.granted < want;
    if (this.closed) {
      if (g.granted > 0) this.giveBack(g.granted);
      return;
    }
    this.balance += g.granted;
    // credit taken while this lease was on its way is paid from it (those tokens came from the shared bucket)
    const pay = this.debt < this.balance ? this.debt : this.balance;
    this.debt -= pay;
    this.balance -= pay;
    if (g.granted >= want || this.balance * 2 >= this.sliceSize()) return;
    // the shared bucket is short: ask again when it will have the slice
    this.retryAfter(g.granted > 0 ? 0 : Math.max(1, g.waitMs));
  }

  private failed(debt: number): void {
    this.requesting = false;
    this.failing = true;
    this.debt += debt; // not charged: charged with the next lease
    if (!this.closed) this.retryAfter(RETRY_MS);
  }

  private retryAfter(ms: number): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.balance * 2 < this.sliceSize()) this.refillSoon();
    }, ms);
    this.retryTimer.unref();
  }

  private giveBack(n: number): void {
    if (n <= 0 || !this.source.up) return;
    this.source.giveBack(this.tenant, this.kind, n, this.rate, this.burst).catch(() => undefined);
  }
}

/**
 * The LeasedBuckets of one process, with the sweep that gives idle balances
 * back. `bucket()` is what TenantBudgets uses to build its ops/bytes buckets.
 */
export class LeaseClient {
  readonly source: LeaseSource;
  private readonly buckets = new Set<LeasedBucket>();
  private timer: NodeJS.Timeout | null = null;

  constructor(source: LeaseSource) {
    this.source = source;
  }

  bucket(tenant: string, kind: BudgetKind, rate: number, burst: number): LeasedBucket {
    const b = new LeasedBucket(tenant, kind, rate, burst, this.source);
    this.buckets.add(b);
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), IDLE_SWEEP_MS);
      this.timer.unref();
    }
    return b;
  }

  /** A bucket a reload removed: give back its balance. */
  drop(b: LeasedBucket): void {
    if (this.buckets.delete(b)) void b.close();
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const all = [...this.buckets];
    this.buckets.clear();
    await Promise.all(all.map((b) => b.close()));
  }

  private sweep(): void {
    const now = Date.now();
    for (const b of this.buckets) b.releaseIfIdle(now);
  }
}

/**
 * Shared buckets in memory: the lease source of a `--workers` primary without
 * Redis. One TokenBucket per tenant and budget, created on first use.
 */
export class LocalLeaseSource implements LeaseSource {
  readonly instances: number;
  readonly up = true;
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(instances: number) {
    this.instances = Math.max(1, instances);
  }

  lease(req: LeaseRequest): Promise<LeaseGrant> {
    return Promise.resolve(this.leaseNow(req, performance.now()));
  }

  /** The synchronous lease, at monotonic `nowMs`. */
  leaseNow(req: LeaseRequest, nowMs: number): LeaseGrant {
    const { want, burst } = req;
    const b = this.bucketFor(req.tenant, req.kind, req.rate, burst);
    if (req.debt > 0) b.charge(nowMs, req.debt);
    const have = b.available(nowMs);
    const granted = Math.max(0, Math.min(want, have));
    if (granted > 0) b.take(granted);
    if (granted >= want) return { granted, waitMs: 0 };
    return { granted, waitMs: Math.max(1, b.delayMsFor(nowMs, Math.min(want, burst))) };
  }

  giveBack(tenant: string, kind: BudgetKind, tokens: number, rate: number, burst: number): Promise<void> {
    const b = this.bucketFor(tenant, kind, rate, burst);
    b.giveBack(performance.now(), tokens);
    return Promise.resolve();
  }

  private bucketFor(tenant: string, kind: BudgetKind, rate: number, burst: number): TokenBucket {
    const key = `${kind}:${tenant}`;
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = new TokenBucket(rate, burst);
      this.buckets.set(key, b);
    } else if (b.ratePerPeriod !== rate || b.capacity !== burst) b.reconfigure(rate, burst);
    return b;
  }
}
