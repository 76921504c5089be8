import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { ROOT, TestClient, freePort, get, post } from './support/helpers';
import { waitFor } from './support/redis';
import { viewer } from './support/mesh';
import { residentBytes, seedEngineFolder, startEngine, watchProcess, type EngineProcess } from './support/engine-process';

// Hostile clients against engines in processes of their own: so that a crash, the process's memory
// and its descriptor table are the engine's alone.

/** A folder with the barrage entry and a yaml serving it on free loopback ports, hot reload and a log file on. */
async function engineFolder(serverYaml = ''): Promise<{ dir: string; file: string; wsPort: number; apiPort: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-guard-'));
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  fs.mkdirSync(path.join(dir, 'lua'));
  fs.copyFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), path.join(dir, 'lua/entry.websocket.lua'));
  const file = path.join(dir, 'connmix.yaml');
  fs.writeFileSync(file, `
logging:
  level: info
  filename: logs/connmix.log
engine:
  apiServer: { port: ${apiPort} }
  servers:
    - port: ${wsPort}
      bind: 127.0.0.1
      options: [{ name: path, value: /barrage-videos }]
      entry: lua/entry.websocket.lua
      byteCodeExpires: 1
${serverYaml}
`);
  return { dir, file, wsPort, apiPort };
}

/** Runs `connmix dev -f <file>` under `ulimit -n <fds>`; the process never outlives this test process. */
function startLimited(file: string, fds: number): EngineProcess {
  const child = spawn('sh', ['-c', `ulimit -n ${fds} && exec "$0" "$@"`, process.execPath, path.join(ROOT, 'bin/connmix.js'), 'dev', '-f', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watchProcess(child);
}

/**
 * Keeps `count` idle TCP connections open to 127.0.0.1:`port`, opening a new one whenever one closes,
 * until stop() (the flood of the attack report, scaled to a small descriptor limit).
 */
function idleFlood(port: number, count: number): { stop(): void; opened(): number } {
  const sockets = new Set<net.Socket>();
  let stopped = false;
  let opened = 0;
  const open = () => {
    if (stopped) return;
    const socket = net.connect(port, '127.0.0.1');
    opened++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      // Reopened as they close, a little later so that the loop cannot spin.
      if (!stopped) setTimeout(open, 20);
    });
  };
  for (let i = 0; i < count; i++) open();
  return {
    stop() {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
    opened: () => opened,
  };
}

test('idle sockets past ulimit -n with hot reload and a log file on: the node lives, sheds them, logs it, and serves new viewers', async () => {
  const { dir, file, wsPort, apiPort } = await engineFolder();
  const engine = startLimited(file, 256);
  const api = `http://127.0.0.1:${apiPort}`;
  const url = `ws://127.0.0.1:${wsPort}/barrage-videos`;
  let flood: ReturnType<typeof idleFlood> | null = null;
  try {
    await waitFor('engine listening', () => /api server listening/.test(engine.output()), 20_000);
    const early = await viewer(url, 1);
    flood = idleFlood(wsPort, 400);
    // Several reload checks and flood rounds pass while the table is as full as the node lets it be.
    const during = Date.now() + 5000;
    while (Date.now() < during) {
      assert.equal(engine.child.exitCode, null, `the engine exited:\n${engine.output()}`);
      assert.equal((await get(`${api}/healthz`)).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // A viewer connected before the flood is still served while it goes on.
    await post(`${api}/v1/mesh/publish`, { c: 'video:1', d: 'during the flood' });
    assert.equal((await early.next(10_000)).data, 'during the flood');
    assert.ok(flood.opened() > 400, `the flood only opened ${flood.opened()} sockets`);
    flood.stop();
    flood = null;
    // After the flood: the process is alive and a new viewer is served.
    const late = await waitFor('a new viewer connects', async () => viewer(url, 2), 20_000);
    await post(`${api}/v1/mesh/publish`, { c: 'video:2', d: 'after the flood' });
    assert.equal((await late.next(10_000)).data, 'after the flood');
    // Hot reload still works: an edit is picked up.
    const entry = path.join(dir, 'lua/entry.websocket.lua');
    fs.appendFileSync(entry, '\n-- edited after the flood\n');
    await waitFor('the edit is reloaded', () => /Lua code reloaded/.test(engine.output()), 20_000);
    const log = fs.readFileSync(path.join(dir, 'logs/connmix.log'), 'utf8');
    assert.match(log, /near the file descriptor limit/);
    assert.match(engine.output(), /"shed":\d+/);
    assert.doesNotMatch(engine.output(), /EMFILE.*uncaught|Uncaught|at .*node:internal/i);
    for (const client of [early, late]) client.ws.terminate();
    assert.equal(engine.child.exitCode, null);
  } finally {
    flood?.stop();
    engine.child.kill('SIGTERM');
    await engine.exited;
  }
});

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Samples the engine's resident memory until `done()` or `ms` passed; returns the most it saw. */
async function peakWhile(pid: number, done: () => boolean, ms: number): Promise<number> {
  let most = residentBytes(pid);
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) {
    most = Math.max(most, residentBytes(pid));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Math.max(most, residentBytes(pid));
}

test('message-center: a client queuing 1 MB messages behind its waiting auth hook is not read further; memory stays bounded, others are served, nothing is lost', async () => {
  // The business auth endpoint: token "slow" waits until released, any other answers at once.
  const held: http.ServerResponse[] = [];
  const auth = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (body.includes('slow')) held.push(res);
      else res.end('{"uid":2}');
    });
  });
  await new Promise<void>((resolve) => auth.listen(0, '127.0.0.1', resolve));
  const authUrl = `http://127.0.0.1:${(auth.address() as net.AddressInfo).port}/websocket_auth`;
  const { file, apiPort } = await seedEngineFolder();
  const port = await freePort();
  fs.copyFileSync(path.join(ROOT, 'lua/examples/message-center.lua'), path.join(path.dirname(file), 'lua/message-center.lua'));
  // A second server beside the barrage one, running the example unchanged.
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8') + `    - port: ${port}
      bind: 127.0.0.1
      options: [{ name: path, value: /message-center }, { name: auth_url, value: "${authUrl}" }]
      entry: lua/message-center.lua
      byteCodeExpires: 0
      maxMessagesPerSecond: 0
`);
  const engine = startEngine(file);
  const api = `http://127.0.0.1:${apiPort}`;
  const url = `ws://127.0.0.1:${port}/message-center`;
  try {
    await waitFor('engine listening', () => /api server listening/.test(engine.output()), 20_000);
    const pid = engine.child.pid as number;
    const other = await TestClient.open(url);
    other.send('{"op":"auth","token":"fast"}');
    assert.equal(await other.request('{"op":"subscribe","channel":"@user"}'), '{"result":true}');
    const flooder = await TestClient.open(url);
    flooder.send('{"op":"auth","token":"slow"}');
    await waitFor('the auth hook waits', () => held.length === 1);
    const before = residentBytes(pid);
    const padding = 'x'.repeat(1_000_000);
    const MESSAGES = 150;
    for (let i = 0; i < MESSAGES; i++) flooder.send(`{"op":"subscribe","channel":"@user","pad":"${padding}"}`);
    // Unbounded, the node reads all 150 MB at loopback speed; bounded, most of it waits in the flooder.
    const most = await peakWhile(pid, () => flooder.ws.bufferedAmount === 0, 8000);
    assert.ok(most - before < 64 * 1024 * 1024, `the node grew by ${mib(most - before)} while the hook waited`);
    assert.equal((await get(`${api}/healthz`)).status, 200);
    await post(`${api}/v1/mesh/publish`, { c: 'user:2', d: 'still served' });
    assert.equal((await other.next(10_000)).data, 'still served');
    // The auth answers: every message waiting behind it is handled, none lost.
    held[0].end('{"uid":1}');
    await waitFor('every queued message is answered', () => flooder.received.length === MESSAGES, 120_000, 200);
    assert.ok(flooder.received.every((message) => message.data === '{"result":true}'));
    for (const client of [other, flooder]) client.ws.terminate();
  } finally {
    for (const res of held) res.destroy();
    auth.close();
    engine.child.kill('SIGTERM');
    await engine.exited;
  }
});

test('a /ws/v1 backend that never reads its answers is dropped at maxBufferedBytes; memory stays bounded, viewers are served', async () => {
  const { file, wsPort, apiPort } = await seedEngineFolder();
  const engine = startEngine(file);
  const api = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor('engine listening', () => /api server listening/.test(engine.output()), 20_000);
    const pid = engine.child.pid as number;
    const watcher = await viewer(`ws://127.0.0.1:${wsPort}/barrage-videos`, 1);
    const backend = new WebSocket(`ws://127.0.0.1:${apiPort}/ws/v1`);
    backend.on('error', () => undefined);
    await new Promise((resolve, reject) => {
      backend.once('open', resolve);
      backend.once('error', reject);
    });
    // It never reads: every answer (each ~60 KB, echoing the unknown method) stays with the node.
    (backend as unknown as { _socket: net.Socket })._socket.pause();
    const before = residentBytes(pid);
    const request = JSON.stringify({ m: 'm'.repeat(60_000), p: {}, i: 1 });
    let sent = 0;
    const sending = (async () => {
      for (; sent < 2000 && backend.readyState === WebSocket.OPEN; sent++) {
        backend.send(request);
        if (sent % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const dropped = () => /ws api connection dropped: send buffer full/.test(engine.output());
    const most = await peakWhile(pid, dropped, 30_000);
    await sending;
    assert.ok(dropped(), `the backend was not dropped after ${sent} requests`);
    assert.ok(most - before < 64 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    assert.equal((await get(`${api}/healthz`)).status, 200);
    await post(`${api}/v1/mesh/publish`, { c: 'video:1', d: 'still served' });
    assert.equal((await watcher.next(10_000)).data, 'still served');
    backend.terminate();
    watcher.ws.terminate();
  } finally {
    engine.child.kill('SIGTERM');
    await engine.exited;
  }
});
