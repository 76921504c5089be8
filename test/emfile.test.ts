import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, post, waitFor } from './support/helpers';
import { RedisServer } from './support/redis';
import { viewer } from './support/mesh';
import { assertHealthy, seedEngineFolder, stopEngine, untilListening, watchProcess, type EngineProcess } from './support/engine-process';

// The node survives a full descriptor table. Its own file work: run in a process whose ulimit -n it
// fills itself (test/support/emfile-child.ts), so the EMFILE is real and this test process keeps its
// descriptors. Idle sockets that fill it: an engine process under a small ulimit -n, flooded.

test('with the descriptor table full, the Lua reload check, the log file and the config watcher fail softly and recover once descriptors are free', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-emfile-'));
  fs.mkdirSync(path.join(dir, 'lua'));
  fs.writeFileSync(path.join(dir, 'lua/entry.lua'), 'function on_message(msg) end\n');
  fs.writeFileSync(path.join(dir, 'connmix.yaml'), 'logging:\n  level: info\n');
  const child = path.join(__dirname, 'support', 'emfile-child.js');
  const output = await new Promise<string>((resolve, reject) => {
    execFile('sh', ['-c', 'ulimit -n 128 && exec "$0" "$1"', process.execPath, child], {
      env: { ...process.env, CONNMIX_EMFILE_DIR: dir },
      timeout: 60_000,
    }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
  const seen = JSON.parse(output.trim().split('\n').pop() as string);
  assert.equal(seen.filled, 'EMFILE');
  assert.equal(seen.threw, undefined, `threw while the table was full: ${seen.threw}`);
  assert.equal(seen.reloadWhileFull, false);
  assert.deepEqual(seen.levelsWhileFull, [], 'the config was read while the table was full');
  // Once descriptors are free, the edits made meanwhile are not lost.
  assert.equal(seen.reloadAfter, true);
  assert.deepEqual(seen.levelsAfter, ['warn']);
  assert.ok(seen.logs.some((line: string) => /Lua reload check failed, retrying/.test(line)), seen.logs.join('\n'));
  assert.match(seen.file, /"msg":"log lines were dropped while no file descriptor was free","dropped":1/);
  assert.match(seen.file, /"msg":"after"/);
});

test('with the descriptor table full, the node\'s Redis connections fail to reconnect softly, and reconnect and resubscribe once descriptors are free', async () => {
  const redis = await RedisServer.start();
  try {
    const child = path.join(__dirname, 'support', 'emfile-child.js');
    const output = await new Promise<string>((resolve, reject) => {
      execFile('sh', ['-c', 'ulimit -n 128 && exec "$0" "$1"', process.execPath, child], {
        env: { ...process.env, CONNMIX_EMFILE_REDIS_PORT: String(redis.port) },
        timeout: 90_000,
      }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
    });
    const seen = JSON.parse(output.trim().split('\n').pop() as string);
    assert.equal(seen.filled, 'EMFILE');
    assert.equal(seen.threw, undefined, `threw while the table was full: ${seen.threw}`);
    assert.equal(seen.readyWhileFull, false, 'the connections were dropped while the table was full');
    assert.ok(seen.failedWhileFull >= 1, `no reconnect met EMFILE: ${JSON.stringify(seen.logs)}`);
    assert.equal(seen.readyAfter, true, JSON.stringify(seen.logs));
    assert.equal(seen.delivered, true, 'the subscriber resubscribed after reconnecting');
  } finally {
    await redis.stop();
  }
});

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
  // Hot reload checks every second and a log file, both of which need descriptors while the flood holds them.
  const { file, wsPort, wsUrl: url, apiUrl: api } = await seedEngineFolder({ byteCodeExpires: 1, logFile: 'logs/connmix.log' });
  const dir = path.dirname(file);
  const engine = await untilListening(startLimited(file, 256));
  let flood: ReturnType<typeof idleFlood> | null = null;
  try {
    const early = await viewer(url, 1);
    flood = idleFlood(wsPort, 400);
    // The table is as full as the node lets it be once it sheds; it lives and answers through that.
    await waitFor('the node sheds idle sockets', () => /"shed":\d+/.test(engine.output()), 20_000);
    await assertHealthy(engine, api);
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
    await stopEngine(engine);
  }
});
