import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CommandClass } from '../../src/protocol/text/commands.js';
import { Admit, TenantBudgets, TokenBucket } from '../../src/policy/rate-limit.js';

interface Step {
  readonly dtMs: number;
  readonly n: number;
}

const params = fc.record({ rate: fc.integer({ min: 1, max: 5000 }), burst: fc.integer({ min: 1, max: 2000 }) });

function stepsFor(burst: number, maxDtMs: number): fc.Arbitrary<Step[]> {
  return fc.array(
    fc.record({
      dtMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: maxDtMs })),
      n: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: burst + 2 })),
    }),
    { maxLength: 200 },
  );
}

/**
 * Checks every window between two admitted events: tokens × 1000 ≤ burst × 1000
 * + rate × Δt (all integers, so no rounding at all). A window whose ends are not
 * events contains a contiguous run of events and is covered by the tightest one.
 */
function assertWindowBound(events: { t: number; n: number }[], rate: number, burst: number): void {
  const prefix = [0];
  for (const e of events) prefix.push((prefix[prefix.length - 1] ?? 0) + e.n);
  for (let i = 0; i < events.length; i++) {
    for (let j = i; j < events.length; j++) {
      const admitted = (prefix[j + 1] ?? 0) - (prefix[i] ?? 0);
      const dt = (events[j]?.t ?? 0) - (events[i]?.t ?? 0);
      if (admitted * 1000 > burst * 1000 + rate * dt) {
        expect.fail(`admitted ${admitted} in [${events[i]?.t}, ${events[j]?.t}] > ${burst} + ${rate} × ${dt}/1000`);
      }
    }
  }
}

describe('TokenBucket properties', () => {
  it('admits at most burst + rate × (t1 − t0)/1000 in any window', () => {
    fc.assert(
      fc.property(
        params.chain((p) => fc.tuple(fc.constant(p), stepsFor(p.burst, 3000))),
        ([{ rate, burst }, steps]) => {
          const b = new TokenBucket(rate, burst);
          const events: { t: number; n: number }[] = [];
          let t = 0;
          for (const s of steps) {
            t += s.dtMs;
            if (b.tryTake(t, s.n)) events.push({ t, n: s.n });
          }
          assertWindowBound(events, rate, burst);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the bound with a fractional clock (on whole milliseconds elapsed)', () => {
    fc.assert(
      fc.property(
        params.chain((p) =>
          fc.tuple(
            fc.constant(p),
            fc.array(
              fc.record({
                dtMs: fc.double({ min: 0, max: 50, noNaN: true }),
                n: fc.integer({ min: 0, max: p.burst }),
              }),
              { maxLength: 200 },
            ),
          ),
        ),
        ([{ rate, burst }, steps]) => {
          const b = new TokenBucket(rate, burst);
          const events: { t: number; n: number }[] = [];
          let t = 1000.5;
          for (const s of steps) {
            t += s.dtMs;
            if (b.tryTake(t, s.n)) events.push({ t: Math.floor(t), n: s.n });
          }
          assertWindowBound(events, rate, burst);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('admits everything when each request was refilled since the previous one (steady rate at or below the limit)', () => {
    fc.assert(
      fc.property(
        params.chain((p) =>
          fc.tuple(
            fc.constant(p),
            fc.array(
              fc.integer({ min: 1, max: 2000 }).chain((dtMs) =>
                fc.record({
                  dtMs: fc.constant(dtMs),
                  n: fc.integer({ min: 0, max: Math.min(p.burst, Math.floor((p.rate * dtMs) / 1000)) }),
                }),
              ),
              { maxLength: 200 },
            ),
          ),
        ),
        ([{ rate, burst }, steps]) => {
          const b = new TokenBucket(rate, burst);
          let t = 0;
          for (const s of steps) {
            t += s.dtMs;
            expect(b.tryTake(t, s.n)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('admits a steady one-token stream at exactly the configured rate', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 50 }), (rate, burst) => {
        const b = new TokenBucket(rate, burst);
        const interval = Math.ceil(1000 / rate);
        for (let i = 0; i < 300; i++) expect(b.tryTake(i * interval, 1)).toBe(true);
      }),
    );
  });

  it('shaping: waiting delayMsFor(n) is exactly enough, one millisecond less is not', () => {
    fc.assert(
      fc.property(
        params.chain((p) => fc.tuple(fc.constant(p), stepsFor(p.burst, 500), fc.integer({ min: 1, max: p.burst }))),
        ([{ rate, burst }, steps, n]) => {
          const b = new TokenBucket(rate, burst);
          let t = 0;
          for (const s of steps) {
            t += s.dtMs;
            b.tryTake(t, s.n);
          }
          const d = b.delayMsFor(t, n);
          expect(Number.isInteger(d)).toBe(true);
          if (d > 0) expect(b.tryTake(t + d - 1, n)).toBe(false);
          expect(b.tryTake(t + d, n)).toBe(true);
          expect(b.delayMsFor(t, burst + 1)).toBe(Infinity);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('TenantBudgets properties', () => {
  const request = fc.record({
    dtMs: fc.integer({ min: 0, max: 200 }),
    klass: fc.constantFrom(CommandClass.READ, CommandClass.WRITE, CommandClass.FLUSH, CommandClass.STATS),
    ops: fc.integer({ min: 1, max: 40 }),
    bytes: fc.integer({ min: 0, max: 3000 }),
  });

  it('a refused request costs nothing: replaying only the admitted ones admits them all', () => {
    fc.assert(
      fc.property(fc.array(request, { maxLength: 150 }), (reqs) => {
        const params = {
          opsPerSecond: 50,
          opsBurst: 60,
          bytesPerSecond: 5000,
          bytesBurst: 6000,
          flushesPerMinute: 2,
          perClassPerSecond: { [CommandClass.STATS]: 3 },
        };
        const a = new TenantBudgets(params);
        const kept: { t: number; klass: number; ops: number; bytes: number }[] = [];
        let t = 0;
        for (const r of reqs) {
          t += r.dtMs;
          const bytes = r.klass === CommandClass.WRITE ? r.bytes : 0;
          const reason = a.admit(t, r.klass, r.ops, bytes);
          expect(Object.values(Admit)).toContain(reason);
          if (reason === Admit.OK) kept.push({ t, klass: r.klass, ops: r.ops, bytes });
        }
        const b = new TenantBudgets(params);
        for (const k of kept) expect(b.admit(k.t, k.klass, k.ops, k.bytes)).toBe(Admit.OK);
      }),
      { numRuns: 200 },
    );
  });
});
