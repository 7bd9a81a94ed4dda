/**
 * Leased budgets (state/leases.ts): the synchronous local check over slices
 * leased from one shared bucket, in memory (LocalLeaseSource, as a --workers
 * primary has it) and in Redis (ioredis-mock).
 */
import RedisMock from 'ioredis-mock';
import type { Redis, RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LeaseClient,
  LocalLeaseSource,
  type LeaseGrant,
  type LeaseRequest,
  type LeaseSource,
} from '../../../src/state/leases.js';
import { RedisStateStore } from '../../../src/state/redis-store.js';
import { TenantBudgets, Admit } from '../../../src/policy/rate-limit.js';
import { CommandClass } from '../../../src/protocol/text/commands.js';

const clients: LeaseClient[] = [];
const stores: RedisStateStore[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const s of stores.splice(0)) await s.close();
});

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

function client(source: LeaseSource): LeaseClient {
  const c = new LeaseClient(source);
  clients.push(c);
  return c;
}

/** Spends as fast as the bucket allows for `ms` (taking 1 at a time), yielding so leases can arrive. */
async function spend(b: { has(now: number, n: number): boolean; take(n: number): void }, ms: number): Promise<number> {
  let admitted = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let i = 0; i < 50; i++) {
      if (b.has(performance.now(), 1)) {
        b.take(1);
        admitted++;
      }
    }
    await tick();
  }
  return admitted;
}

/** A source whose leases can be held back, to see what the bucket does meanwhile. */
class GatedSource implements LeaseSource {
  readonly inner = new LocalLeaseSource(1);
  instances = 1;
  up = true;
  requests: LeaseRequest[] = [];
  private held: (() => void)[] = [];
  hold = false;

  lease(req: LeaseRequest): Promise<LeaseGrant> {
    this.requests.push(req);
    if (!this.hold) return this.inner.lease(req);
    return new Promise((resolve) => this.held.push(() => resolve(this.inner.leaseNow(req, performance.now()))));
  }

  giveBack(tenant: string, kind: 'ops' | 'bytes', tokens: number, rate: number, burst: number): Promise<void> {
    return this.inner.giveBack(tenant, kind, tokens, rate, burst);
  }

  release(): void {
    for (const h of this.held.splice(0)) h();
  }
}

describe('LeasedBucket over one shared bucket', () => {
  it('two instances together admit at most burst + rate × T, and close to it', async () => {
    const shared = new LocalLeaseSource(2);
    const a = client(shared).bucket('shop', 'ops', 1000, 100);
    const b = client(shared).bucket('shop', 'ops', 1000, 100);
    const t0 = performance.now();
    const [na, nb] = await Promise.all([spend(a, 1000), spend(b, 1000)]);
    const elapsed = performance.now() - t0;
    const bound = 100 + (1000 * elapsed) / 1000;
    // credit not yet charged: at most a burst share per instance (≤ burst ÷ 2 each)
    expect(na + nb).toBeLessThanOrEqual(bound + 100);
    expect(na + nb).toBeGreaterThanOrEqual(bound * 0.8);
    expect(na).toBeGreaterThan(0);
    expect(nb).toBeGreaterThan(0);
  });

  it('one instance with all the traffic gets the whole limit (not a share)', async () => {
    const shared = new LocalLeaseSource(2);
    const a = client(shared).bucket('shop', 'ops', 500, 50);
    client(shared).bucket('shop', 'ops', 500, 50); // idle second instance
    const t0 = performance.now();
    const n = await spend(a, 1000);
    const bound = 50 + (500 * (performance.now() - t0)) / 1000;
    expect(n).toBeGreaterThanOrEqual(bound * 0.8);
    expect(n).toBeLessThanOrEqual(bound + 50);
  });

  it('admits the first request of a cold or idle bucket at once, on credit, and charges it with the next lease', async () => {
    const src = new GatedSource();
    const b = client(src).bucket('shop', 'ops', 10, 10);
    src.hold = true;
    expect(b.has(performance.now(), 1)).toBe(true); // nothing leased yet: credit
    b.take(1);
    expect(b.owed).toBe(1);
    src.release();
    await tick(5);
    // the slice that arrives pays for it
    expect(b.owed).toBe(0);
    expect(src.requests[0]?.want).toBe(1); // rate 10 × 100 ms
    expect(b.leased).toBe(0);
  });

  it('admits a multi-get larger than its share of the burst (two instances, 80 keys of a burst of 100)', () => {
    const b = client(new LocalLeaseSource(2)).bucket('shop', 'ops', 10, 100);
    expect(b.has(performance.now(), 80)).toBe(true);
    b.take(80);
    expect(b.has(performance.now(), 80)).toBe(false); // owed: no second one on credit
  });

  it('gives no credit once the shared bucket came up short: an over-limit tenant is refused locally', async () => {
    const src = new GatedSource();
    const b = client(src).bucket('shop', 'ops', 1, 2);
    // drain the shared bucket (burst 2, 1/s)
    await spend(b, 50);
    await tick(10);
    const before = src.requests.length;
    let admitted = 0;
    for (let i = 0; i < 100; i++) {
      if (b.has(performance.now(), 1)) {
        b.take(1);
        admitted++;
      }
    }
    expect(admitted).toBe(0);
    // and it does not flood the source with requests meanwhile (one in flight or waiting)
    expect(src.requests.length - before).toBeLessThanOrEqual(1);
  });

  it('gives an idle balance back to the shared bucket', async () => {
    const shared = new LocalLeaseSource(1);
    const b = client(shared).bucket('shop', 'ops', 1000, 1000);
    expect(b.has(performance.now(), 1)).toBe(true);
    b.take(1);
    await tick(20);
    expect(b.leased).toBeGreaterThan(0);
    await tick(900);
    expect(b.leased).toBe(0);
    expect(
      shared.leaseNow({ tenant: 'shop', kind: 'ops', want: 1000, debt: 0, rate: 1000, burst: 1000 }, performance.now())
        .granted,
    ).toBe(1000);
  });

  it('falls back to ⌈rate ÷ instances⌉ with ⌈burst ÷ instances⌉ while the source is down', () => {
    const src = new GatedSource();
    src.instances = 4;
    src.up = false;
    const b = client(src).bucket('shop', 'ops', 100, 40);
    let admitted = 0;
    const now = performance.now();
    for (let i = 0; i < 100; i++) {
      if (b.has(now, 1)) {
        b.take(1);
        admitted++;
      }
    }
    expect(admitted).toBe(10);
    expect(src.requests).toHaveLength(0); // nothing asked of a source that is down
  });

  it('falls back to the local share when leases fail while the source still says up (a stalled Redis), and back once one succeeds', async () => {
    const src = new GatedSource();
    src.instances = 2;
    let fail = true;
    const lease = src.lease.bind(src);
    src.lease = (req) => (fail ? Promise.reject(new Error('Command timed out')) : lease(req));
    const b = client(src).bucket('shop', 'ops', 100, 20);
    expect(b.has(performance.now(), 1)).toBe(true); // credit, and a lease that fails
    b.take(1);
    await tick(5);
    let admitted = 0;
    const now = performance.now();
    for (let i = 0; i < 100; i++) {
      if (b.has(now, 1)) {
        b.take(1);
        admitted++;
      }
    }
    expect(admitted).toBe(10); // ⌈burst ÷ 2⌉: not refused outright, not unlimited
    fail = false;
    await tick(400); // the retry leases again
    expect(b.has(performance.now(), 1)).toBe(true);
    expect(b.leased).toBeGreaterThan(0);
  });

  it('keeps TenantBudgets synchronous: admit answers from the local balance', async () => {
    const shared = new LocalLeaseSource(1);
    const lc = client(shared);
    const budgets = new TenantBudgets(
      { opsPerSecond: 100, opsBurst: 100, bytesPerSecond: 0 },
      { create: (kind, rate, burst) => lc.bucket('shop', kind, rate, burst), drop: () => undefined },
    );
    expect(budgets.exceedsOpsBurst(101)).toBe(true);
    const first = budgets.admit(performance.now(), CommandClass.READ, 1, 0);
    expect(first).toBe(Admit.OK);
  });
});

describe('leases through Redis (ioredis-mock)', () => {
  it('two stores lease from one Redis bucket: together at most burst + rate × T', async () => {
    const port = 45000 + Math.floor(Math.random() * 1000);
    const factory = (_url: string, options: RedisOptions): Redis =>
      new RedisMock({ ...options, host: '127.0.0.1', port }) as unknown as Redis;
    const s1 = new RedisStateStore(`redis://127.0.0.1:${port}/0`, { createClient: factory });
    const s2 = new RedisStateStore(`redis://127.0.0.1:${port}/0`, { createClient: factory });
    stores.push(s1, s2);
    await s1.open(['shop']);
    await s2.open(['shop']);
    const a = client(s1.leases).bucket('shop', 'ops', 200, 50);
    const b = client(s2.leases).bucket('shop', 'ops', 200, 50);
    const t0 = performance.now();
    const [na, nb] = await Promise.all([spend(a, 600), spend(b, 600)]);
    const bound = 50 + (200 * (performance.now() - t0)) / 1000;
    expect(na + nb).toBeLessThanOrEqual(bound + 50);
    expect(na + nb).toBeGreaterThanOrEqual(bound * 0.7);
  });
});
