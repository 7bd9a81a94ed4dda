import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineWatch, type DeadlineMember } from '../../../src/server/request-deadline.js';

class Member implements DeadlineMember {
  requestDeadlineMs: number;
  calls = 0;
  constructor(deadlineMs: number) {
    this.requestDeadlineMs = deadlineMs;
  }
  onRequestDeadline(): void {
    this.calls++;
  }
}

describe('DeadlineWatch', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('tells a member once its deadline has passed, and not before', () => {
    const watch = new DeadlineWatch();
    const early = new Member(performance.now() + 100);
    const late = new Member(performance.now() + 10_000);
    watch.watch(early, 800);
    watch.watch(late, 800);
    vi.advanceTimersByTime(99);
    expect(early.calls).toBe(0);
    vi.advanceTimersByTime(200);
    expect(early.calls).toBeGreaterThan(0);
    expect(late.calls).toBe(0);
    watch.unwatch(early);
    watch.unwatch(late);
  });

  it('keeps no timer while nobody is watched', () => {
    const watch = new DeadlineWatch();
    const a = new Member(performance.now() + 50);
    const b = new Member(performance.now() + 50);
    expect(vi.getTimerCount()).toBe(0);
    watch.watch(a, 1000);
    watch.watch(b, 100); // a finer period replaces the timer, it does not add one
    expect(vi.getTimerCount()).toBe(1);
    watch.unwatch(a);
    expect(vi.getTimerCount()).toBe(1);
    watch.unwatch(b);
    expect(vi.getTimerCount()).toBe(0);
    expect(watch.size).toBe(0);
  });
});
