/**
 * Rate limits: an integer token bucket, and the per-tenant set of buckets the
 * request path consults once per request (policy/authorize.ts).
 *
 * Algorithm: a classic token bucket (not GCRA), because it also answers "how long
 * until n tokens are there" for the shaping mode, and "how full is it" survives a
 * config reload by clamping. The level is kept in *sub-tokens*: one token is
 * `periodMs` sub-tokens, and every elapsed millisecond adds `rate` sub-tokens.
 * Refill, take and the delay computation are therefore integer additions,
 * multiplications and one integer division — nothing fractional accumulates,
 * and the bound "admitted ≤ burst + rate × Δt / period" holds exactly.
 *
 *   level (sub-tokens)
 *   cap = burst × periodMs ┤‾‾‾‾‾‾╲        ╱‾‾‾‾‾‾‾‾
 *                          │       ╲  slope ╱  (+rate per ms)
 *                          │        ╲_____╱
 *                          └──────────────────────────▶ nowMs
 *                                  take(n): −n × periodMs
 *
 * Clock: the caller passes a monotonic time in milliseconds (`performance.now()`
 * read once per chunk, STYLE §2.9). A fractional part is truncated (the
 * bucket keeps the truncated stamp, so nothing is lost: the fraction counts at
 * the next whole millisecond). A clock that steps back adds nothing and does not
 * rewind the bucket.
 *
 * Overflow: `cap` must be a safe integer (checked). `elapsed × rate` can exceed
 * 2^53 after a long idle period, but then it exceeds `cap` too and the level is
 * clamped to `cap`, which is exact; below `cap` every value is an exact integer.
 *
 * Hot path: `tryTake`, `has`/`take`, `delayMsFor` and `TenantBudgets.admit`
 * allocate nothing and use no closures or exceptions.
 */
import { CommandClass } from '../protocol/text/commands.js';

/** Why `TenantBudgets.admit` refused a request; 0 admits it. */
export const Admit = {
  OK: 0,
  /** operations per second (a multi-get charges one per key) */
  RATE_OPS: 1,
  /** value bytes written per second */
  RATE_BYTES: 2,
  /** flush_all per minute */
  RATE_FLUSH: 3,
  /** a per-command-class budget (for example `stats` per second) */
  RATE_CLASS: 4,
} as const;
export type Admit = (typeof Admit)[keyof typeof Admit];

/** Short names for logs and metrics, by `Admit` value. */
export const ADMIT_NAMES: readonly string[] = Object.freeze(['ok', 'ops', 'bytes', 'flush', 'class']);

const MS_PER_SECOND = 1000;
const MS_PER_MINUTE = 60_000;

/** Slots for per-class budgets, indexed by `CommandClass` value (0 unused). */
export const CLASS_SLOTS: number = Math.max(...Object.values(CommandClass)) + 1;

function checkParameters(rate: number, burst: number, periodMs: number): void {
  if (!Number.isSafeInteger(rate) || rate < 0) throw new RangeError(`rate must be a non-negative integer, not ${rate}`);
  if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError(`burst must be a positive integer, not ${burst}`);
  if (!Number.isSafeInteger(periodMs) || periodMs < 1) {
    throw new RangeError(`periodMs must be a positive integer, not ${periodMs}`);
  }
  if (!Number.isSafeInteger(burst * periodMs)) {
    throw new RangeError(`burst × periodMs (${burst} × ${periodMs}) is too large for exact integer arithmetic`);
  }
}

/** floor(a / b) for non-negative safe integers, exact even where a / b rounds up in floating point. */
function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  if (q * b > a) q--;
  else if ((q + 1) * b <= a) q++;
  return q;
}

/**
 * An integer token bucket: `rate` tokens per `periodMs` (default: per second),
 * at most `burst` tokens stored. It starts full. A rate of 0 means unlimited:
 * every take succeeds and nothing is counted.
 */
export class TokenBucket {
  private rate: number;
  private burst: number;
  private readonly periodMs: number;
  /** burst × periodMs: the level of a full bucket, in sub-tokens */
  private cap: number;
  /** current level, in sub-tokens (0..cap) */
  private level: number;
  /** truncated time of the last refill, ms; -Infinity before the first call */
  private lastMs: number;

  constructor(rate: number, burst: number, periodMs: number = MS_PER_SECOND) {
    checkParameters(rate, burst, periodMs);
    this.rate = rate;
    this.burst = burst;
    this.periodMs = periodMs;
    this.cap = burst * periodMs;
    this.level = this.cap;
    this.lastMs = -Infinity;
  }

  get ratePerPeriod(): number {
    return this.rate;
  }

  get capacity(): number {
    return this.burst;
  }

  /** Whole tokens available at `nowMs` (refills first). */
  available(nowMs: number): number {
    if (this.rate === 0) return this.burst;
    this.refill(nowMs);
    return floorDiv(this.level, this.periodMs);
  }

  /** Takes `n` tokens if they are all there; otherwise takes none. */
  tryTake(nowMs: number, n: number): boolean {
    if (this.rate === 0) return true;
    this.refill(nowMs);
    const cost = n * this.periodMs;
    if (cost > this.level) return false;
    this.level -= cost;
    return true;
  }

  /** Whether `n` tokens are there at `nowMs` (refills, takes nothing). With `take`, a check-all-then-commit over several buckets. */
  has(nowMs: number, n: number): boolean {
    if (this.rate === 0) return true;
    this.refill(nowMs);
    return n * this.periodMs <= this.level;
  }

  /** Takes `n` tokens that `has()` just confirmed, at the same `nowMs`. */
  take(n: number): void {
    if (this.rate === 0) return;
    const cost = n * this.periodMs;
    this.level = cost >= this.level ? 0 : this.level - cost;
  }

  /**
   * Milliseconds from `nowMs` until `n` tokens are available (0 if they are now),
   * or Infinity when `n` exceeds the burst and never will be. Takes nothing.
   * The delay is counted from the truncated `nowMs`, so waiting exactly this
   * long and calling `tryTake` succeeds.
   */
  delayMsFor(nowMs: number, n: number): number {
    if (this.rate === 0) return 0;
    if (n > this.burst) return Infinity;
    this.refill(nowMs);
    const missing = n * this.periodMs - this.level;
    if (missing <= 0) return 0;
    return floorDiv(missing + this.rate - 1, this.rate);
  }

  /**
   * New parameters after a config reload. The current level is kept in tokens,
   * clamped to the new burst: a reload never hands out a fresh burst. Time since
   * the last call is refilled at the new rate on the next call.
   */
  reconfigure(rate: number, burst: number): void {
    checkParameters(rate, burst, this.periodMs);
    const wasUnlimited = this.rate === 0;
    this.rate = rate;
    this.burst = burst;
    this.cap = burst * this.periodMs;
    // an unlimited bucket counted nothing: it is full
    if (wasUnlimited || this.level > this.cap) this.level = this.cap;
  }

  /**
   * Takes `n` tokens that were already spent elsewhere (a lease's credit): the
   * level may go below 0, down to −burst, and refills from there.
   */
  charge(nowMs: number, n: number): void {
    if (this.rate === 0 || n <= 0) return;
    this.refill(nowMs);
    const level = this.level - n * this.periodMs;
    this.level = level < -this.cap ? -this.cap : level;
  }

  /** Puts `n` unspent tokens back (a lease given back), never above the burst. */
  giveBack(nowMs: number, n: number): void {
    if (this.rate === 0 || n <= 0) return;
    this.refill(nowMs);
    const level = this.level + n * this.periodMs;
    this.level = level >= this.cap ? this.cap : level;
  }

  private refill(nowMs: number): void {
    const now = Math.floor(nowMs);
    if (now <= this.lastMs) return;
    if (this.lastMs !== -Infinity && this.level < this.cap) {
      const level = this.level + (now - this.lastMs) * this.rate;
      this.level = level >= this.cap ? this.cap : level;
    }
    this.lastMs = now;
  }
}

/** Budgets of one tenant; a rate of 0 (or absent) disables that budget. */
export interface BudgetParameters {
  /** operations per second; a multi-get counts one per key */
  readonly opsPerSecond: number;
  /** operations in a burst; default: opsPerSecond */
  readonly opsBurst?: number;
  /** value bytes written per second */
  readonly bytesPerSecond: number;
  /** bytes in a burst; default: bytesPerSecond */
  readonly bytesBurst?: number;
  /** flush_all per minute (burst = the same number) */
  readonly flushesPerMinute?: number;
  /** requests per second by `CommandClass` value, for example `{ [CommandClass.STATS]: 10 }` (burst = rate) */
  readonly perClassPerSecond?: Readonly<Partial<Record<CommandClass, number>>>;
}

/** What `budgetParametersFromLimits` reads: a tenant's `limits` from the config. */
export interface TenantLimitsLike {
  readonly opsPerSecond?: number | undefined;
  readonly burst?: number | undefined;
  readonly bytesPerSecond?: number | undefined;
  readonly maxItemBytes?: number | undefined;
  readonly maxKeysPerGet?: number | undefined;
}

/**
 * Budget parameters from a tenant's config `limits`.
 *
 * The ops burst is exactly the configured `burst` (default: opsPerSecond):
 * it is never raised to fit a multi-get. A multi-get costs one token per key,
 * so one naming more keys than the burst can never be admitted; authorize.ts
 * refuses it with `SERVER_ERROR rate limited (more keys than the burst)` and
 * `memgate check-config` names tenants whose maxKeysPerGet exceeds their burst
 * (`burstNotes`).
 *
 * NOTE: the bytes burst has no config key of its own; it is one second's worth
 * (bytesPerSecond), or the largest value the tenant may store when that is
 * larger, so that such a value can be stored at all. check-config says so too.
 */
export function budgetParametersFromLimits(
  limits: TenantLimitsLike,
  global: { readonly maxKeysPerGet: number; readonly maxValueBytes: number },
  extra: Pick<BudgetParameters, 'flushesPerMinute' | 'perClassPerSecond'> = {},
): BudgetParameters {
  const ops = limits.opsPerSecond ?? 0;
  const bytes = limits.bytesPerSecond ?? 0;
  const maxItem = Math.min(limits.maxItemBytes ?? global.maxValueBytes, global.maxValueBytes);
  return {
    opsPerSecond: ops,
    opsBurst: ops === 0 ? 0 : (limits.burst ?? ops),
    bytesPerSecond: bytes,
    bytesBurst: bytes === 0 ? 0 : Math.max(bytes, maxItem),
    ...extra,
  };
}

/**
 * What `memgate check-config` says about a tenant's burst: how the ops burst
 * and maxKeysPerGet interact (a multi-get costs one token per key, so one of
 * more keys than the burst is always refused), and a bytes burst raised to the
 * item size. Empty when there is nothing to say.
 */
export function burstNotes(
  tenant: string,
  limits: TenantLimitsLike,
  global: { readonly maxKeysPerGet: number; readonly maxValueBytes: number },
): string[] {
  const notes: string[] = [];
  // the bursts as the budgets get them, so the notes can never describe other numbers
  const p = budgetParametersFromLimits(limits, global);
  const burst = p.opsBurst ?? 0;
  if (p.opsPerSecond > 0) {
    const maxKeys = Math.min(limits.maxKeysPerGet ?? global.maxKeysPerGet, global.maxKeysPerGet);
    if (maxKeys > burst) {
      notes.push(
        `tenant ${tenant}: maxKeysPerGet (${maxKeys}) exceeds its burst (${burst}): a multi-get costs one token per key, ` +
          `so one of more than ${burst} keys is always refused (SERVER_ERROR rate limited (more keys than the burst)); ` +
          `raise limits.burst or lower limits.maxKeysPerGet to ${burst} to make that explicit ` +
          `(with serve --workers N or several instances on Redis, the burst is one budget they share)`,
      );
    }
  }
  const bytesBurst = p.bytesBurst ?? 0;
  if (p.bytesPerSecond > 0 && bytesBurst > p.bytesPerSecond) {
    notes.push(
      `tenant ${tenant}: bytesPerSecond (${p.bytesPerSecond}) is smaller than its largest value (${bytesBurst} bytes): ` +
        `its bytes burst is ${bytesBurst}, so that one value can be stored`,
    );
  }
  return notes;
}

/** What TenantBudgets needs of an ops or bytes bucket: a TokenBucket, or a leased one (state/leases.ts). */
export interface Bucket {
  readonly ratePerPeriod: number;
  readonly capacity: number;
  has(nowMs: number, n: number): boolean;
  take(n: number): void;
  delayMsFor(nowMs: number, n: number): number;
  reconfigure(rate: number, burst: number): void;
}

/**
 * Makes the ops and bytes buckets of a tenant whose budgets are shared with
 * other instances or workers (leases); `drop` is told when a reload removes one.
 */
export interface SharedBuckets {
  create(kind: 'ops' | 'bytes', rate: number, burst: number): Bucket;
  drop(bucket: Bucket): void;
}

function sharedBucketFor(
  current: Bucket | null,
  shared: SharedBuckets,
  kind: 'ops' | 'bytes',
  rate: number | undefined,
  burst: number | undefined,
): Bucket | null {
  if (rate === undefined || rate === 0) {
    if (current !== null) shared.drop(current);
    return null;
  }
  const b = burst === undefined || burst === 0 ? rate : burst;
  if (current === null) return shared.create(kind, rate, b);
  current.reconfigure(rate, b);
  return current;
}

function bucketFor(
  current: TokenBucket | null,
  rate: number | undefined,
  burst: number | undefined,
  periodMs: number,
): TokenBucket | null {
  if (rate === undefined || rate === 0) return null;
  const b = burst === undefined || burst === 0 ? rate : burst;
  if (current === null) return new TokenBucket(rate, b, periodMs);
  current.reconfigure(rate, b);
  return current;
}

/**
 * One tenant's buckets, shared by all its sessions. `admit` checks every budget
 * that applies and takes from them only when all agree, so a refused request
 * costs nothing.
 *
 * With `shared` (several instances through Redis, or `--workers`), the ops and
 * bytes buckets are leased from one budget (state/leases.ts); flush and
 * per-class budgets stay per process. The check is synchronous either way.
 */
export class TenantBudgets {
  private ops: Bucket | null;
  private bytes: Bucket | null;
  private readonly shared: SharedBuckets | null;
  private flush: TokenBucket | null;
  /** by CommandClass value; null = no budget for that class */
  private readonly byClass: (TokenBucket | null)[];

  constructor(params: BudgetParameters, shared: SharedBuckets | null = null) {
    this.shared = shared;
    this.ops = null;
    this.bytes = null;
    this.flush = null;
    this.byClass = new Array<TokenBucket | null>(CLASS_SLOTS).fill(null);
    this.reconfigure(params);
  }

  /**
   * True when a request of `ops` operations is larger than the ops burst and
   * can never be admitted (the bucket never holds more than the burst).
   */
  exceedsOpsBurst(ops: number): boolean {
    const b = this.ops;
    return b !== null && b.ratePerPeriod > 0 && ops > b.capacity;
  }

  /** True when no budget is set: authorize may skip `admit` altogether. */
  get isUnlimited(): boolean {
    if (this.ops !== null || this.bytes !== null || this.flush !== null) return false;
    for (const b of this.byClass) if (b !== null) return false;
    return true;
  }

  /**
   * Admits a request of command class `klass` that counts `ops` operations (one
   * per key of a multi-get, else 1) and writes `bytes` value bytes (0 for
   * non-storage commands). Returns `Admit.OK` (0) or the first budget that is
   * short: flush, class, ops, bytes.
   */
  admit(nowMs: number, klass: number, ops: number, bytes: number): Admit {
    const isFlush = klass === CommandClass.FLUSH;
    const flush = this.flush;
    if (isFlush && flush !== null && !flush.has(nowMs, 1)) return Admit.RATE_FLUSH;
    const perClass = this.byClass[klass] ?? null;
    if (perClass !== null && !perClass.has(nowMs, 1)) return Admit.RATE_CLASS;
    const opsBucket = this.ops;
    if (opsBucket !== null && ops > 0 && !opsBucket.has(nowMs, ops)) return Admit.RATE_OPS;
    const bytesBucket = this.bytes;
    if (bytesBucket !== null && bytes > 0 && !bytesBucket.has(nowMs, bytes)) return Admit.RATE_BYTES;
    if (isFlush && flush !== null) flush.take(1);
    if (perClass !== null) perClass.take(1);
    if (opsBucket !== null && ops > 0) opsBucket.take(ops);
    if (bytesBucket !== null && bytes > 0) bytesBucket.take(bytes);
    return Admit.OK;
  }

  /**
   * Shaping mode: milliseconds until `admit` would accept this request (0 = now),
   * or Infinity when it never will (a request larger than a burst). Takes nothing.
   */
  delayMsFor(nowMs: number, klass: number, ops: number, bytes: number): number {
    let delay = 0;
    if (klass === CommandClass.FLUSH && this.flush !== null) delay = this.flush.delayMsFor(nowMs, 1);
    const perClass = this.byClass[klass] ?? null;
    if (perClass !== null) delay = Math.max(delay, perClass.delayMsFor(nowMs, 1));
    if (this.ops !== null && ops > 0) delay = Math.max(delay, this.ops.delayMsFor(nowMs, ops));
    if (this.bytes !== null && bytes > 0) delay = Math.max(delay, this.bytes.delayMsFor(nowMs, bytes));
    return delay;
  }

  /** Config reload: buckets that stay keep their (clamped) level; removed ones go; new ones start full. */
  reconfigure(params: BudgetParameters): void {
    const shared = this.shared;
    if (shared === null) {
      this.ops = bucketFor(this.ops as TokenBucket | null, params.opsPerSecond, params.opsBurst, MS_PER_SECOND);
      this.bytes = bucketFor(this.bytes as TokenBucket | null, params.bytesPerSecond, params.bytesBurst, MS_PER_SECOND);
    } else {
      this.ops = sharedBucketFor(this.ops, shared, 'ops', params.opsPerSecond, params.opsBurst);
      this.bytes = sharedBucketFor(this.bytes, shared, 'bytes', params.bytesPerSecond, params.bytesBurst);
    }
    this.flush = bucketFor(this.flush, params.flushesPerMinute, params.flushesPerMinute, MS_PER_MINUTE);
    for (let k = 1; k < CLASS_SLOTS; k++) {
      const rate = params.perClassPerSecond?.[k as CommandClass];
      this.byClass[k] = bucketFor(this.byClass[k] ?? null, rate, rate, MS_PER_SECOND);
    }
  }
}
