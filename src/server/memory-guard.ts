/**
 * A global memory watermark: while the process's resident memory is above it,
 * sessions stop reading new requests (replies owed still flow, which is what
 * frees memory); reading resumes when it falls below 90 % of the mark.
 * Sampled on a timer, never on the hot path.
 */
import type { Logger } from 'pino';

const SAMPLE_MS = 250;

export interface MemoryRelief {
  onMemoryRelief(): void;
}

export class MemoryGuard {
  private watermarkBytes: number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private readonly waiting = new Set<MemoryRelief>();
  /** true while above the watermark */
  overloaded = false;
  /** how often the watermark was crossed, for metrics */
  crossings = 0;

  constructor(watermarkBytes: number, log: Logger) {
    this.watermarkBytes = watermarkBytes;
    this.log = log;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.release();
  }

  reconfigure(watermarkBytes: number): void {
    this.watermarkBytes = watermarkBytes;
    if (watermarkBytes === 0) this.release();
  }

  /** Called by a session that paused because of the watermark. */
  wait(s: MemoryRelief): void {
    this.waiting.add(s);
  }

  forget(s: MemoryRelief): void {
    this.waiting.delete(s);
  }

  private sample(): void {
    if (this.watermarkBytes === 0) return;
    const rss = process.memoryUsage.rss();
    if (!this.overloaded && rss > this.watermarkBytes) {
      this.overloaded = true;
      this.crossings++;
      this.log.warn({ rss, watermark: this.watermarkBytes }, 'memory above the watermark: reading paused');
    } else if (this.overloaded && rss < this.watermarkBytes * 0.9) {
      this.log.warn({ rss, watermark: this.watermarkBytes }, 'memory below the watermark again: reading resumed');
      this.release();
    }
  }

  private release(): void {
    this.overloaded = false;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const s of waiting) s.onMemoryRelief();
  }
}
