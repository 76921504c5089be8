import type { Registry } from 'prom-client';

export interface LabelledMetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

/** One line of the exposition, as prom-client's registry formats it. */
export interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * A metric of ours that prom-client's registry scrapes like its own: registered at construction, one
 * series per set of label values, looked up once by `labels()` so that observing needs no label hashing.
 */
export abstract class LabelledMetric<L extends string, S extends { observe(value: number): void }> {
  abstract readonly type: string;
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, S>();

  constructor(private readonly metric: LabelledMetricOptions<L>) {
    for (const registry of metric.registers) registry.registerMetric(this as never);
  }

  get name(): string {
    return this.metric.name;
  }

  get help(): string {
    return this.metric.help;
  }

  /** The series of these label values, to observe into without looking it up each time. */
  labels(...values: string[]): { observe(value: number): void } {
    const key = values.join('\u0000');
    let series = this.series.get(key);
    if (!series) {
      series = this.newSeries(Object.fromEntries(this.metric.labelNames.map((name, i) => [name, values[i] ?? ''])));
      this.series.set(key, series);
    }
    return series;
  }

  /** What prom-client's registry formats. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const series of this.series.values()) this.expose(series, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }

  protected abstract newSeries(labels: Record<string, string>): S;

  /** Appends the lines of one series. */
  protected abstract expose(series: S, values: MetricValue[]): void;
}
