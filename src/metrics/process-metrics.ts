import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

/** How often the event loop's delay is sampled (ms): ten wake-ups a second on an idle node. */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** A sampling period prom-client's own collector never reaches (about 24 days), so that it stays asleep. */
const DORMANT_MS = 2 ** 31 - 1;

/** The delay statistics read from the histogram, each as `nodejs_eventloop_lag_<name>_seconds`. */
const DELAYS: Array<[string, (histogram: RecordableHistogram) => number]> = [
  ['min', (histogram) => histogram.min],
  ['max', (histogram) => histogram.max],
  ['mean', (histogram) => histogram.mean],
  ['p50', (histogram) => histogram.percentile(50)],
  ['p90', (histogram) => histogram.percentile(90)],
  ['p99', (histogram) => histogram.percentile(99)],
];

const LAG = 'nodejs_eventloop_lag_seconds';
const STDDEV = 'nodejs_eventloop_lag_stddev_seconds';

/**
 * Node's default process metrics (prom-client's), with the event loop's delay measured here under
 * prom-client's names. prom-client samples it every 10 ms, 100 wake-ups a second that were most of an
 * idle node's CPU (bench/notes.md), and each figure includes that period (prometheus/client_js#370): an
 * idle loop read 10 ms. Its collector cannot be left out of the defaults, so it gets a period it never
 * reaches and its gauges are replaced: a timer every EVENT_LOOP_SAMPLE_MS records how late it ran (0 for
 * a loop never held up), and the figures cover the time since the previous scrape.
 * `nodejs_eventloop_lag_seconds` means what it meant: how long the previous scrape's setImmediate waited.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: DORMANT_MS });
  for (const name of [LAG, STDDEV, ...DELAYS.map(([stat]) => delayName(stat))]) registry.removeSingleMetric(name);

  // A timer of our own, not monitorEventLoopDelay: that one's reset() also drops the sample after it,
  // so a stall just after a scrape went unseen.
  const histogram = createHistogram();
  let ranAt = process.hrtime.bigint();
  setInterval(() => {
    const now = process.hrtime.bigint();
    histogram.record(Math.max(1, Number(now - ranAt) - EVENT_LOOP_SAMPLE_MS * 1e6));
    ranAt = now;
  }, EVENT_LOOP_SAMPLE_MS).unref();
  const registers = [registry];
  let lastLag = 0;
  // Registered first: prom-client reads the metrics in order, and this one's collect sets the others.
  new Gauge({
    name: LAG,
    help: 'How long a setImmediate waited at the previous scrape (seconds).',
    registers,
    collect(this: Gauge) {
      this.set(lastLag);
      const start = process.hrtime.bigint();
      setImmediate(() => (lastLag = Number(process.hrtime.bigint() - start) / 1e9));
      const sampled = histogram.count > 0;
      for (const { read, gauge } of delays) gauge.set(sampled ? read(histogram) / 1e9 : 0);
      stddev.set(sampled ? histogram.stddev / 1e9 : 0);
      histogram.reset();
    },
  });
  const delays = DELAYS.map(([stat, read]) => ({
    read,
    gauge: new Gauge({ name: delayName(stat), help: `The event loop delay's ${stat} since the last scrape (seconds).`, registers }),
  }));
  const stddev = new Gauge({ name: STDDEV, help: 'The standard deviation of the event loop delay since the last scrape (seconds).', registers });
}

function delayName(stat: string): string {
  return `nodejs_eventloop_lag_${stat}_seconds`;
}
