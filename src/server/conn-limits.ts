/**
 * Connection admission: how many client connections may be open (globally, per
 * tenant, per source address), and which source addresses are locked out after
 * failed authentications. Pure bookkeeping over Maps: no sockets, no timers, and
 * every operation is O(1).
 *
 * The listener and the session call, in order:
 *
 *   TCP accept      tryAcquire(null, addr)           → 0 or a ConnReject reason (then close at once);
 *                   counted before any TLS handshake, released when the TCP socket closes
 *   identified      tryAttachTenant(tenant)         → 0 or ConnReject.TENANT (by listener, network or certificate)
 *   auth attempt    authFailures.tryBegin(addr, now) → LOCKED: refused; FULL: wait for a running one
 *                   authFailures.end(addr, now, failed) once the password check is done
 *   authenticated   tryAttachTenant(tenant)         → 0 or ConnReject.TENANT (tenant known only now)
 *   re-auth, close  detachTenant(tenant)            (the tenant the connection was attached to)
 *   TCP close       release(null, addr)
 *
 * Addresses are compared as strings: the caller passes them normalised (for
 * example `::ffff:10.0.0.1` → `10.0.0.1`), the same way as for network matching.
 */

/** Why a connection was refused; 0 admits it. */
export const ConnReject = {
  OK: 0,
  /** the process-wide cap */
  GLOBAL: 1,
  /** the tenant's `limits.connections` */
  TENANT: 2,
  /** the per-source-address cap */
  ADDRESS: 3,
} as const;
export type ConnReject = (typeof ConnReject)[keyof typeof ConnReject];

/** Short names for logs and metrics, by `ConnReject` value. */
export const CONN_REJECT_NAMES: readonly string[] = Object.freeze(['ok', 'global', 'tenant', 'address']);

export interface ConnectionCaps {
  /** most open client connections in the process; 0 = unlimited */
  readonly maxConnections: number;
  /** most open connections from one source address; 0 = unlimited */
  readonly maxConnectionsPerAddress: number;
  /** each tenant's `limits.connections`; a tenant not listed (or 0) is unlimited */
  readonly tenantConnections: ReadonlyMap<string, number>;
}

function isOver(count: number, cap: number): boolean {
  return cap > 0 && count >= cap;
}

/**
 * Counts open connections and refuses the one that would exceed a cap. A refused
 * acquire changes nothing; every successful acquire must be matched by exactly one
 * release with the same address and the tenant the connection ended up with.
 */
export class ConnectionLimiter {
  private caps: ConnectionCaps;
  private total: number;
  private readonly perTenant: Map<string, number>;
  /** only addresses with open connections: an entry is removed when it reaches 0 */
  private readonly perAddress: Map<string, number>;

  constructor(caps: ConnectionCaps) {
    this.caps = caps;
    this.total = 0;
    this.perTenant = new Map();
    this.perAddress = new Map();
  }

  /** Config reload: new caps apply to new connections; open ones are never closed for it. */
  reconfigure(caps: ConnectionCaps): void {
    this.caps = caps;
  }

  /** Counts a new connection from `addr`, of `tenant` when it is already known. Returns 0 or the cap it would exceed. */
  tryAcquire(tenant: string | null, addr: string): ConnReject {
    const caps = this.caps;
    if (isOver(this.total, caps.maxConnections)) return ConnReject.GLOBAL;
    const fromAddr = this.perAddress.get(addr) ?? 0;
    if (isOver(fromAddr, caps.maxConnectionsPerAddress)) return ConnReject.ADDRESS;
    if (tenant !== null && isOver(this.perTenant.get(tenant) ?? 0, caps.tenantConnections.get(tenant) ?? 0)) {
      return ConnReject.TENANT;
    }
    this.total++;
    this.perAddress.set(addr, fromAddr + 1);
    if (tenant !== null) this.perTenant.set(tenant, (this.perTenant.get(tenant) ?? 0) + 1);
    return ConnReject.OK;
  }

  /** A connection acquired with tenant null has authenticated as `tenant`. Returns 0 or ConnReject.TENANT (then nothing changed). */
  tryAttachTenant(tenant: string): ConnReject {
    const n = this.perTenant.get(tenant) ?? 0;
    if (isOver(n, this.caps.tenantConnections.get(tenant) ?? 0)) return ConnReject.TENANT;
    this.perTenant.set(tenant, n + 1);
    return ConnReject.OK;
  }

  /** A connection attached to `tenant` no longer counts against it (it closed, or it is re-authenticating). */
  detachTenant(tenant: string): void {
    const n = this.perTenant.get(tenant) ?? 0;
    if (n <= 1) this.perTenant.delete(tenant);
    else this.perTenant.set(tenant, n - 1);
  }

  /** A connection closed. `tenant` is the one it was acquired with or attached to, or null. */
  release(tenant: string | null, addr: string): void {
    if (this.total > 0) this.total--;
    const fromAddr = this.perAddress.get(addr) ?? 0;
    if (fromAddr <= 1) this.perAddress.delete(addr);
    else this.perAddress.set(addr, fromAddr - 1);
    if (tenant !== null) this.detachTenant(tenant);
  }

  get openConnections(): number {
    return this.total;
  }

  connectionsOf(tenant: string): number {
    return this.perTenant.get(tenant) ?? 0;
  }

  connectionsFrom(addr: string): number {
    return this.perAddress.get(addr) ?? 0;
  }

  /** Source addresses with open connections (memory is bounded by the open connections). */
  get trackedAddresses(): number {
    return this.perAddress.size;
  }
}

export interface AuthFailureOptions {
  /** failures from one address within `windowMs` that lock it out (config auth.lockoutFailures) */
  readonly maxFailures: number;
  /** the window failures are counted over, in ms (auth.lockoutWindowMs) */
  readonly windowMs: number;
  /** how long a locked-out address is refused, in ms (auth.lockoutMs) */
  readonly lockoutMs: number;
  /** most addresses remembered; past it the least recently failed one is forgotten (default 100 000) */
  readonly maxAddresses?: number;
  /** whether a successful authentication clears the address's failures (default true) */
  readonly forgetOnSuccess?: boolean;
}

interface FailureEntry {
  /** start of the current counting window, ms */
  windowStartMs: number;
  failures: number;
  /** attempts begun (tryBegin) and not yet ended: they count against the limit while they run */
  inFlight: number;
  /** refused until this time, ms; 0 = not locked out */
  lockedUntilMs: number;
}

export const DEFAULT_MAX_TRACKED_ADDRESSES = 100_000;

/** What AuthFailureTracker.tryBegin decided. */
export const AttemptStart = {
  BEGUN: 0,
  LOCKED: 1,
  FULL: 2,
} as const;
export type AttemptStart = (typeof AttemptStart)[keyof typeof AttemptStart];

/**
 * Failed authentications per key (a normalised source address, or a user
 * name), with lock-out. Times are monotonic milliseconds (performance.now()),
 * so a wall-clock step neither ends nor stretches a lock-out.
 *
 * Attempts are counted when they begin (`tryBegin`), before the asynchronous
 * password check: failures plus attempts still being checked may not exceed
 * `maxFailures`, so N parallel attempts cannot all be evaluated against a
 * limit that only counts finished ones. `end` settles an attempt: a failure
 * stays counted, a success only gives back its own place (it forgets no
 * earlier failure).
 *
 * Window: fixed, starting at an address's first failure; `maxFailures` within
 * `windowMs` lock the address out for `lockoutMs`, after which it starts clean.
 * NOTE: a fixed window lets up to 2 × (maxFailures − 1) failures through around
 * a window boundary; a sliding log would be exact but costs memory per failure.
 *
 * Memory: at most `maxAddresses` entries. The Map's insertion order is kept as
 * "least recently failed first" (an entry is re-inserted on each failure), so
 * evicting the oldest is O(1).
 * NOTE: an attacker cycling through more than `maxAddresses` source addresses
 * can push a locked-out address out of the map; the cap trades that for bounded
 * memory. Per-connection failure limits still apply.
 *
 * NOTE: `forgetOnSuccess` (default true) means a client that mistyped and then
 * succeeded starts clean. Whoever holds *some* valid credential can use it to
 * reset the count between guesses at another tenant from the same address; set
 * it to false where that matters (failures then only expire with the window).
 */
export class AuthFailureTracker {
  private maxFailures = 1;
  private windowMs = 0;
  private lockoutMs = 0;
  private maxAddresses = DEFAULT_MAX_TRACKED_ADDRESSES;
  private forgetOnSuccess = true;
  private readonly entries: Map<string, FailureEntry>;

  constructor(opts: AuthFailureOptions) {
    this.entries = new Map();
    this.reconfigure(opts);
  }

  /**
   * Config reload: new thresholds apply from the next failure; current windows
   * and lock-outs keep their times. A smaller `maxAddresses` trims the oldest.
   */
  reconfigure(opts: AuthFailureOptions): void {
    this.maxFailures = Math.max(1, opts.maxFailures);
    this.windowMs = opts.windowMs;
    this.lockoutMs = opts.lockoutMs;
    this.maxAddresses = Math.max(1, opts.maxAddresses ?? DEFAULT_MAX_TRACKED_ADDRESSES);
    this.forgetOnSuccess = opts.forgetOnSuccess ?? true;
    for (const addr of this.entries.keys()) {
      if (this.entries.size <= this.maxAddresses) break;
      this.entries.delete(addr);
    }
  }

  /**
   * An authentication attempt from `key` is about to be checked. BEGUN: it is
   * counted as running until `end` (or `cancel`). LOCKED: the key is locked
   * out. FULL: its failures plus the attempts already being checked reach
   * `maxFailures`; nothing is counted, and the caller may try again once one
   * of those has ended (it may then be BEGUN, or LOCKED).
   */
  tryBegin(key: string, nowMs: number): AttemptStart {
    let e = this.entries.get(key);
    if (e === undefined) {
      e = this.evictForNew(nowMs);
    } else {
      this.entries.delete(key); // re-inserted below: most recent last
      if (e.lockedUntilMs > nowMs) {
        this.entries.set(key, e);
        return AttemptStart.LOCKED;
      }
      this.restartIfExpired(e, nowMs);
    }
    this.entries.set(key, e);
    if (e.failures + e.inFlight >= this.maxFailures) return AttemptStart.FULL;
    e.inFlight++;
    return AttemptStart.BEGUN;
  }

  /** An attempt begun with `tryBegin` was not checked after all: gives its place back. */
  cancel(key: string): void {
    const e = this.entries.get(key);
    if (e !== undefined && e.inFlight > 0) e.inFlight--;
  }

  /** An attempt begun with `tryBegin` is settled. Returns true when `key` is (now) locked out. */
  end(key: string, nowMs: number, failed: boolean): boolean {
    const e = this.entries.get(key);
    if (e !== undefined && e.inFlight > 0) e.inFlight--;
    if (failed) return this.recordFailure(key, nowMs);
    return this.isLockedOut(key, nowMs);
  }

  /** Counts a failed authentication from `addr`; returns true when the address is (now) locked out. */
  recordFailure(addr: string, nowMs: number): boolean {
    let e = this.entries.get(addr);
    if (e !== undefined) {
      this.entries.delete(addr); // re-inserted below: most recent last
      if (e.lockedUntilMs > nowMs) {
        this.entries.set(addr, e);
        return true;
      }
      this.restartIfExpired(e, nowMs);
    } else {
      e = this.evictForNew(nowMs);
    }
    e.failures++;
    if (e.failures >= this.maxFailures) e.lockedUntilMs = nowMs + this.lockoutMs;
    this.entries.set(addr, e);
    return e.lockedUntilMs > nowMs;
  }

  /** An ended lock-out or a passed window starts the entry clean (attempts still running stay counted). */
  private restartIfExpired(e: FailureEntry, nowMs: number): void {
    if (e.lockedUntilMs !== 0 || nowMs - e.windowStartMs >= this.windowMs) {
      e.windowStartMs = nowMs;
      e.failures = 0;
      e.lockedUntilMs = 0;
    }
  }

  /** Whether `addr` is refused now. Forgets an expired lock-out. */
  isLockedOut(addr: string, nowMs: number): boolean {
    const e = this.entries.get(addr);
    if (e === undefined || e.lockedUntilMs === 0) return false;
    if (e.lockedUntilMs > nowMs) return true;
    if (e.inFlight === 0) this.entries.delete(addr);
    else this.restartIfExpired(e, nowMs);
    return false;
  }

  /** A successful authentication from `addr`: forgets its failures (unless disabled); never lifts a lock-out. */
  recordSuccess(addr: string): void {
    if (!this.forgetOnSuccess) return;
    const e = this.entries.get(addr);
    if (e !== undefined && e.lockedUntilMs === 0 && e.inFlight === 0) this.entries.delete(addr);
  }

  /** Failures counted for `addr` in its current window (0 when unknown). */
  failuresOf(addr: string): number {
    return this.entries.get(addr)?.failures ?? 0;
  }

  get trackedAddresses(): number {
    return this.entries.size;
  }

  /** A fresh entry for a new address, reusing the evicted oldest one when the map is full. */
  private evictForNew(nowMs: number): FailureEntry {
    let e: FailureEntry | undefined;
    if (this.entries.size >= this.maxAddresses) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) {
        e = this.entries.get(oldest.value);
        this.entries.delete(oldest.value);
      }
    }
    if (e === undefined) return { windowStartMs: nowMs, failures: 0, inFlight: 0, lockedUntilMs: 0 };
    e.windowStartMs = nowMs;
    e.failures = 0;
    e.inFlight = 0;
    e.lockedUntilMs = 0;
    return e;
  }
}
