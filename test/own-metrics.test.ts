import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { SlidingSummary } from '../src/metrics/sliding-summary';
import { BucketHistogram } from '../src/metrics/bucket-histogram';
import { collectProcessMetrics, EVENT_LOOP_SAMPLE_MS } from '../src/metrics/process-metrics';
import { withNode, post, metric, EVAL, waitFor, sleep } from './support/helpers';
import { LineClient } from './support/line-client';

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

test("the event loop's delay is how late its sampling timer ran, without the period; a held loop shows, and each scrape starts afresh", async () => {
  const registry = new Registry();
  collectProcessMetrics(registry);
  const scrape = async () => {
    const text = await registry.metrics();
    const value = (name: string) => {
      const found = new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text);
      assert.ok(found, `nodejs_eventloop_lag_${name}_seconds missing`);
      return Number(found[1]);
    };
    return { text, min: value('min'), max: value('max'), p99: value('p99') };
  };
  await sleep(EVENT_LOOP_SAMPLE_MS * 12);
  const idle = await scrape();
  // prom-client's own figures include the period: its fastest sample read 10 ms at least.
  assert.ok(idle.min < 0.005, `an idle loop's fastest sample was ${idle.min} s late`);
  assert.match(idle.text, /^nodejs_eventloop_lag_seconds /m);
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_stddev_seconds']) {
    assert.match(idle.text, new RegExp(`^${name} `, 'm'), `${name} missing`);
  }

  const heldFrom = Date.now();
  while (Date.now() - heldFrom < 400);
  await sleep(EVENT_LOOP_SAMPLE_MS * 3);
  const held = await scrape();
  assert.ok(held.max >= 0.25 && held.p99 >= 0.25, `after a 400 ms hold: max ${held.max}, p99 ${held.p99}`);

  await sleep(EVENT_LOOP_SAMPLE_MS * 12);
  const after = await scrape();
  assert.ok(after.max < 0.25, `the hold was still counted a scrape later: ${after.max}`);
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

/**
 * A socket entry whose protocol_encode spends SLOW_ENCODE_S of wall time on each delivery, and which
 * subscribes every connection to "slow" and greets it with its client_id.
 */
const SLOW_ENCODE_S = 0.05;
const SLOW_ENTRY = `
function on_connect(client_id)
  local conn = mix.socket.tcp()
  conn:subscribe("slow")
  conn:send(client_id .. "\\n")
end
function on_close() end
function protocol_input(buf) return 0 end
function protocol_decode(str) return str end
function protocol_encode(str)
  local started = os.clock()
  while os.clock() - started < ${SLOW_ENCODE_S} do end
  return str .. "\\n"
end
function on_message() end
`;

test('publish and send durations cover the local delivery: a slow protocol_encode shows in the histograms of /metrics', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL, 'lua/slow.lua': SLOW_ENTRY }, socketEntry: 'lua/slow.lua' }, async (node) => {
    const client = new LineClient(node.socketPort);
    const clientId = await client.line(20_000);
    assert.match(clientId, /^\d+$/);
    await waitFor('the client is subscribed', async () => (await post(`${node.apiUrl}/v1/mesh/count`, { c: 'slow' })).json.r?.n === 1, 20_000);

    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'slow', d: 'p' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal(await client.line(20_000), 'p');
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/send`, { c: clientId, d: 's' })).json, { E: null, r: { s: true } });
    assert.equal(await client.line(20_000), 's');

    // The encode ran inside the publish and the send, so each recorded at least its time (the broker
    // answers at once on one node: a clock started after it would record about nothing).
    for (const op of ['publish', 'send']) {
      assert.equal(await metric(node.apiUrl, new RegExp(`^connmix_broker_duration_seconds_count\\{op="${op}"`)), 1, op);
      const sum = await metric(node.apiUrl, new RegExp(`^connmix_broker_duration_seconds_sum\\{op="${op}"`));
      assert.ok(sum >= SLOW_ENCODE_S, `${op}: broker_duration_seconds_sum ${sum} < ${SLOW_ENCODE_S}`);
    }
    assert.equal(await metric(node.apiUrl, /^connmix_engine_servers_send_duration_seconds_count\{protocol="websocket",scenario="local"/), 2);
    const sent = await metric(node.apiUrl, /^connmix_engine_servers_send_duration_seconds_sum\{protocol="websocket",scenario="local"/);
    assert.ok(sent >= 2 * SLOW_ENCODE_S, `send_duration_seconds_sum ${sent} < ${2 * SLOW_ENCODE_S}`);
    client.socket.destroy();
  });
});
