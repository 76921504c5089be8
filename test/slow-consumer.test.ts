import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as net from 'node:net';
import { WebSocket } from 'ws';
import { post, metric, withNode, TestClient, EVAL, type TestNode, sleep, waitFor } from './support/helpers';
import { ApiClient } from './support/api-client';
import { viewer } from './support/mesh';
import { assertHealthy, startListening, stopEngine, residentBytes, seedEngineFolder, peakWhile, mib } from './support/engine-process';

// Slow consumers: a subscriber that stops reading is dropped past maxBufferedBytes or writeTimeout; a
// viewer that never reads while its channel is flooded, and a /ws/v1 backend that never reads its
// answers, against an engine in a process of its own (so that its memory is its own) running the shipped
// script with the default buffer limits.

const MESSAGES = 3000;
const MESSAGE_BYTES = 64 * 1024;

test('a viewer that never reads while its channel is flooded: node memory stays bounded, other viewers get every message, in order', async (t) => {
  const { file, wsUrl, apiUrl } = await seedEngineFolder();
  const engine = await startListening(file);
  try {
    const fast = [await viewer(wsUrl, 1), await viewer(wsUrl, 1)];
    const slow = await viewer(wsUrl, 1);
    (slow.ws as unknown as { _socket: net.Socket })._socket.pause();
    const pid = engine.child.pid as number;
    // Each fast viewer checks the order and records how long each comment took, keeping no payload.
    const seen = fast.map((client) => {
      const record = { next: 0, outOfOrder: 0, latencies: [] as number[] };
      client.ws.on('message', () => {
        for (const { data } of client.received.splice(0)) {
          const [seq, sent] = data.slice(0, 40).split(' ', 2).map(Number);
          if (seq !== record.next) record.outOfOrder++;
          record.next = seq + 1;
          record.latencies.push(Date.now() - sent);
        }
      });
      return record;
    });
    const before = residentBytes(pid);
    let most = before;
    const padding = 'x'.repeat(MESSAGE_BYTES);
    for (let i = 0; i < MESSAGES; i++) {
      await post(`${apiUrl}/v1/mesh/publish`, { c: 'video:1', d: `${i} ${Date.now()} ${padding}` });
      if (i % 20 === 0) most = Math.max(most, residentBytes(pid));
    }
    await waitFor('every comment reached the fast viewers', () => seen.every((record) => record.next === MESSAGES));
    const latencies = seen.flatMap((record) => record.latencies).sort((x, y) => x - y);
    const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
    t.diagnostic(`resident memory ${mib(before)} -> at most ${mib(most)}; fast viewers' latency p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms, max ${percentile(1)} ms`);
    for (const record of seen) assert.deepEqual([record.latencies.length, record.outOfOrder], [MESSAGES, 0]);
    // The flood addressed ~190 MiB to the viewer that never reads; buffering it would show here.
    assert.ok(most - before < 96 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    // Skipped for most of the flood while it stayed; on a busy machine the flood outlasts writeTimeout
    // (10 s) and the viewer is dropped for it instead: either way the node let it go.
    const skipped = await metric(apiUrl, /^connmix_drops_total\{reason="slow_consumer"/);
    const writeTimedOut = engine.output().includes('write timeout, dropping the connection');
    assert.ok(skipped > 0 && (skipped > MESSAGES / 2 || writeTimedOut), `skipped ${skipped} messages, write timeout: ${writeTimedOut}`);
    for (const client of [...fast, slow]) client.ws.terminate();
  } finally {
    await stopEngine(engine);
  }
});

/** Subscribes a client that then stops reading, and a watcher of on_close reports. */
async function stalledSubscriber(node: TestNode) {
  const watcher = await TestClient.open(node.wsUrl);
  assert.equal(await watcher.request('mix.websocket():subscribe("closes") return 1'), '[1]');
  const stalled = await TestClient.open(node.wsUrl);
  const [id] = JSON.parse(await stalled.request('local c = mix.websocket() c:subscribe("flood") return c:client_id()'));
  (stalled.ws as unknown as { _socket: net.Socket })._socket.pause();
  return { watcher, stalled, id };
}

test('a subscriber that stops reading is dropped past maxBufferedBytes; others are unaffected', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      maxBufferedBytes: 262144' }, async (node) => {
    const { watcher, id } = await stalledSubscriber(node);
    const chunk = 'z'.repeat(256 * 1024);
    let failed = 0;
    for (let i = 0; i < 200 && failed === 0; i++) {
      failed += (await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'flood', d: chunk })).json.r.f;
    }
    assert.equal(failed, 1);
    assert.equal((await watcher.next()).data, `${id} close 1008: send buffer full`);
    assert.equal(await metric(node.apiUrl, /^connmix_drops_total\{reason="buffer_full"/), 1);
    assert.ok((await metric(node.apiUrl, /^connmix_engine_servers_send_errors_total\{protocol="websocket"/)) >= 1);
    // The watcher is subscribed to "closes"; the dropped subscriber's "flood" channel is gone.
    assert.equal(await metric(node.apiUrl, /^connmix_channels\{/), 1);
    assert.equal(await watcher.request('return "fine"'), '["fine"]');
    watcher.close();
  });
});

test('writes that do not drain for writeTimeout seconds drop the connection', async () => {
  await withNode({
    lua: { 'lua/entry.websocket.lua': EVAL },
    serverYaml: '      writeTimeout: 1\n      maxBufferedBytes: 268435456',
  }, async (node) => {
  const { watcher, id } = await stalledSubscriber(node);
  const chunk = 'w'.repeat(1024 * 1024);
  // Enough to fill the loopback socket buffers, so writes stay pending.
  for (let i = 0; i < 24; i++) await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'flood', d: chunk });
  assert.equal((await watcher.next(6000)).data, `${id} close 4002: write timeout`);
  assert.equal(await metric(node.apiUrl, /^connmix_closes_total\{code="4002"/), 1);
  watcher.close();
  });
});

test('a /ws/v1 backend that never reads its answers is dropped at maxBufferedBytes; memory stays bounded, viewers are served', async () => {
  const { file, wsUrl, apiUrl } = await seedEngineFolder();
  const engine = await startListening(file);
  try {
    const pid = engine.child.pid as number;
    const watcher = await viewer(wsUrl, 1);
    const { ws: backend } = await ApiClient.open(apiUrl);
    backend.on('error', () => undefined);
    // It never reads: every answer (each ~60 KB, echoing the unknown method) stays with the node.
    (backend as unknown as { _socket: net.Socket })._socket.pause();
    const before = residentBytes(pid);
    const request = JSON.stringify({ m: 'm'.repeat(60_000), p: {}, i: 1 });
    let sent = 0;
    const sending = (async () => {
      for (; sent < 2000 && backend.readyState === WebSocket.OPEN; sent++) {
        backend.send(request);
        if (sent % 20 === 0) await sleep(5);
      }
    })();
    const dropped = () => /ws api connection dropped: send buffer full/.test(engine.output());
    const most = await peakWhile(pid, dropped, 30_000);
    await sending;
    assert.ok(dropped(), `the backend was not dropped after ${sent} requests`);
    assert.ok(most - before < 64 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    await assertHealthy(engine, apiUrl);
    await post(`${apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'still served' });
    assert.equal((await watcher.next(10_000)).data, 'still served');
    backend.terminate();
    watcher.ws.terminate();
  } finally {
    await stopEngine(engine);
  }
});
