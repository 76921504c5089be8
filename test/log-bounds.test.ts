import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestClient, metric, post, waitFor } from './support/helpers';
import { viewer } from './support/mesh';
import { startListening, stopEngine, assertHealthy, residentBytes, seedEngineFolder, mib } from './support/engine-process';

// What a client can make the node log stays bounded: a line is cut to its bound, and a stdout nobody
// reads drops lines (counted, then reported) instead of growing. Each test runs an engine in a process
// of its own (so its memory and its stdout are its own) with the shipped script, logging at debug.

/** Opens a client, sends one seed message whose channel is `channel`, and waits for the script to close it. */
async function invalidChannel(wsUrl: string, channel: string): Promise<void> {
  const client = await TestClient.open(wsUrl);
  client.send(JSON.stringify({ op: 'subscribe', channel }));
  await client.waitClosed(20_000);
}

test('logs: a 1 MB channel the seed logs at debug gives one line cut to its bound, in the file and on stdout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-bounds-log-'));
  const logFile = path.join(dir, 'connmix.log');
  const where = await seedEngineFolder({ level: 'debug', logFile });
  const engine = await startListening(where.file);
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
    await assertHealthy(engine, where.apiUrl);
    const client = await viewer(where.wsUrl, 7);
    assert.deepEqual((await post(`${where.apiUrl}/v1/mesh/publish`, { c: 'video:7', d: 'still here' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await client.next(20_000)).data, 'still here');
    client.close();
  } finally {
    await stopEngine(engine);
  }
});

test('logs: with a stdout nobody reads, lines past the bound are dropped and counted, memory stays bounded, and the gap is reported', async () => {
  const where = await seedEngineFolder({ level: 'debug' });
  const engine = await startListening(where.file);
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
    const dropped = await metric(where.apiUrl, /^connmix_log_dropped_lines_total\b/);
    assert.ok(dropped >= 200, `${dropped} lines dropped`);
    assert.ok(most - before < 64 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    await assertHealthy(engine, where.apiUrl);
    const client = await viewer(where.wsUrl, 8);
    assert.deepEqual((await post(`${where.apiUrl}/v1/mesh/publish`, { c: 'video:8', d: 'served' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await client.next(20_000)).data, 'served');
    client.close();
    // Once read again, the output says how many lines it lost.
    engine.child.stdout?.resume();
    await invalidChannel(where.wsUrl, 'after');
    await waitFor('the drop is reported on stdout', () => /"msg":"log lines dropped: the output was not read fast enough","dropped":\d+/.test(engine.output()), 20_000);
    await waitFor('logging goes on', () => engine.output().includes('"invalid channel: after"'), 20_000);
  } finally {
    engine.child.stdout?.resume();
    await stopEngine(engine);
  }
});
