/**
 * A fixed-bucket log-linear latency histogram (the HdrHistogram layout, cut down).
 *
 *   value (ns)        bucket index                      width of a bucket
 *   0 .. 127          index = value (exact)             1 ns
 *   128 .. 255        128 + (value >> 1) - 64           2 ns
 *   256 .. 511        192 + (value >> 2) - 64           4 ns
 *   2^e .. 2^(e+1)-1  (e - 5) * 64 + (value >> (e - 6)) 2^(e - 6) ns
 *
 * Every power-of-two range past 128 is cut into 64 equal buckets, so a bucket is
 * never wider than 1/64 (1.6 %) of the values it holds. Values above MAX_TRACKABLE_NS
 * (about 18 minutes) land in the last bucket. record() is a few integer operations
 * and one array increment; no allocation, so it can sit on the load generator's hot path.
 *
 * percentile(p) returns the highest value the bucket holding the p-th ranked sample
 * could contain (clamped to the largest value recorded), as HdrHistogram does: it never
 * under-reports a latency.
 */

/** log2 of the number of buckets per power-of-two range */
const SUB_BUCKET_BITS = 6;
const SUB_BUCKET_COUNT = 1 << SUB_BUCKET_BITS; // 64
/** values below this are exact: one bucket per nanosecond */
const LINEAR_LIMIT = SUB_BUCKET_COUNT * 2; // 128
/** the highest power of two tracked: 2^40 ns ≈ 1,100 s */
const MAX_EXPONENT = 40;
export const MAX_TRACKABLE_NS = 2 ** (MAX_EXPONENT + 1) - 1;
const BUCKET_COUNT = (MAX_EXPONENT - SUB_BUCKET_BITS + 1) * SUB_BUCKET_COUNT + SUB_BUCKET_COUNT;
const TWO_POW_32 = 2 ** 32;

/** Position of the highest set bit of a non-negative integer below 2^53. */
function highestBit(value: number): number {
  if (value < TWO_POW_32) return 31 - Math.clz32(value);
  return 63 - Math.clz32(Math.floor(value / TWO_POW_32));
}

/** The bucket a value (ns, integer ≥ 0) falls into. */
export function bucketIndex(value: number): number {
  if (value < LINEAR_LIMIT) return value < 0 ? 0 : Math.floor(value);
  const v = value > MAX_TRACKABLE_NS ? MAX_TRACKABLE_NS : Math.floor(value);
  const group = highestBit(v) - SUB_BUCKET_BITS; // ≥ 1
  // Division, not >>: values past 2^31 do not survive a 32-bit shift.
  const sub = Math.floor(v / 2 ** group); // 64 .. 127
  return group * SUB_BUCKET_COUNT + sub;
}

/** The highest value bucket `index` holds. */
export function bucketUpperBound(index: number): number {
  if (index < LINEAR_LIMIT) return index;
  const group = Math.floor(index / SUB_BUCKET_COUNT) - 1;
  const sub = index - group * SUB_BUCKET_COUNT;
  return (sub + 1) * 2 ** group - 1;
}

/** The lowest value bucket `index` holds. */
export function bucketLowerBound(index: number): number {
  if (index < LINEAR_LIMIT) return index;
  const group = Math.floor(index / SUB_BUCKET_COUNT) - 1;
  const sub = index - group * SUB_BUCKET_COUNT;
  return sub * 2 ** group;
}

/** Counts of nanosecond latencies in fixed log-linear buckets. */
export class Histogram {
  /** Float64: counts stay exact far past 2^32 */
  readonly counts: Float64Array;
  count: number;
  min: number;
  max: number;
  sum: number;

  constructor() {
    this.counts = new Float64Array(BUCKET_COUNT);
    this.count = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = 0;
    this.sum = 0;
  }

  /** Record one latency in nanoseconds (negative values count as 0). */
  record(ns: number): void {
    const v = ns < 0 ? 0 : ns;
    const i = bucketIndex(v);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /**
   * The latency (ns) at or below which `p` percent of the samples lie, 0 < p ≤ 100.
   * 0 when nothing was recorded.
   */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const clamped = p <= 0 ? 0 : p >= 100 ? 100 : p;
    const rank = Math.max(1, Math.ceil((clamped / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen < rank) continue;
      // the last bucket also holds every value past MAX_TRACKABLE_NS: its bound means nothing
      const upper = i === this.counts.length - 1 ? this.max : bucketUpperBound(i);
      return Math.max(this.min, Math.min(upper, this.max));
    }
    return this.max;
  }

  /** The mean latency (ns); 0 when nothing was recorded. */
  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Add every sample of `other` to this histogram. */
  merge(other: Histogram): this {
    for (let i = 0; i < this.counts.length; i++) {
      const n = other.counts[i] ?? 0;
      if (n !== 0) this.counts[i] = (this.counts[i] ?? 0) + n;
    }
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
    return this;
  }

  /** Forget every sample (the buckets are kept). */
  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.max = 0;
    this.sum = 0;
  }
}
