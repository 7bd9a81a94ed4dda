/**
 * Password authentication shared by ASCII auth (`set <any> 0 0 <len>` +
 * "<user> <password>") and binary SASL PLAIN.
 *
 * Every failure looks the same to the client (one error text, and the same
 * time: an unknown user or a credential used from a network it is not allowed
 * from is checked against a dummy hash). Failures are counted per source
 * address, which is locked out past a threshold. Passwords are never logged.
 */
import type { Logger } from 'pino';
import type { CompiledPolicy, Rights } from '../policy/compile.js';
import { verifyDummy, verifyPassword } from '../policy/password.js';

export interface AuthSettings {
  readonly lockoutFailures: number;
  readonly lockoutWindowMs: number;
  readonly lockoutMs: number;
}

export type AuthResult =
  | { readonly ok: true; readonly tenant: string; readonly rights: Rights; readonly username: string }
  | { readonly ok: false; readonly lockedOut: boolean };

interface FailureWindow {
  startMs: number;
  count: number;
  lockedUntilMs: number;
}

/** Bound on remembered source addresses, so a scan of many addresses cannot grow memory without end. */
const MAX_TRACKED_ADDRESSES = 100_000;

export class Authenticator {
  private readonly policy: () => CompiledPolicy;
  private settings: AuthSettings;
  private readonly log: Logger;
  private readonly failures = new Map<string, FailureWindow>();
  /** failed attempts since start, for metrics */
  failuresTotal = 0;
  lockoutsTotal = 0;

  constructor(policy: () => CompiledPolicy, settings: AuthSettings, log: Logger) {
    this.policy = policy;
    this.settings = settings;
    this.log = log;
  }

  reconfigure(settings: AuthSettings): void {
    this.settings = settings;
  }

  /** True while `addr` is locked out. */
  isLockedOut(addr: string, nowMs: number): boolean {
    const w = this.failures.get(addr);
    return w !== undefined && w.lockedUntilMs > nowMs;
  }

  async verify(username: Buffer, password: Buffer, addr: string): Promise<AuthResult> {
    const user = username.toString('latin1');
    if (this.isLockedOut(addr, Date.now())) {
      this.log.warn({ audit: 'auth-failure', peer: addr, user, reason: 'locked out' }, 'authentication refused');
      return { ok: false, lockedOut: true };
    }
    const cred = this.policy().credentials.get(user);
    const allowed = cred !== undefined && (cred.networks === null || cred.networks(addr));
    const ok = allowed ? await verifyPassword(cred.hash, password) : await verifyDummy(password);
    if (ok && cred !== undefined) {
      this.failures.delete(addr);
      this.log.info({ audit: 'auth-success', peer: addr, user, tenant: cred.tenant.name }, 'authenticated');
      return { ok: true, tenant: cred.tenant.name, rights: cred.rights, username: user };
    }
    const lockedOut = this.recordFailure(addr, Date.now());
    const reason = cred === undefined ? 'unknown user' : allowed ? 'wrong password' : 'network not allowed';
    this.log.warn({ audit: 'auth-failure', peer: addr, user, reason, lockedOut }, 'authentication failed');
    return { ok: false, lockedOut };
  }

  private recordFailure(addr: string, nowMs: number): boolean {
    this.failuresTotal++;
    const s = this.settings;
    let w = this.failures.get(addr);
    if (w === undefined || nowMs - w.startMs > s.lockoutWindowMs) {
      if (w === undefined && this.failures.size >= MAX_TRACKED_ADDRESSES) {
        const oldest = this.failures.keys().next();
        if (oldest.done !== true) this.failures.delete(oldest.value);
      }
      w = { startMs: nowMs, count: 0, lockedUntilMs: w?.lockedUntilMs ?? 0 };
      this.failures.delete(addr);
      this.failures.set(addr, w);
    }
    w.count++;
    if (w.count >= s.lockoutFailures && w.lockedUntilMs <= nowMs) {
      w.lockedUntilMs = nowMs + s.lockoutMs;
      this.lockoutsTotal++;
      this.log.warn({ audit: 'lockout', peer: addr, failures: w.count, lockoutMs: s.lockoutMs }, 'address locked out');
    }
    return w.lockedUntilMs > nowMs;
  }
}
