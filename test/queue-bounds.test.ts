import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { TestClient, metric, waitFor } from './support/helpers';
import { ApiClient } from './support/api-client';
import { startListening, stopEngine, assertHealthy, residentBytes, seedEngineFolder, mib } from './support/engine-process';

// The memory queue holds what a client pushes up to its bounds, not the heap: an engine in a process of
// its own (so its memory is its own) runs the shipped queue example and is flooded with large messages.

test('queue: 20 clients pushing 1 MB messages with no consumer fill a topic to topicBytes, not the heap; the node serves on', async (t) => {
  // Less than one client's burst of 8 messages (8 MB): every client meets the cap at least once, so the
  // script closes every one of them, whichever client fills the topic first.
  const TOPIC_BYTES = 6 * 1024 * 1024;
  const where = await seedEngineFolder({
    entry: 'lua/examples/queue-round-trip.lua',
    level: 'debug',
    engineYaml: `  luavm:\n    queue: { topicBytes: ${TOPIC_BYTES} }`,
  });
  const engine = await startListening(where.file);
  try {
    const pid = engine.child.pid as number;
    const before = residentBytes(pid);
    let most = before;
    const frame = 'x'.repeat(1_000_000);
    // The shipped script closes a client whose push was refused: every client is closed once the topic is
    // full. Each message already sent still runs the script (1 MB into Lua and back): on a busy machine
    // that takes a while.
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.open(where.wsUrl)));
    for (const client of clients) for (let i = 0; i < 8; i++) client.send(frame);
    await waitFor('every client was refused and closed by the script', async () => {
      most = Math.max(most, residentBytes(pid));
      return clients.every((client) => client.ws.readyState === WebSocket.CLOSED);
    }, 120_000, 100).catch((error) => {
      const states = clients.map((client) => client.ws.readyState).join('');
      const buffered = clients.map((client) => client.ws.bufferedAmount).join(',');
      throw new Error(`${(error as Error).message}; states ${states}; buffered ${buffered}; ${engine.output().slice(-3000)}`);
    });
    most = Math.max(most, residentBytes(pid));
    t.diagnostic(`resident memory ${mib(before)} -> at most ${mib(most)}`);
    // 160 MB were sent to be queued; the topic holds at most topicBytes of them.
    const waiting = await metric(where.apiUrl, /^connmix_queue_waiting_bytes\b/);
    assert.ok(waiting > 0 && waiting <= TOPIC_BYTES, `${waiting} bytes waiting`);
    assert.ok((await metric(where.apiUrl, /^connmix_queue_refused_total\{.*reason="topic_bytes"/)) >= 1);
    // What waits (6 MiB) plus the messages in flight through Lua; keeping the 160 MB would show here.
    assert.ok(most - before < 128 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    await assertHealthy(engine, where.apiUrl);

    // A consumer arriving later gets what waited, in order, and the round trip works again.
    const consumer = await ApiClient.open(where.apiUrl);
    assert.deepEqual((await consumer.call('queue.pop', { t: ['foo'] }, 10_000)).r, { s: true });
    let drained = 0;
    while (await metric(where.apiUrl, /^connmix_queue_waiting_items\b/) > 0 || consumer.events.length > 0) {
      const event = await consumer.nextEvent(20_000);
      assert.equal(event.p.d.frame.data.length, frame.length);
      drained++;
    }
    assert.ok(drained >= 1 && drained * frame.length <= TOPIC_BYTES, `${drained} items drained`);
    const client = await TestClient.open(where.wsUrl);
    client.send('test');
    const event = await consumer.nextEvent(20_000);
    assert.deepEqual(event.p.d.frame.data, 'test');
    assert.deepEqual((await consumer.call('mesh.send', { c: event.p.c, d: 'received: test' }, 10_000)).r, { s: true });
    assert.equal((await client.next(20_000)).data, 'received: test');
    client.close();
    consumer.close();
  } finally {
    await stopEngine(engine);
  }
});

