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
import { AuthFailureTracker, type AuthFailureOptions } from './conn-limits.js';

export interface AuthSettings {
  readonly lockoutFailures: number;
  readonly lockoutWindowMs: number;
  readonly lockoutMs: number;
}

export type AuthResult =
  | { readonly ok: true; readonly tenant: string; readonly rights: Rights; readonly username: string }
  | { readonly ok: false; readonly lockedOut: boolean };

export class Authenticator {
  private readonly policy: () => CompiledPolicy;
  private readonly log: Logger;
  private readonly failures: AuthFailureTracker;
  /** failed attempts since start, for metrics */
  failuresTotal = 0;
  lockoutsTotal = 0;

  constructor(policy: () => CompiledPolicy, settings: AuthSettings, log: Logger) {
    this.policy = policy;
    this.log = log;
    this.failures = new AuthFailureTracker(trackerOptions(settings));
  }

  reconfigure(settings: AuthSettings): void {
    this.failures.reconfigure(trackerOptions(settings));
  }

  /** True while `addr` is locked out. */
  isLockedOut(addr: string, nowMs: number): boolean {
    return this.failures.isLockedOut(addr, nowMs);
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
    const wasLocked = this.failures.isLockedOut(addr, nowMs);
    const locked = this.failures.recordFailure(addr, nowMs);
    if (locked && !wasLocked) {
      this.lockoutsTotal++;
      this.log.warn({ audit: 'lockout', peer: addr, failures: this.failures.failuresOf(addr) }, 'address locked out');
    }
    return locked;
  }
}

/**
 * NOTE: a success does not clear an address's failures: otherwise whoever holds
 * some valid credential could reset the count between guesses at another one.
 * Failures expire with their window instead.
 */
function trackerOptions(s: AuthSettings): AuthFailureOptions {
  return {
    maxFailures: s.lockoutFailures,
    windowMs: s.lockoutWindowMs,
    lockoutMs: s.lockoutMs,
    forgetOnSuccess: false,
  };
}
