import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Logger } from '../src/log';
import { RotatingLogFile } from '../src/log-file';

test('log lines are JSON objects with time, level, msg and fields; the level filters and is hot', () => {
  const lines: string[] = [];
  const log = new Logger('info', { write: (line: string) => lines.push(line) });
  log.debug('hidden');
  log.info('shown', { client_id: '42', skipped: undefined, msg: 'cannot override' });
  log.setLevel('error');
  log.warn('hidden too');
  log.child({ server: 'ws' }).error('child line', { n: 1 });
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]);
  assert.equal(first.level, 'info');
  assert.equal(first.msg, 'shown');
  assert.equal(first.client_id, '42');
  assert.ok(!('skipped' in first));
  assert.ok(!Number.isNaN(Date.parse(first.time)));
  assert.deepEqual({ ...JSON.parse(lines[1]), time: 0 }, { time: 0, level: 'error', msg: 'child line', server: 'ws', n: 1 });
});

test('the log file rotates daily and keeps maxFiles rotated files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-log-'));
  const file = path.join(dir, 'logs', 'connmix.log');
  let day = '2026-01-01';
  const sink = new RotatingLogFile(file, 2, () => day);
  const log = new Logger('debug', sink);
  for (const next of ['2026-01-01', '2026-01-02', '2026-01-03', '2026-01-04']) {
    day = next;
    log.info(`line of ${next}`);
  }
  sink.close();
  assert.match(fs.readFileSync(file, 'utf8'), /line of 2026-01-04/);
  const rotated = sink.rotatedFiles().map((f) => path.basename(f));
  assert.deepEqual(rotated, ['connmix-2026-01-03.log', 'connmix-2026-01-02.log']);
  assert.match(fs.readFileSync(path.join(dir, 'logs', 'connmix-2026-01-03.log'), 'utf8'), /line of 2026-01-03/);
});

test('an unwritable log file is reported once and does not throw', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-log-'));
  const blocker = path.join(dir, 'not-a-dir');
  fs.writeFileSync(blocker, '');
  const sink = new RotatingLogFile(path.join(blocker, 'connmix.log'), 3);
  const log = new Logger('debug', sink);
  assert.doesNotThrow(() => log.info('goes nowhere'));
});
