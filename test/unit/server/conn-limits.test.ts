import { describe, expect, it } from 'vitest';
import { HashGate } from '../../../src/server/auth.js';
import { AttemptStart, AuthFailureTracker, ConnReject, ConnectionLimiter } from '../../../src/server/conn-limits.js';

const caps = (maxConnections: number, maxConnectionsPerAddress: number, tenants: Record<string, number> = {}) => ({
  maxConnections,
  maxConnectionsPerAddress,
  tenantConnections: new Map(Object.entries(tenants)),
});

describe('ConnectionLimiter', () => {
  it('refuses the connection past the global cap and admits again after a release', () => {
    const l = new ConnectionLimiter(caps(2, 0));
    expect(l.tryAcquire(null, '10.0.0.1')).toBe(ConnReject.OK);
    expect(l.tryAcquire(null, '10.0.0.2')).toBe(ConnReject.OK);
    expect(l.tryAcquire(null, '10.0.0.3')).toBe(ConnReject.GLOBAL);
    expect(l.openConnections).toBe(2);
    l.release(null, '10.0.0.1');
    expect(l.tryAcquire(null, '10.0.0.3')).toBe(ConnReject.OK);
  });

  it('caps connections per source address without affecting other addresses', () => {
    const l = new ConnectionLimiter(caps(0, 2));
    expect(l.tryAcquire(null, '10.0.0.1')).toBe(ConnReject.OK);
    expect(l.tryAcquire(null, '10.0.0.1')).toBe(ConnReject.OK);
    expect(l.tryAcquire(null, '10.0.0.1')).toBe(ConnReject.ADDRESS);
    expect(l.tryAcquire(null, '10.0.0.2')).toBe(ConnReject.OK);
    expect(l.connectionsFrom('10.0.0.1')).toBe(2);
  });

  it("caps a tenant's connections from its limits, other tenants and unlimited ones unaffected", () => {
    const l = new ConnectionLimiter(caps(0, 0, { shop: 2 }));
    expect(l.tryAcquire('shop', 'a')).toBe(ConnReject.OK);
    expect(l.tryAcquire('shop', 'b')).toBe(ConnReject.OK);
    expect(l.tryAcquire('shop', 'c')).toBe(ConnReject.TENANT);
    for (let i = 0; i < 50; i++) expect(l.tryAcquire('blog', `x${i}`)).toBe(ConnReject.OK);
    expect(l.connectionsOf('shop')).toBe(2);
  });

  it('a refused acquire changes no count', () => {
    const l = new ConnectionLimiter(caps(10, 1, { shop: 1 }));
    expect(l.tryAcquire('shop', 'a')).toBe(ConnReject.OK);
    expect(l.tryAcquire('shop', 'b')).toBe(ConnReject.TENANT);
    expect(l.tryAcquire('blog', 'a')).toBe(ConnReject.ADDRESS);
    expect(l.openConnections).toBe(1);
    expect(l.connectionsFrom('b')).toBe(0);
    expect(l.connectionsOf('blog')).toBe(0);
  });

  it('checks the tenant cap when a connection authenticates after accept', () => {
    const l = new ConnectionLimiter(caps(0, 0, { shop: 1 }));
    expect(l.tryAcquire(null, 'a')).toBe(ConnReject.OK);
    expect(l.tryAcquire(null, 'b')).toBe(ConnReject.OK);
    expect(l.tryAttachTenant('shop')).toBe(ConnReject.OK);
    expect(l.tryAttachTenant('shop')).toBe(ConnReject.TENANT);
    l.release(null, 'b'); // the refused one closes without a tenant
    l.release('shop', 'a');
    expect(l.openConnections).toBe(0);
    expect(l.connectionsOf('shop')).toBe(0);
  });

  it('forgets an address once its last connection closes (memory bounded by open connections)', () => {
    const l = new ConnectionLimiter(caps(0, 0));
    for (let i = 0; i < 1000; i++) {
      expect(l.tryAcquire('shop', `10.0.${i >> 8}.${i & 255}`)).toBe(ConnReject.OK);
      l.release('shop', `10.0.${i >> 8}.${i & 255}`);
    }
    expect(l.trackedAddresses).toBe(0);
    expect(l.openConnections).toBe(0);
  });

  it('applies reloaded caps to new connections only', () => {
    const l = new ConnectionLimiter(caps(0, 0, { shop: 3 }));
    for (let i = 0; i < 3; i++) expect(l.tryAcquire('shop', 'a')).toBe(ConnReject.OK);
    l.reconfigure(caps(0, 0, { shop: 1 }));
    expect(l.connectionsOf('shop')).toBe(3);
    expect(l.tryAcquire('shop', 'a')).toBe(ConnReject.TENANT);
    l.release('shop', 'a');
    l.release('shop', 'a');
    expect(l.tryAcquire('shop', 'a')).toBe(ConnReject.TENANT);
    l.release('shop', 'a');
    expect(l.tryAcquire('shop', 'a')).toBe(ConnReject.OK);
  });
});

describe('AuthFailureTracker', () => {
  const opts = { maxFailures: 3, windowMs: 1000, lockoutMs: 5000 };

  it('locks an address out after maxFailures within the window, and lets it back after lockoutMs', () => {
    const t = new AuthFailureTracker(opts);
    expect(t.recordFailure('a', 0)).toBe(false);
    expect(t.recordFailure('a', 100)).toBe(false);
    expect(t.isLockedOut('a', 100)).toBe(false);
    expect(t.recordFailure('a', 200)).toBe(true);
    expect(t.isLockedOut('a', 200)).toBe(true);
    expect(t.isLockedOut('b', 200)).toBe(false);
    expect(t.isLockedOut('a', 5199)).toBe(true);
    expect(t.isLockedOut('a', 5200)).toBe(false);
    expect(t.failuresOf('a')).toBe(0);
  });

  it('does not lock out failures spread over more than the window', () => {
    const t = new AuthFailureTracker(opts);
    expect(t.recordFailure('a', 0)).toBe(false);
    expect(t.recordFailure('a', 500)).toBe(false);
    expect(t.recordFailure('a', 1000)).toBe(false); // new window
    expect(t.failuresOf('a')).toBe(1);
    expect(t.recordFailure('a', 1500)).toBe(false);
    expect(t.recordFailure('a', 1999)).toBe(true);
  });

  it('does not extend a lock-out with failures during it', () => {
    const t = new AuthFailureTracker(opts);
    for (let i = 0; i < 3; i++) t.recordFailure('a', 0);
    expect(t.recordFailure('a', 4000)).toBe(true);
    expect(t.isLockedOut('a', 5000)).toBe(false);
  });

  it('starts clean after a lock-out expires', () => {
    const t = new AuthFailureTracker(opts);
    for (let i = 0; i < 3; i++) t.recordFailure('a', 0);
    expect(t.recordFailure('a', 6000)).toBe(false);
    expect(t.failuresOf('a')).toBe(1);
  });

  it('forgets failures on success but never lifts a lock-out', () => {
    const t = new AuthFailureTracker(opts);
    t.recordFailure('a', 0);
    t.recordFailure('a', 0);
    t.recordSuccess('a');
    expect(t.failuresOf('a')).toBe(0);
    expect(t.recordFailure('a', 0)).toBe(false);
    t.recordFailure('a', 0);
    t.recordFailure('a', 0);
    t.recordSuccess('a');
    expect(t.isLockedOut('a', 1)).toBe(true);
  });

  it('keeps counting through successes when forgetOnSuccess is off', () => {
    const t = new AuthFailureTracker({ ...opts, forgetOnSuccess: false });
    t.recordFailure('a', 0);
    t.recordFailure('a', 0);
    t.recordSuccess('a');
    expect(t.recordFailure('a', 0)).toBe(true);
  });

  it('remembers at most maxAddresses, forgetting the least recently failed first', () => {
    const t = new AuthFailureTracker({ ...opts, maxAddresses: 3 });
    t.recordFailure('a', 0);
    t.recordFailure('b', 0);
    t.recordFailure('c', 0);
    t.recordFailure('a', 1); // a is now the most recent
    t.recordFailure('d', 2); // evicts b
    expect(t.trackedAddresses).toBe(3);
    expect(t.failuresOf('b')).toBe(0);
    expect(t.failuresOf('a')).toBe(2);
    expect(t.failuresOf('c')).toBe(1);
    expect(t.failuresOf('d')).toBe(1);
    for (let i = 0; i < 10_000; i++) t.recordFailure(`x${i}`, 3);
    expect(t.trackedAddresses).toBe(3);
  });
});

describe('AuthFailureTracker.reconfigure', () => {
  it('applies new thresholds from the next failure and trims to a smaller maxAddresses, oldest first', () => {
    const t = new AuthFailureTracker({ maxFailures: 5, windowMs: 1000, lockoutMs: 5000 });
    t.recordFailure('a', 0);
    t.recordFailure('b', 0);
    t.recordFailure('b', 0);
    t.reconfigure({ maxFailures: 3, windowMs: 1000, lockoutMs: 5000, maxAddresses: 1 });
    expect(t.trackedAddresses).toBe(1);
    expect(t.failuresOf('a')).toBe(0);
    expect(t.recordFailure('b', 1)).toBe(true);
  });
});

describe('AuthFailureTracker attempts counted at their start', () => {
  const opts = { maxFailures: 3, windowMs: 1000, lockoutMs: 5000, forgetOnSuccess: false };

  it('counts running attempts against the limit, so parallel ones cannot all be checked', () => {
    const t = new AuthFailureTracker(opts);
    expect([t.tryBegin('a', 0), t.tryBegin('a', 0), t.tryBegin('a', 0)]).toEqual([
      AttemptStart.BEGUN,
      AttemptStart.BEGUN,
      AttemptStart.BEGUN,
    ]);
    expect(t.tryBegin('a', 0)).toBe(AttemptStart.FULL);
    expect(t.tryBegin('b', 0)).toBe(AttemptStart.BEGUN);
    expect(t.end('a', 10, true)).toBe(false);
    expect(t.end('a', 10, true)).toBe(false);
    expect(t.end('a', 10, true)).toBe(true);
    expect(t.tryBegin('a', 20)).toBe(AttemptStart.LOCKED);
  });

  it('gives back the place of a success or a cancelled attempt, forgetting no failure', () => {
    const t = new AuthFailureTracker(opts);
    expect(t.tryBegin('a', 0)).toBe(AttemptStart.BEGUN);
    expect(t.end('a', 1, true)).toBe(false);
    expect(t.tryBegin('a', 2)).toBe(AttemptStart.BEGUN);
    expect(t.tryBegin('a', 2)).toBe(AttemptStart.BEGUN);
    expect(t.tryBegin('a', 2)).toBe(AttemptStart.FULL);
    t.cancel('a');
    expect(t.end('a', 3, false)).toBe(false);
    expect(t.failuresOf('a')).toBe(1);
    expect(t.tryBegin('a', 4)).toBe(AttemptStart.BEGUN);
    expect(t.tryBegin('a', 4)).toBe(AttemptStart.BEGUN);
    expect(t.tryBegin('a', 4)).toBe(AttemptStart.FULL);
  });

  it('starts a new window for running attempts once the old one has passed', () => {
    const t = new AuthFailureTracker(opts);
    t.recordFailure('a', 0);
    t.recordFailure('a', 0);
    expect(t.tryBegin('a', 1)).toBe(AttemptStart.BEGUN);
    expect(t.tryBegin('a', 1)).toBe(AttemptStart.FULL);
    expect(t.tryBegin('a', 1500)).toBe(AttemptStart.BEGUN);
  });
});

describe('HashGate', () => {
  it('runs at most maxActive at once, queues up to maxQueued in order, and refuses past that', async () => {
    const g = new HashGate(2, 2);
    const order: number[] = [];
    const a = g.enter();
    const b = g.enter();
    const c = g.enter();
    const d = g.enter();
    expect(g.enter()).toBeNull();
    expect([g.running, g.waiting]).toEqual([2, 2]);
    void c?.then(() => order.push(3));
    void d?.then(() => order.push(4));
    await a;
    await b;
    g.leave();
    await c;
    expect(order).toEqual([3]);
    g.leave();
    await d;
    expect(order).toEqual([3, 4]);
    expect(g.peakActive).toBe(2);
    g.leave();
    g.leave();
    expect([g.running, g.waiting]).toEqual([0, 0]);
  });
});
