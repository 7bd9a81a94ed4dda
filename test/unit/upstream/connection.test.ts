import { describe, expect, it } from 'vitest';
import { Backoff, speaksMeta } from '../../../src/upstream/connection.js';

describe('speaksMeta', () => {
  it('is true for memcached 1.6 and later', () => {
    for (const v of ['VERSION 1.6.0', 'VERSION 1.6.18', 'VERSION 1.6.39-beta', 'VERSION 1.10.1', 'VERSION 2.0.0']) {
      expect(speaksMeta(v), v).toBe(true);
    }
  });

  it('is false for older servers and for anything it cannot read', () => {
    for (const v of ['VERSION 1.5.22', 'VERSION 1.4.39', 'VERSION 0.9', 'VERSION abc', 'ERROR', '', 'VERSION1.6.0']) {
      expect(speaksMeta(v), v).toBe(false);
    }
  });
});

describe('Backoff', () => {
  it('doubles its ceiling from min up to max', () => {
    const top = new Backoff(50, 2000, () => 0.999999);
    expect(Array.from({ length: 8 }, () => top.next())).toEqual(
      [49, 99, 199, 399, 799, 1599, 1999, 1999].map((n) => Math.max(50, n)),
    );
  });

  it('jitters each delay within [ceiling/2, ceiling], never below min', () => {
    const low = new Backoff(50, 2000, () => 0);
    expect(Array.from({ length: 8 }, () => low.next())).toEqual([50, 50, 100, 200, 400, 800, 1000, 1000]);
    const any = new Backoff(50, 2000);
    for (let i = 0; i < 1000; i++) {
      const d = any.next();
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });

  it('starts again from the minimum after reset', () => {
    const b = new Backoff(10, 1000, () => 0.5);
    b.next();
    b.next();
    b.next();
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(10);
  });

  it('survives many attempts without overflowing', () => {
    const b = new Backoff(50, 2000, () => 0.5);
    for (let i = 0; i < 5000; i++) expect(b.next()).toBeLessThanOrEqual(2000);
  });

  it('treats a max below min as min', () => {
    expect(new Backoff(100, 10, () => 0).next()).toBe(100);
  });
});
