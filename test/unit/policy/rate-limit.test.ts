import { describe, expect, it } from 'vitest';
import { CommandClass } from '../../../src/protocol/text/commands.js';
import {
  Admit,
  TenantBudgets,
  TokenBucket,
  budgetParametersFromLimits,
  burstNotes,
} from '../../../src/policy/rate-limit.js';

describe('TokenBucket', () => {
  it('starts full and admits exactly the burst at one instant', () => {
    const b = new TokenBucket(10, 5);
    let admitted = 0;
    for (let i = 0; i < 20; i++) if (b.tryTake(1000, 1)) admitted++;
    expect(admitted).toBe(5);
  });

  it('refills rate tokens per second with integer arithmetic, no drift over many small steps', () => {
    const b = new TokenBucket(3, 3); // one token every 333.33 ms
    expect(b.tryTake(0, 3)).toBe(true);
    // 1000 steps of 1 ms each: exactly 3 tokens, never 2.999…
    for (let t = 1; t < 1000; t++) b.available(t);
    expect(b.available(999)).toBe(2);
    expect(b.available(1000)).toBe(3);
  });

  it('refuses a take without taking anything', () => {
    const b = new TokenBucket(10, 10);
    expect(b.tryTake(0, 8)).toBe(true);
    expect(b.tryTake(0, 3)).toBe(false);
    expect(b.tryTake(0, 2)).toBe(true);
  });

  it('truncates fractional milliseconds without losing the fraction', () => {
    const b = new TokenBucket(1000, 1000); // one token per ms
    expect(b.tryTake(0.9, 1000)).toBe(true);
    expect(b.available(1.4)).toBe(1);
    expect(b.available(2.0)).toBe(2);
  });

  it('ignores a clock that steps back', () => {
    const b = new TokenBucket(1000, 1000);
    expect(b.tryTake(500, 1000)).toBe(true);
    expect(b.available(100)).toBe(0);
    expect(b.available(501)).toBe(1);
  });

  it('does not overflow after a very long idle time at a high rate', () => {
    const b = new TokenBucket(2_000_000_000, 4_000_000_000);
    expect(b.tryTake(0, 4_000_000_000)).toBe(true);
    expect(b.available(1e12)).toBe(4_000_000_000);
    expect(b.tryTake(1e12, 4_000_000_000)).toBe(true);
    expect(b.tryTake(1e12, 1)).toBe(false);
  });

  it('treats rate 0 as unlimited', () => {
    const b = new TokenBucket(0, 1);
    for (let i = 0; i < 100; i++) expect(b.tryTake(0, 1_000_000)).toBe(true);
    expect(b.delayMsFor(0, 1_000_000)).toBe(0);
  });

  it('rejects parameters that are not positive integers or too large for exact arithmetic', () => {
    expect(() => new TokenBucket(1.5, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(-1, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0)).toThrow(RangeError);
    expect(() => new TokenBucket(1, Number.MAX_SAFE_INTEGER)).toThrow(/too large/);
  });

  it('supports a period other than one second (flushes per minute)', () => {
    const b = new TokenBucket(2, 2, 60_000);
    expect(b.tryTake(0, 2)).toBe(true);
    expect(b.tryTake(29_999, 1)).toBe(false);
    expect(b.tryTake(30_000, 1)).toBe(true);
  });
});

describe('TokenBucket.delayMsFor (shaping)', () => {
  it('is 0 when the tokens are there and takes nothing', () => {
    const b = new TokenBucket(10, 10);
    expect(b.delayMsFor(0, 10)).toBe(0);
    expect(b.available(0)).toBe(10);
  });

  it('is the exact time until the missing tokens have refilled, rounded up to a whole ms', () => {
    const b = new TokenBucket(3, 3);
    expect(b.tryTake(0, 3)).toBe(true);
    expect(b.delayMsFor(0, 1)).toBe(334); // 1000/3 = 333.3 → 334
    expect(b.delayMsFor(0, 3)).toBe(1000);
    expect(b.tryTake(333, 1)).toBe(false);
    expect(b.tryTake(334, 1)).toBe(true);
  });

  it('counts from the truncated time so that waiting the delay always succeeds', () => {
    const b = new TokenBucket(7, 7);
    expect(b.tryTake(10.75, 7)).toBe(true);
    const d = b.delayMsFor(10.75, 5);
    expect(b.tryTake(10.75 + d - 1, 5)).toBe(false);
    expect(b.tryTake(10.75 + d, 5)).toBe(true);
  });

  it('is Infinity when more than the burst is asked for', () => {
    const b = new TokenBucket(100, 10);
    expect(b.delayMsFor(0, 11)).toBe(Infinity);
    expect(b.tryTake(1e9, 11)).toBe(false);
  });
});

describe('TokenBucket.reconfigure', () => {
  it('keeps the current level instead of handing out a fresh burst', () => {
    const b = new TokenBucket(10, 100);
    expect(b.tryTake(0, 90)).toBe(true);
    b.reconfigure(10, 200);
    expect(b.available(0)).toBe(10);
    expect(b.capacity).toBe(200);
  });

  it('clamps the level to a smaller burst', () => {
    const b = new TokenBucket(10, 100);
    b.reconfigure(10, 5);
    expect(b.available(0)).toBe(5);
    expect(b.tryTake(0, 6)).toBe(false);
    expect(b.delayMsFor(0, 6)).toBe(Infinity);
  });

  it('refills at the new rate afterwards', () => {
    const b = new TokenBucket(1, 1000);
    expect(b.tryTake(0, 1000)).toBe(true);
    b.reconfigure(1000, 1000);
    expect(b.available(10)).toBe(10);
  });

  it('turns an unlimited bucket into a full limited one, and back', () => {
    const b = new TokenBucket(0, 1);
    b.reconfigure(5, 5);
    expect(b.available(0)).toBe(5);
    expect(b.tryTake(0, 5)).toBe(true);
    expect(b.tryTake(0, 1)).toBe(false);
    b.reconfigure(0, 5);
    expect(b.tryTake(0, 1)).toBe(true);
  });
});

describe('TenantBudgets', () => {
  it('charges a multi-get one operation per key', () => {
    const t = new TenantBudgets({ opsPerSecond: 10, bytesPerSecond: 0 });
    expect(t.admit(0, CommandClass.READ, 7, 0)).toBe(Admit.OK);
    expect(t.admit(0, CommandClass.READ, 4, 0)).toBe(Admit.RATE_OPS);
    expect(t.admit(0, CommandClass.READ, 3, 0)).toBe(Admit.OK);
    expect(t.admit(0, CommandClass.READ, 1, 0)).toBe(Admit.RATE_OPS);
  });

  it('limits value bytes written and refuses without charging operations', () => {
    const t = new TenantBudgets({ opsPerSecond: 2, bytesPerSecond: 100 });
    expect(t.admit(0, CommandClass.WRITE, 1, 150)).toBe(Admit.RATE_BYTES);
    expect(t.admit(0, CommandClass.WRITE, 1, 60)).toBe(Admit.OK);
    expect(t.admit(0, CommandClass.WRITE, 1, 60)).toBe(Admit.RATE_BYTES);
    // the refused writes took no operation tokens: one is left
    expect(t.admit(0, CommandClass.READ, 1, 0)).toBe(Admit.OK);
    expect(t.admit(0, CommandClass.READ, 1, 0)).toBe(Admit.RATE_OPS);
  });

  it('limits flush_all per minute', () => {
    const t = new TenantBudgets({ opsPerSecond: 0, bytesPerSecond: 0, flushesPerMinute: 1 });
    expect(t.admit(0, CommandClass.FLUSH, 1, 0)).toBe(Admit.OK);
    expect(t.admit(1000, CommandClass.FLUSH, 1, 0)).toBe(Admit.RATE_FLUSH);
    expect(t.admit(1000, CommandClass.READ, 1, 0)).toBe(Admit.OK);
    expect(t.admit(60_000, CommandClass.FLUSH, 1, 0)).toBe(Admit.OK);
  });

  it('applies a per-class budget only to its class', () => {
    const t = new TenantBudgets({
      opsPerSecond: 0,
      bytesPerSecond: 0,
      perClassPerSecond: { [CommandClass.STATS]: 2 },
    });
    expect(t.admit(0, CommandClass.STATS, 1, 0)).toBe(Admit.OK);
    expect(t.admit(0, CommandClass.STATS, 1, 0)).toBe(Admit.OK);
    expect(t.admit(0, CommandClass.STATS, 1, 0)).toBe(Admit.RATE_CLASS);
    for (let i = 0; i < 100; i++) expect(t.admit(0, CommandClass.READ, 1, 0)).toBe(Admit.OK);
  });

  it('admits everything when every rate is 0', () => {
    const t = new TenantBudgets({ opsPerSecond: 0, bytesPerSecond: 0 });
    expect(t.isUnlimited).toBe(true);
    for (let i = 0; i < 1000; i++) expect(t.admit(0, CommandClass.WRITE, 256, 1 << 20)).toBe(Admit.OK);
  });

  it('reports the longest shaping delay over the budgets that apply', () => {
    const t = new TenantBudgets({ opsPerSecond: 10, bytesPerSecond: 1000 });
    expect(t.admit(0, CommandClass.WRITE, 10, 1000)).toBe(Admit.OK);
    expect(t.delayMsFor(0, CommandClass.WRITE, 1, 500)).toBe(500);
    expect(t.delayMsFor(0, CommandClass.WRITE, 5, 10)).toBe(500);
    expect(t.delayMsFor(0, CommandClass.WRITE, 1, 1001)).toBe(Infinity);
    expect(t.admit(499, CommandClass.WRITE, 1, 500)).toBe(Admit.RATE_BYTES);
    expect(t.admit(500, CommandClass.WRITE, 1, 500)).toBe(Admit.OK);
  });

  it('keeps levels across a reload, adds new budgets full and drops removed ones', () => {
    const t = new TenantBudgets({ opsPerSecond: 10, bytesPerSecond: 0 });
    expect(t.admit(0, CommandClass.READ, 10, 0)).toBe(Admit.OK);
    t.reconfigure({ opsPerSecond: 20, bytesPerSecond: 100 });
    expect(t.admit(0, CommandClass.READ, 1, 0)).toBe(Admit.RATE_OPS);
    expect(t.admit(50, CommandClass.WRITE, 1, 100)).toBe(Admit.OK);
    t.reconfigure({ opsPerSecond: 0, bytesPerSecond: 0 });
    expect(t.isUnlimited).toBe(true);
    expect(t.admit(50, CommandClass.WRITE, 1000, 1000)).toBe(Admit.OK);
  });
});

describe('budgetParametersFromLimits', () => {
  const global = { maxKeysPerGet: 256, maxValueBytes: 1 << 20 };

  it('disables budgets that are not configured', () => {
    const p = budgetParametersFromLimits({}, global);
    expect(new TenantBudgets(p).isUnlimited).toBe(true);
  });

  it('uses burst, defaulting to the rate', () => {
    expect(budgetParametersFromLimits({ opsPerSecond: 5000, burst: 10000 }, global).opsBurst).toBe(10000);
    expect(budgetParametersFromLimits({ opsPerSecond: 5000 }, global).opsBurst).toBe(5000);
  });

  it('keeps the configured ops burst exactly, however many keys a multi-get may name', () => {
    const p = budgetParametersFromLimits({ opsPerSecond: 50, burst: 50 }, global);
    expect(p.opsBurst).toBe(50);
    expect(budgetParametersFromLimits({ opsPerSecond: 10, maxKeysPerGet: 64 }, global).opsBurst).toBe(10);
    const t = new TenantBudgets(p);
    let admitted = 0;
    for (let i = 0; i < 256; i++) if (t.admit(0, CommandClass.READ, 1, 0) === Admit.OK) admitted++;
    expect(admitted).toBe(50);
  });

  it('tells a multi-get that can never be admitted (more keys than the burst) from one that must wait', () => {
    const t = new TenantBudgets(budgetParametersFromLimits({ opsPerSecond: 50, burst: 50 }, global));
    expect(t.exceedsOpsBurst(50)).toBe(false);
    expect(t.exceedsOpsBurst(51)).toBe(true);
    expect(t.admit(0, CommandClass.READ, 51, 0)).toBe(Admit.RATE_OPS);
    expect(t.admit(0, CommandClass.READ, 50, 0)).toBe(Admit.OK);
    expect(new TenantBudgets(budgetParametersFromLimits({}, global)).exceedsOpsBurst(1_000_000)).toBe(false);
  });

  it('still raises the bytes burst (no config key of its own) to the largest value the tenant may store', () => {
    const p = budgetParametersFromLimits({ opsPerSecond: 10, bytesPerSecond: 1000, maxItemBytes: 4096 }, global);
    expect(p.bytesBurst).toBe(4096);
    expect(new TenantBudgets(p).admit(0, CommandClass.WRITE, 0, 4096)).toBe(Admit.OK);
  });
});

describe('burstNotes (memgate check-config)', () => {
  const global = { maxKeysPerGet: 10_000, maxValueBytes: 1 << 20 };

  it('says how a burst smaller than maxKeysPerGet refuses the larger multi-gets', () => {
    expect(burstNotes('shop', { opsPerSecond: 50, burst: 50, maxKeysPerGet: 100 }, global)).toEqual([
      'tenant shop: maxKeysPerGet (100) exceeds its burst (50): a multi-get costs one token per key, so one of more than 50 keys is always refused (SERVER_ERROR rate limited (more keys than the burst)); raise limits.burst or lower limits.maxKeysPerGet to 50 to make that explicit (with serve --workers N or several instances on Redis, the burst is one budget they share)',
    ]);
    expect(burstNotes('shop', { opsPerSecond: 50 }, global)[0]).toContain(
      'maxKeysPerGet (10000) exceeds its burst (50)',
    );
  });

  it('says nothing when the burst covers the largest multi-get, or there is no ops budget', () => {
    expect(burstNotes('a', { opsPerSecond: 50, burst: 100, maxKeysPerGet: 100 }, global)).toEqual([]);
    expect(burstNotes('a', { maxKeysPerGet: 100 }, global)).toEqual([]);
  });

  it('says when the bytes burst is raised to the item size', () => {
    expect(burstNotes('w', { bytesPerSecond: 1000, maxItemBytes: 4096 }, global)).toEqual([
      'tenant w: bytesPerSecond (1000) is smaller than its largest value (4096 bytes): its bytes burst is 4096, so that one value can be stored',
    ]);
  });
});
