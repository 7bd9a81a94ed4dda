/**
 * Bounded audit logging: repeated events of one kind from one tenant are
 * logged at most a few times a second; the rest are counted and reported in
 * the next line that gets through (`suppressed`), so a client looping on a
 * denied command cannot flood the log.
 */
import type { Logger } from 'pino';
import { TokenBucket } from '../policy/rate-limit.js';

const PER_SECOND = 5;
const BURST = 20;
const MAX_KEYS = 10_000;

interface Slot {
  readonly bucket: TokenBucket;
  suppressed: number;
}

export class AuditSampler {
  private readonly log: Logger;
  private readonly slots = new Map<string, Slot>();

  constructor(log: Logger) {
    this.log = log;
  }

  /** Logs `fields` at `level` unless this (event, tenant) pair is over its budget. */
  event(level: 'info' | 'warn', event: string, tenant: string, fields: Record<string, unknown>, msg: string): void {
    if (!this.log.isLevelEnabled(level)) return;
    const key = `${event}\u0000${tenant}`;
    let slot = this.slots.get(key);
    if (slot === undefined) {
      if (this.slots.size >= MAX_KEYS) this.slots.clear();
      slot = { bucket: new TokenBucket(PER_SECOND, BURST), suppressed: 0 };
      this.slots.set(key, slot);
    }
    if (!slot.bucket.tryTake(performance.now(), 1)) {
      slot.suppressed++;
      return;
    }
    const suppressed = slot.suppressed;
    slot.suppressed = 0;
    this.log[level]({ audit: event, tenant, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
  }
}
