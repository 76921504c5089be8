import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RedisServer } from './support/redis';

// The node's own file work survives a full descriptor table: run in a process whose ulimit -n it fills
// itself (test/support/emfile-child.ts), so the EMFILE is real and this test process keeps its descriptors.

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
