import { describe, expect, it } from 'vitest';
import {
  Histogram,
  MAX_TRACKABLE_NS,
  bucketIndex,
  bucketLowerBound,
  bucketUpperBound,
} from '../../../bench/load/histogram.js';

/** The exact p-th percentile of `sorted` (nearest rank), for comparison. */
function nearestRank(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

describe('Histogram', () => {
  it('is exact below 128 ns', () => {
    const h = new Histogram();
    for (let v = 1; v <= 100; v++) h.record(v);
    expect(h.count).toBe(100);
    expect(h.percentile(50)).toBe(50);
    expect(h.percentile(99)).toBe(99);
    expect(h.percentile(99.9)).toBe(100);
    expect(h.percentile(100)).toBe(100);
    expect(h.min).toBe(1);
    expect(h.max).toBe(100);
    expect(h.mean()).toBe(50.5);
  });

  it('reports p50/p99/p99.9 of 1..10,000 µs within 1/64, never below the true value', () => {
    const h = new Histogram();
    const values: number[] = [];
    for (let us = 1; us <= 10_000; us++) values.push(us * 1000);
    // record in a scrambled order: the result must not depend on it
    for (let i = 0; i < values.length; i++) h.record(values[(i * 7919) % values.length] ?? 0);
    for (const p of [50, 90, 99, 99.9]) {
      const exact = nearestRank(values, p);
      const got = h.percentile(p);
      expect(got).toBeGreaterThanOrEqual(exact);
      expect((got - exact) / exact).toBeLessThanOrEqual(1 / 64);
    }
    expect(h.percentile(100)).toBe(10_000_000);
  });

  it('keeps a skewed distribution apart: 99 % fast, 1 % slow', () => {
    const h = new Histogram();
    for (let i = 0; i < 9900; i++) h.record(100_000); // 100 µs
    for (let i = 0; i < 100; i++) h.record(50_000_000); // 50 ms
    expect(h.percentile(50)).toBeGreaterThanOrEqual(100_000);
    expect(h.percentile(50)).toBeLessThan(100_000 * (1 + 1 / 64));
    expect(h.percentile(99)).toBeLessThan(100_000 * (1 + 1 / 64));
    expect(h.percentile(99.9)).toBe(50_000_000);
  });

  it('returns 0 for every percentile when empty', () => {
    const h = new Histogram();
    expect(h.percentile(50)).toBe(0);
    expect(h.percentile(99.9)).toBe(0);
    expect(h.mean()).toBe(0);
  });

  it('merges to the same counts as recording everything in one histogram', () => {
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 0; i < 5000; i++) {
      const v = (i * 104_729) % 3_000_000;
      (i % 3 === 0 ? a : b).record(v);
      all.record(v);
    }
    a.merge(b);
    expect(a.count).toBe(all.count);
    expect(a.min).toBe(all.min);
    expect(a.max).toBe(all.max);
    expect(a.sum).toBe(all.sum);
    expect([...a.counts]).toEqual([...all.counts]);
    for (const p of [50, 99, 99.9]) expect(a.percentile(p)).toBe(all.percentile(p));
  });

  it('clamps values past the trackable range into the last bucket and reports the recorded max', () => {
    const h = new Histogram();
    h.record(MAX_TRACKABLE_NS * 4);
    h.record(-5);
    expect(h.count).toBe(2);
    expect(h.percentile(100)).toBe(MAX_TRACKABLE_NS * 4);
    expect(h.percentile(50)).toBe(0);
  });

  it('forgets everything on reset', () => {
    const h = new Histogram();
    h.record(1234);
    h.reset();
    expect(h.count).toBe(0);
    expect(h.percentile(99)).toBe(0);
    expect(h.counts.every((c) => c === 0)).toBe(true);
  });
});

describe('bucket layout', () => {
  it('puts every value in a bucket whose bounds hold it and whose width is at most 1/64 of it', () => {
    const values: number[] = [];
    for (let v = 0; v < 5000; v++) values.push(v);
    for (let e = 12; e <= 41; e++) {
      const base = 2 ** e;
      values.push(base - 1, base, base + 1, Math.floor(base * 1.37), 2 * base - 1);
    }
    for (const v of values.filter((x) => x <= MAX_TRACKABLE_NS)) {
      const i = bucketIndex(v);
      const lo = bucketLowerBound(i);
      const hi = bucketUpperBound(i);
      expect(lo <= v && v <= hi, `value ${v}: bucket ${i} = [${lo}, ${hi}]`).toBe(true);
      expect(hi - lo + 1).toBeLessThanOrEqual(Math.max(1, lo / 64));
    }
  });

  it('numbers buckets without gaps: each starts one past the previous one', () => {
    const last = bucketIndex(MAX_TRACKABLE_NS);
    for (let i = 1; i <= last; i++) expect(bucketLowerBound(i)).toBe(bucketUpperBound(i - 1) + 1);
    expect(bucketUpperBound(last)).toBe(MAX_TRACKABLE_NS);
  });
});
