/**
 * A latency histogram with about 1% resolution from 10 µs to 100 s, cheap to record into and to merge
 * across worker processes (the counts travel as a sparse list over IPC).
 */
const MIN_MS = 0.01;
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(100_000 / MIN_MS) / LOG_GROWTH) + 1;

export interface HistogramData {
  /** [bucket, count] pairs of the non-empty buckets. */
  buckets: [number, number][];
  count: number;
  max: number;
  sum: number;
}

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;
  sum = 0;

  record(ms: number): void {
    const v = ms < MIN_MS ? MIN_MS : ms;
    let bucket = Math.floor(Math.log(v / MIN_MS) / LOG_GROWTH);
    if (bucket >= BUCKETS) bucket = BUCKETS - 1;
    this.counts[bucket]++;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }

  toData(): HistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) buckets.push([i, this.counts[i]]);
    return { buckets, count: this.count, max: this.max, sum: this.sum };
  }

  add(data: HistogramData): void {
    for (const [bucket, count] of data.buckets) this.counts[bucket] += count;
    this.count += data.count;
    this.sum += data.sum;
    if (data.max > this.max) this.max = data.max;
  }

  /** The latency below which `q` (0..1) of the samples fall, in ms (the bucket's upper bound). */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(MIN_MS * Math.pow(GROWTH, i + 1), this.max);
    }
    return this.max;
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }
}
