import { LabelledMetric, type LabelledMetricOptions, type MetricValue } from './labelled-metric';

export interface SlidingSummaryOptions<L extends string> extends LabelledMetricOptions<L> {
  /** Quantiles to report, each in [0, 1]; 0 and 1 are the exact minimum and maximum. */
  percentiles: number[];
  /** Seconds an observation counts towards the quantiles (CONNMIX's `prometheus.summary.maxAge`). */
  maxAgeSeconds: number;
  /** The window moves in this many steps (`prometheus.summary.ageBuckets`). */
  ageBuckets: number;
  /** Observations kept per step for the quantiles, a uniform sample past it (`prometheus.summary.bufCap`). */
  sampleSize: number;
}

/** The observations of one step of the window. */
interface AgeBucket {
  samples: Float64Array;
  /** Observations seen in this step (samples holds min(seen, sampleSize) of them). */
  seen: number;
  min: number;
  max: number;
}

/** One labelled series: exact count and sum since start, and the window's buckets. */
class Series {
  count = 0;
  sum = 0;
  private readonly buckets: AgeBucket[];
  private current = 0;
  private rotatesAt: number;

  constructor(
    readonly labels: Record<string, string>,
    private readonly options: SlidingSummaryOptions<string>,
  ) {
    this.buckets = Array.from({ length: options.ageBuckets }, () => emptyBucket(options.sampleSize));
    this.rotatesAt = Date.now() + this.stepMs;
  }

  private get stepMs(): number {
    return (this.options.maxAgeSeconds * 1000) / this.options.ageBuckets;
  }

  observe(value: number): void {
    this.count++;
    this.sum += value;
    this.rotate(Date.now());
    const bucket = this.buckets[this.current];
    const seen = bucket.seen++;
    if (seen < bucket.samples.length) bucket.samples[seen] = value;
    else {
      // Reservoir sampling: every observation of the step is equally likely to be kept.
      const slot = Math.floor(Math.random() * (seen + 1));
      if (slot < bucket.samples.length) bucket.samples[slot] = value;
    }
    if (value < bucket.min) bucket.min = value;
    if (value > bucket.max) bucket.max = value;
  }

  /** The reported quantiles of the last maxAge seconds (NaN when nothing was observed in it). */
  quantiles(percentiles: number[]): number[] {
    this.rotate(Date.now());
    const kept: number[] = [];
    let min = Infinity;
    let max = -Infinity;
    for (const bucket of this.buckets) {
      for (let i = 0; i < Math.min(bucket.seen, bucket.samples.length); i++) kept.push(bucket.samples[i]);
      min = Math.min(min, bucket.min);
      max = Math.max(max, bucket.max);
    }
    if (kept.length === 0) return percentiles.map(() => NaN);
    kept.sort((a, b) => a - b);
    return percentiles.map((q) => (q <= 0 ? min : q >= 1 ? max : kept[Math.min(kept.length - 1, Math.floor(q * kept.length))]));
  }

  /** Starts a fresh bucket for every step that passed since the last look (the oldest one is dropped). */
  private rotate(now: number): void {
    for (let steps = 0; now >= this.rotatesAt && steps < this.buckets.length; steps++) {
      this.current = (this.current + 1) % this.buckets.length;
      this.buckets[this.current] = emptyBucket(this.options.sampleSize);
      this.rotatesAt += this.stepMs;
    }
    if (now >= this.rotatesAt) this.rotatesAt = now + this.stepMs;
  }
}

function emptyBucket(sampleSize: number): AgeBucket {
  return { samples: new Float64Array(sampleSize), seen: 0, min: Infinity, max: -Infinity };
}

/**
 * A Prometheus summary over a sliding window (CONNMIX's send_duration_seconds), cheap enough for every
 * API request: an observation is a few arithmetic operations and one array write into a bounded sample,
 * as Go's client buffers up to BufCap, and the quantiles are computed only when /metrics is scraped.
 * (prom-client's Summary pushes each observation into one t-digest per age bucket: ~10% of the time of a
 * /ws/v1 publish.) `_sum` and `_count` are exact.
 */
export class SlidingSummary<L extends string> extends LabelledMetric<L, Series> {
  readonly type = 'summary';

  constructor(private readonly options: SlidingSummaryOptions<L>) {
    super(options);
  }

  protected newSeries(labels: Record<string, string>): Series {
    return new Series(labels, this.options);
  }

  protected expose(series: Series, values: MetricValue[]): void {
    const quantiles = series.quantiles(this.options.percentiles);
    this.options.percentiles.forEach((quantile, i) => values.push({ labels: { quantile, ...series.labels }, value: quantiles[i] }));
    values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum });
    values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count });
  }
}
