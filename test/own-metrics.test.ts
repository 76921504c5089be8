import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { SlidingSummary } from '../src/metrics/sliding-summary';
import { BucketHistogram } from '../src/metrics/bucket-histogram';

function summary(registry: Registry, maxAgeSeconds = 600, sampleSize = 500) {
  return new SlidingSummary({
    name: 'test_duration_seconds',
    help: 'Test durations.',
    labelNames: ['scenario'],
    percentiles: [0, 0.25, 0.5, 0.75, 1],
    maxAgeSeconds,
    ageBuckets: 2,
    sampleSize,
    registers: [registry],
  });
}

test('a sliding summary reports quantiles, an exact sum and count, in the Prometheus text format', async () => {
  const registry = new Registry();
  registry.setDefaultLabels({ node: 'n1' });
  const durations = summary(registry);
  const local = durations.labels('local');
  for (let i = 1; i <= 100; i++) local.observe(i / 1000);
  durations.labels('forward').observe(0.5);
  const text = await registry.metrics();
  assert.match(text, /^# TYPE test_duration_seconds summary$/m);
  assert.match(text, /^test_duration_seconds\{quantile="0",scenario="local",node="n1"\} 0\.001$/m);
  assert.match(text, /^test_duration_seconds\{quantile="0\.5",scenario="local",node="n1"\} 0\.051$/m);
  assert.match(text, /^test_duration_seconds\{quantile="1",scenario="local",node="n1"\} 0\.1$/m);
  assert.match(text, /^test_duration_seconds_count\{scenario="local",node="n1"\} 100$/m);
  assert.match(text, /^test_duration_seconds_sum\{scenario="local",node="n1"\} 5\.05/m);
  assert.match(text, /^test_duration_seconds\{quantile="0\.75",scenario="forward",node="n1"\} 0\.5$/m);
});

test('past sampleSize the quantiles come from a uniform sample; min and max stay exact', async () => {
  const registry = new Registry();
  const durations = summary(registry, 600, 200).labels('local');
  for (let i = 0; i < 100_000; i++) durations.observe(i);
  const text = await registry.metrics();
  const quantile = (q: string) => Number(new RegExp(`quantile="${q}",scenario="local"\\} (\\S+)`).exec(text)?.[1]);
  assert.equal(quantile('0'), 0);
  assert.equal(quantile('1'), 99_999);
  // 200 uniform samples of 0..99,999: the median is within 20% of 50,000 with overwhelming probability.
  assert.ok(Math.abs(quantile('0.5') - 50_000) < 20_000, `median ${quantile('0.5')}`);
  assert.match(text, /test_duration_seconds_count\{scenario="local"\} 100000/);
});

test('observations older than maxAge leave the quantiles; sum and count keep them', async () => {
  const registry = new Registry();
  const durations = summary(registry, 0.1).labels('local');
  durations.observe(0.25);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const text = await registry.metrics();
  assert.match(text, /quantile="0\.5",scenario="local"\} Nan$/m); // prom-client writes NaN as "Nan"
  assert.match(text, /test_duration_seconds_count\{scenario="local"\} 1/);
  assert.match(text, /test_duration_seconds_sum\{scenario="local"\} 0\.25/);
});

test('a bucket histogram reports cumulative buckets, +Inf, sum and count, in the Prometheus text format', async () => {
  const registry = new Registry();
  registry.setDefaultLabels({ node: 'n1' });
  const histogram = new BucketHistogram({ name: 'test_hook_seconds', help: 'Hooks.', labelNames: ['hook'], buckets: [0.001, 0.01, 0.1], registers: [registry] });
  const hook = histogram.labels('on_message');
  for (const seconds of [0.0005, 0.001, 0.002, 0.05, 0.05, 3]) hook.observe(seconds);
  const text = await registry.metrics();
  assert.match(text, /^# TYPE test_hook_seconds histogram$/m);
  for (const [le, count] of [['0.001', 2], ['0.01', 3], ['0.1', 5], ['\\+Inf', 6]] as const) {
    assert.match(text, new RegExp(`^test_hook_seconds_bucket\\{le="${le}",hook="on_message",node="n1"\\} ${count}$`, 'm'));
  }
  assert.match(text, /^test_hook_seconds_sum\{hook="on_message",node="n1"\} 3\.1035$/m);
  assert.match(text, /^test_hook_seconds_count\{hook="on_message",node="n1"\} 6$/m);
});
