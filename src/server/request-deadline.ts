/**
 * The request deadline (`limits.requestTimeoutMs`): from the first byte of a
 * request until it is whole (text line + data block, binary header + body).
 * A client that trickles a request (one byte a second never trips an
 * inactivity timer) is cut off once the deadline passes.
 *
 * No timer is armed per request. A session joins this watch only when a chunk
 * ends in the middle of a request, and leaves it when a later chunk completes
 * it; a request that arrives whole in one chunk never joins. One coarse
 * interval for the whole process checks the members:
 *
 *   chunk ends mid-request ──▶ watch(session)       tick (every periodMs):
 *   chunk ends on a boundary ─▶ unwatch(session)      deadline passed ─▶ session.onRequestDeadline()
 *
 * The cut-off is late by at most one period (timeoutMs / 8, within 5..250 ms).
 */

/** What the watch needs from a session. */
export interface DeadlineMember {
  /** monotonic ms by which the request in progress must be whole */
  readonly requestDeadlineMs: number;
  /** the deadline has passed (the member decides what that means, e.g. not while it is not reading) */
  onRequestDeadline(): void;
}

const MIN_PERIOD_MS = 5;
const MAX_PERIOD_MS = 250;

export class DeadlineWatch {
  private readonly members: Set<DeadlineMember>;
  private timer: NodeJS.Timeout | null;
  private periodMs: number;
  private readonly tickBound: () => void;

  constructor() {
    this.members = new Set();
    this.timer = null;
    this.periodMs = 0;
    this.tickBound = () => this.tick();
  }

  get size(): number {
    return this.members.size;
  }

  /** Checks `m` on every tick until unwatch(m); `timeoutMs` sets how coarse the ticks may be. */
  watch(m: DeadlineMember, timeoutMs: number): void {
    this.members.add(m);
    const period = Math.max(MIN_PERIOD_MS, Math.min(MAX_PERIOD_MS, Math.floor(timeoutMs / 8)));
    if (this.timer !== null && period >= this.periodMs) return;
    if (this.timer !== null) clearInterval(this.timer);
    this.periodMs = period;
    this.timer = setInterval(this.tickBound, period);
    this.timer.unref();
  }

  unwatch(m: DeadlineMember): void {
    if (!this.members.delete(m) || this.members.size > 0 || this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
    this.periodMs = 0;
  }

  private tick(): void {
    const nowMs = performance.now();
    // NOTE: a member may unwatch itself (or another) from its callback; a Set allows deletes while iterating.
    for (const m of this.members) {
      if (m.requestDeadlineMs <= nowMs) m.onRequestDeadline();
    }
  }
}

/** The one watch every client session of the process shares. */
export const requestDeadlines = new DeadlineWatch();
