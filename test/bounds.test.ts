import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { TestClient, get, metric, post } from './support/helpers';
import { ApiClient } from './support/api-client';
import { waitFor } from './support/redis';
import { viewer } from './support/mesh';
import { startEngine, residentBytes, seedEngineFolder, type EngineProcess } from './support/engine-process';

// What a client can make a node hold: the memory queue and the logs. Each test runs an engine in a
// process of its own (so its memory and its stdout are its own) with a shipped script, floods it the
// way the issue did, and checks that the node stays alive, bounded and serving.

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

interface Folder {
  file: string;
  wsUrl: string;
  api: string;
}

/** A folder with `entry` (a path in the repository) as the websocket entry, logging at debug. */
async function folder(entry: string, extra: { engineYaml?: string; logFile?: string } = {}): Promise<Folder> {
  const { file, wsPort, apiPort } = await seedEngineFolder({ ...extra, entry, level: 'debug' });
  return { file, wsUrl: `ws://127.0.0.1:${wsPort}/barrage-videos`, api: `http://127.0.0.1:${apiPort}` };
}

async function started(where: Folder): Promise<EngineProcess> {
  const engine = startEngine(where.file);
  await waitFor('engine listening', () => /api server listening/.test(engine.output()), 20_000);
  return engine;
}

async function stopped(engine: EngineProcess): Promise<void> {
  engine.child.kill('SIGTERM');
  await engine.exited;
}

/** The node is alive and answers /healthz. */
async function healthy(engine: EngineProcess, where: Folder): Promise<void> {
  assert.equal(engine.child.exitCode, null, `the node died: ${engine.output().slice(-2000)}`);
  assert.equal((await get(`${where.api}/healthz`)).status, 200);
}

test('queue: 20 clients pushing 1 MB messages with no consumer fill a topic to topicBytes, not the heap; the node serves on', async (t) => {
  // Less than one client's burst of 8 messages (8 MB): every client meets the cap at least once, so the
  // script closes every one of them, whichever client fills the topic first.
  const TOPIC_BYTES = 6 * 1024 * 1024;
  const where = await folder('lua/examples/queue-round-trip.lua', { engineYaml: `  luavm:\n    queue: { topicBytes: ${TOPIC_BYTES} }` });
  const engine = await started(where);
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
    const waiting = await metric(where.api, /^connmix_queue_waiting_bytes\b/);
    assert.ok(waiting > 0 && waiting <= TOPIC_BYTES, `${waiting} bytes waiting`);
    assert.ok((await metric(where.api, /^connmix_queue_refused_total\{.*reason="topic_bytes"/)) >= 1);
    // What waits (6 MiB) plus the messages in flight through Lua; keeping the 160 MB would show here.
    assert.ok(most - before < 128 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    await healthy(engine, where);

    // A consumer arriving later gets what waited, in order, and the round trip works again.
    const consumer = await ApiClient.open(where.api);
    assert.deepEqual((await consumer.call('queue.pop', { t: ['foo'] }, 10_000)).r, { s: true });
    let drained = 0;
    while (await metric(where.api, /^connmix_queue_waiting_items\b/) > 0 || consumer.events.length > 0) {
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
    await stopped(engine);
  }
});

/** Opens a client, sends one seed message whose channel is `channel`, and waits for the script to close it. */
async function invalidChannel(wsUrl: string, channel: string): Promise<void> {
  const client = await TestClient.open(wsUrl);
  client.send(JSON.stringify({ op: 'subscribe', channel }));
  await client.waitClosed(20_000);
}

test('logs: a 1 MB channel the seed logs at debug gives one line cut to its bound, in the file and on stdout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-bounds-log-'));
  const logFile = path.join(dir, 'connmix.log');
  const where = await folder('lua/entry.websocket.lua', { logFile });
  const engine = await started(where);
  try {
    for (let i = 0; i < 20; i++) await invalidChannel(where.wsUrl, `${i}:${'c'.repeat(1_000_000)}`);
    await waitFor('the last refusal is logged', () => fs.readFileSync(logFile, 'utf8').includes('"invalid channel: 19:ccc'), 20_000);
    const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
    const refused = lines.map((line) => JSON.parse(line)).filter((entry) => String(entry.msg).startsWith('invalid channel: '));
    assert.deepEqual(refused.map((entry) => Number(/^invalid channel: (\d+):/.exec(entry.msg)?.[1])), Array.from({ length: 20 }, (_, i) => i));
    for (const entry of refused) {
      assert.equal(entry.truncated, true);
      assert.match(entry.msg, /c…$/);
    }
    for (const line of lines) assert.ok(line.length <= 16384, `a line of ${line.length} characters`);
    // 20 MB of channel names reached the script; the log keeps a bounded line of each.
    assert.ok(fs.statSync(logFile).size < 1024 * 1024, `the log file has ${fs.statSync(logFile).size} bytes`);
    const stdoutLines = engine.output().split('\n');
    assert.ok(stdoutLines.some((line) => line.startsWith('{') && line.includes('"invalid channel: 19:ccc') && line.includes('"truncated":true')));
    assert.ok(stdoutLines.every((line) => line.length <= 16384));
    await healthy(engine, where);
    const client = await viewer(where.wsUrl, 7);
    assert.deepEqual((await post(`${where.api}/v1/mesh/publish`, { c: 'video:7', d: 'still here' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await client.next(20_000)).data, 'still here');
    client.close();
  } finally {
    await stopped(engine);
  }
});

test('logs: with a stdout nobody reads, lines past the bound are dropped and counted, memory stays bounded, and the gap is reported', async () => {
  const where = await folder('lua/entry.websocket.lua');
  const engine = await started(where);
  try {
    const pid = engine.child.pid as number;
    // From here on nobody reads the node's stdout: the pipe fills, then the node's own buffer.
    engine.child.stdout?.pause();
    const before = residentBytes(pid);
    let most = before;
    // Each refusal logs a line of about 15 KB: 800 of them are 12 MB, three times the bound.
    const channel = 'd'.repeat(15_000);
    for (let i = 0; i < 800; i++) {
      await invalidChannel(where.wsUrl, channel);
      if (i % 50 === 0) most = Math.max(most, residentBytes(pid));
    }
    most = Math.max(most, residentBytes(pid));
    const dropped = await metric(where.api, /^connmix_log_dropped_lines_total\b/);
    assert.ok(dropped >= 200, `${dropped} lines dropped`);
    assert.ok(most - before < 64 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    await healthy(engine, where);
    const client = await viewer(where.wsUrl, 8);
    assert.deepEqual((await post(`${where.api}/v1/mesh/publish`, { c: 'video:8', d: 'served' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await client.next(20_000)).data, 'served');
    client.close();
    // Once read again, the output says how many lines it lost.
    engine.child.stdout?.resume();
    await invalidChannel(where.wsUrl, 'after');
    await waitFor('the drop is reported on stdout', () => /"msg":"log lines dropped: the output was not read fast enough","dropped":\d+/.test(engine.output()), 20_000);
    await waitFor('logging goes on', () => engine.output().includes('"invalid channel: after"'), 20_000);
  } finally {
    engine.child.stdout?.resume();
    await stopped(engine);
  }
});
