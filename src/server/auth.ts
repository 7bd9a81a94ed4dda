/**
 * Password authentication shared by ASCII auth (`set <any> 0 0 <len>` +
 * "<user> <password>") and binary SASL PLAIN.
 *
 * Every failure looks the same to the client (one error text), and costs the
 * same: an unknown user is checked against a dummy hash with the cost of a
 * configured credential (DummyHashes), and a credential used from a network
 * it is not allowed from is checked against its own hash, then refused.
 *
 * Guessing is bounded three ways, each counted when an attempt *starts*
 * (before the asynchronous scrypt), so parallel attempts cannot outrun it (an
 * attempt beyond the limit while others of its address or name are being
 * checked waits for them, then is counted, or refused if they locked it out;
 * so a pool opening many connections at once is not refused):
 * - per source address (normalised: `::ffff:10.0.0.1` is `10.0.0.1`),
 *   auth.lockoutFailures within auth.lockoutWindowMs lock it out;
 * - per user name, from any address, auth.userLockoutFailures lock the name out
 *   (NOTE: whoever can reach memgate can then keep a known user name locked out;
 *   that denial is the price of a bound on guesses spread over many addresses);
 * - process-wide, at most auth.maxConcurrentHashes checks run at once (scrypt
 *   runs on libuv's thread pool, which also serves the state file's writes and
 *   fsyncs: a flood must leave threads free), auth.maxQueuedHashes wait, and
 *   past that an attempt is refused `SERVER_ERROR too many authentications in progress`.
 * Lock-outs are timed by the monotonic clock. Passwords are never logged; failure
 * lines are sampled (AuditSampler).
 */
import type { CompiledPolicy, Rights } from '../policy/compile.js';
import { addressKey } from '../config/cidr.js';
import { DummyHashes, verifyDummy, verifyPassword } from '../policy/password.js';
import type { AuditSampler } from './audit.js';
import { AttemptStart, AuthFailureTracker, type AuthFailureOptions } from './conn-limits.js';

export interface AuthSettings {
  readonly lockoutFailures: number;
  readonly lockoutWindowMs: number;
  readonly lockoutMs: number;
  readonly userLockoutFailures: number;
  readonly maxConcurrentHashes: number;
  readonly maxQueuedHashes: number;
}

export type AuthResult =
  | { readonly ok: true; readonly tenant: string; readonly rights: Rights; readonly username: string }
  | {
      readonly ok: false;
      /** the address or the user name is locked out (the connection is closed) */
      readonly lockedOut: boolean;
      /** refused unchecked: too many password checks running and waiting */
      readonly busy: boolean;
    };

const LOCKED_OUT: AuthResult = Object.freeze({ ok: false, lockedOut: true, busy: false });
const BUSY: AuthResult = Object.freeze({ ok: false, lockedOut: false, busy: true });

/**
 * A counting semaphore with a bounded queue, for password checks. `enter`
 * returns null when both the slots and the queue are full.
 */
export class HashGate {
  private maxActive: number;
  maxQueued: number;
  private active = 0;
  private readonly queue: (() => void)[] = [];
  private queueHead = 0;
  /** most checks ever running at once (for tests and metrics) */
  peakActive = 0;

  constructor(maxActive: number, maxQueued: number) {
    this.maxActive = maxActive;
    this.maxQueued = maxQueued;
  }

  reconfigure(maxActive: number, maxQueued: number): void {
    this.maxActive = maxActive;
    this.maxQueued = maxQueued;
    while (this.active < this.maxActive && this.waiting > 0) this.wakeNext();
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length - this.queueHead;
  }

  /** Resolves when a slot is held (call `leave` after); null when refused. */
  enter(): Promise<void> | null {
    if (this.active < this.maxActive) {
      this.take();
      return Promise.resolve();
    }
    if (this.waiting >= this.maxQueued) return null;
    return new Promise<void>((resolve) => this.queue.push(resolve));
  }

  leave(): void {
    if (this.active > 0) this.active--;
    if (this.active < this.maxActive && this.waiting > 0) this.wakeNext();
  }

  private take(): void {
    this.active++;
    if (this.active > this.peakActive) this.peakActive = this.active;
  }

  private wakeNext(): void {
    const next = this.queue[this.queueHead];
    this.queue[this.queueHead++] = noop;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    if (next === undefined) return;
    this.take();
    next();
  }
}

function noop(): void {}

export class Authenticator {
  private readonly policy: () => CompiledPolicy;
  private readonly audit: AuditSampler;
  private readonly byAddress: AuthFailureTracker;
  private readonly byUser: AuthFailureTracker;
  readonly hashes: HashGate;
  /** attempts waiting for a running one of their address or user name to end (see wakeWaiters) */
  private attemptEnded: (() => void)[] = [];
  private attemptWaiters = 0;
  /** dummy hashes for the policy they were made from (rebuilt when a reload swaps it) */
  private dummies: { readonly policy: CompiledPolicy; readonly hashes: DummyHashes } | null = null;
  /** failed attempts since start, for metrics */
  failuresTotal = 0;
  lockoutsTotal = 0;

  constructor(policy: () => CompiledPolicy, settings: AuthSettings, audit: AuditSampler) {
    this.policy = policy;
    this.audit = audit;
    this.byAddress = new AuthFailureTracker(trackerOptions(settings, settings.lockoutFailures));
    this.byUser = new AuthFailureTracker(trackerOptions(settings, settings.userLockoutFailures));
    this.hashes = new HashGate(settings.maxConcurrentHashes, settings.maxQueuedHashes);
  }

  reconfigure(settings: AuthSettings): void {
    this.byAddress.reconfigure(trackerOptions(settings, settings.lockoutFailures));
    this.byUser.reconfigure(trackerOptions(settings, settings.userLockoutFailures));
    this.hashes.reconfigure(settings.maxConcurrentHashes, settings.maxQueuedHashes);
  }

  async verify(username: Buffer, password: Buffer, addr: string): Promise<AuthResult> {
    const user = username.toString('latin1');
    const peer = addressKey(addr);
    for (;;) {
      const now = performance.now();
      const byAddress = this.byAddress.tryBegin(peer, now);
      if (byAddress === AttemptStart.LOCKED) return this.refuse(peer, user, 'address locked out');
      const byUser = byAddress === AttemptStart.BEGUN ? this.byUser.tryBegin(user, now) : AttemptStart.FULL;
      if (byUser === AttemptStart.BEGUN) break;
      if (byAddress === AttemptStart.BEGUN) this.byAddress.cancel(peer);
      if (byUser === AttemptStart.LOCKED) return this.refuse(peer, user, 'user name locked out');
      // as many attempts as the limit allows are being checked: wait for one to end, then count again
      if (this.attemptWaiters >= this.hashes.maxQueued) return this.busy(peer);
      this.attemptWaiters++;
      await new Promise<void>((resolve) => this.attemptEnded.push(resolve));
      this.attemptWaiters--;
    }
    const slot = this.hashes.enter();
    if (slot === null) {
      this.byAddress.cancel(peer);
      this.byUser.cancel(user);
      this.wakeWaiters();
      return this.busy(peer);
    }
    await slot;
    const policy = this.policy();
    const cred = policy.credentials.get(user);
    const allowed = cred !== undefined && (cred.networks === null || cred.networks(addr));
    let ok = false;
    try {
      if (cred === undefined) await verifyDummy(this.dummiesFor(policy).for(username), password);
      else ok = (await verifyPassword(cred.hash, password)) && allowed;
    } finally {
      this.hashes.leave();
    }
    const now = performance.now();
    const lockedByAddress = this.byAddress.end(peer, now, !ok);
    const lockedByUser = this.byUser.end(user, now, !ok);
    this.wakeWaiters();
    if (ok && cred !== undefined) {
      this.audit.event('info', 'auth-success', cred.tenant.name, { peer, user }, 'authenticated');
      return { ok: true, tenant: cred.tenant.name, rights: cred.rights, username: user };
    }
    this.failuresTotal++;
    const lockedOut = lockedByAddress || lockedByUser;
    if (lockedOut) this.noteLockout(peer, user, lockedByAddress);
    const reason = cred === undefined ? 'unknown user' : allowed ? 'wrong password' : 'network not allowed';
    this.audit.event('warn', 'auth-failure', '-', { peer, user, reason, lockedOut }, 'authentication failed');
    return { ok: false, lockedOut, busy: false };
  }

  /**
   * Attempts waiting because their address's or user name's running attempts
   * fill its limit count again; any attempt's end may be the one they wait for.
   * NOTE: waking all is simple and cheap at these numbers (at most maxQueuedHashes wait).
   */
  private wakeWaiters(): void {
    if (this.attemptEnded.length === 0) return;
    const waiters = this.attemptEnded;
    this.attemptEnded = [];
    for (const wake of waiters) wake();
  }

  private busy(peer: string): AuthResult {
    this.audit.event('warn', 'auth-busy', '-', { peer }, 'authentication refused: too many in progress');
    return BUSY;
  }

  private refuse(peer: string, user: string, reason: string): AuthResult {
    this.audit.event('warn', 'auth-failure', '-', { peer, user, reason, lockedOut: true }, 'authentication refused');
    return LOCKED_OUT;
  }

  private noteLockout(peer: string, user: string, byAddress: boolean): void {
    this.lockoutsTotal++;
    const fields = byAddress
      ? { peer, failures: this.byAddress.failuresOf(peer) }
      : { user, failures: this.byUser.failuresOf(user) };
    this.audit.event('warn', 'lockout', '-', fields, byAddress ? 'address locked out' : 'user name locked out');
  }

  private dummiesFor(policy: CompiledPolicy): DummyHashes {
    if (this.dummies === null || this.dummies.policy !== policy) {
      const hashes = new DummyHashes([...policy.credentials.values()].map((c) => c.hash));
      this.dummies = { policy, hashes };
    }
    return this.dummies.hashes;
  }
}

/**
 * NOTE: a success does not clear earlier failures: otherwise whoever holds
 * some valid credential could reset the count between guesses at another one.
 * Failures expire with their window instead.
 */
function trackerOptions(s: AuthSettings, maxFailures: number): AuthFailureOptions {
  return {
    maxFailures,
    windowMs: s.lockoutWindowMs,
    lockoutMs: s.lockoutMs,
    forgetOnSuccess: false,
  };
}
