import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './support/helpers';
import { QUICK } from '../bench/config';
import type { RunRecord } from '../bench/report/types';

/**
 * Issue 15's figures come from the subscribe storm, the chat room and `bench:lua`. These tests run each
 * small, against every target the issue compares, and read what they report: a scenario that broke
 * (a target that no longer starts, a storm that counts nothing, a chat room that loses says) fails here
 * instead of in the next person's benchmark session. No figure is compared with a bound: the tests
 * check that each was measured, and that what must hold at any speed (nothing lost, nothing out of
 * order, every connection made) held.
 */

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a script of dist/ to its end; killed (and failed) past `timeoutMs`. */
function runScript(script: string, args: string[], timeoutMs: number): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`${script} did not finish within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const TARGETS = ['connmix-ts', 'socketio-redis', 'raw-ws'];

test('the quick subscribe storm and chat room run on connmix-ts, Socket.IO and raw-ws, and report every figure', { timeout: 200_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-bench-test-'));
  const stored = path.join(ROOT, 'bench', 'results.json');
  const storedBefore = fs.readFileSync(stored, 'utf8');
  try {
    const run = await runScript('bench/run.js', [
      '--quick', '--scenarios', 'subscribe-storm,chat-room', '--targets', TARGETS.join(','), '--name', 'bench-test', '--out', out,
    ], 180_000);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const { runs } = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { runs: RunRecord[] };
    assert.equal(runs.length, 1);
    const record = runs[0];
    assert.equal(record.name, 'bench-test');
    assert.deepEqual(record.failures, []);
    assert.deepEqual(record.targets.map((t) => t.name), TARGETS);

    const storm = QUICK.storm;
    assert.deepEqual(record.storm.map((row) => row.target), TARGETS);
    for (const row of record.storm) {
      const what = `${row.target} storm`;
      assert.equal(row.error, undefined, what);
      assert.equal(row.connections, storm.connections, what);
      assert.equal(row.connectFailed, 0, what);
      assert.equal(row.messageConnections, storm.messageConnections, what);
      for (const figure of ['connectPerSec', 'messagesPerSec', 'cpuMsPerKMessages', 'cpuUsPerConnect', 'loadCpuUsPerConnect', 'loadCpuMsPerKMessages'] as const) {
        assert.ok(Number.isFinite(row[figure]) && row[figure]! > 0, `${what}: ${figure} = ${row[figure]}`);
      }
      // The connect phase is measured, then the message phase, one after the other.
      assert.ok(row.connectT0! < row.connectT1! && row.connectT1! <= row.t0 && row.t0 < row.t1, `${what}: phases ${JSON.stringify(row)}`);
    }

    const chat = QUICK.chatRoom;
    const roomSize = chat.members / chat.rooms;
    for (const target of TARGETS) {
      const rows = record.chatRoom!.filter((row) => row.target === target);
      assert.ok(rows.length >= 1, `${target}: no chat-room step`);
      assert.deepEqual(rows.map((row) => row.rate), chat.rates.slice(0, rows.length), target);
      for (const row of rows) {
        const what = `${target} chat room at ${row.rate} says/s`;
        assert.equal(row.error, undefined, what);
        assert.equal(row.joined, chat.members, what);
        assert.equal(row.rooms, chat.rooms, what);
        assert.ok(row.says > 0, what);
        // Every say reaches every member of its room, the sender included, once and in the sender's order.
        assert.equal(row.expected, row.says * roomSize, what);
        assert.equal(row.delivered, row.expected, what);
        assert.equal(row.losses, 0, what);
        assert.equal(row.outOfOrder, 0, what);
        assert.ok(row.cpuMsPerKSays > 0 && row.cpuPerMillion > 0, `${what}: CPU ${row.cpuMsPerKSays} ms per 1,000 says`);
      }
    }

    const report = fs.readFileSync(path.join(out, 'RESULTS.md'), 'utf8');
    assert.match(report, /bench-test/);
    assert.ok(fs.existsSync(path.join(out, 'p99-vs-rate.svg')));
    assert.equal(fs.readFileSync(stored, 'utf8'), storedBefore, 'the repository\'s bench/results.json was changed');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('bench:lua reports the seed\'s call, its round trip, the empty hook call and compiled against interpreted, each measured', { timeout: 120_000 }, async () => {
  const run = await runScript('bench/lua-calls.js', ['--seconds', '2', '--warm-up', '0.5', '--viewers', '20', '--against-interpreter'], 100_000);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, number | string | null>);
  const comparison = lines.pop()!;
  assert.equal(comparison.row, 'seed, hook call: interpreted against compiled');
  assert.equal(comparison.windows, 2);
  for (const figure of ['interpretedCpuUsPerCall', 'compiledCpuUsPerCall', 'ratio']) {
    assert.ok(Number.isFinite(comparison[figure]) && (comparison[figure] as number) > 0, `${figure} = ${comparison[figure]}`);
  }
  const rows = lines;
  assert.deepEqual(rows.map((row) => row.row), ['seed, via the server', 'seed, hook call', 'seed answer, round trip', 'empty on_message, hook call']);
  for (const row of rows) {
    for (const figure of ['calls', 'usPerCall', 'p50Us', 'callsPerSecond', 'processCpuUsPerCall']) {
      const value = row[figure] as number;
      assert.ok(Number.isFinite(value) && value > 0, `${row.row}: ${figure} = ${value}`);
    }
    if (row.row === 'seed answer, round trip') assert.equal(row.allocatedBytesPerCall, null);
    else assert.ok((row.allocatedBytesPerCall as number) > 0, `${row.row}: allocatedBytesPerCall = ${row.allocatedBytesPerCall}`);
  }
});

test('bench:side-by-side measures both servers in both start orders and reports their ratio', { timeout: 150_000 }, async () => {
  const run = await runScript('bench/side-by-side.js', ['--viewers', '200', '--rounds', '2', '--step-ms', '1000'], 130_000);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const rounds = [...run.stdout.matchAll(/^\s+\d+\s+(connmix-ts|raw-ws)\s+(\S+)\s+(\S+)\s+(\S+)$/gm)];
  assert.deepEqual(rounds.map((round) => round[1]), ['connmix-ts', 'raw-ws'], run.stdout);
  for (const [, , ours, raw, ratio] of rounds) {
    assert.ok(Number(ours) > 0 && Number(raw) > 0, run.stdout);
    assert.ok(Math.abs(Number(ratio) - Number(ours) / Number(raw)) < 0.01, run.stdout);
  }
  assert.match(run.stdout, /^median ratio \d+\.\d{3}: \d+\.\d{3} \(.*\) with connmix-ts started first, \d+\.\d{3} \(.*\) with raw-ws first$/m);
});
