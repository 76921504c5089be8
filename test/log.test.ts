import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Logger, MAX_LINE_LENGTH, StreamSink } from '../src/log';
import { waitFor } from './support/helpers';
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
  assert.doesNotThrow(() => log.info('nor this'));
  assert.equal(log.dropped, 2, 'the lost lines count in connmix_log_dropped_lines_total');
});

test('a line longer than MAX_LINE_LENGTH is cut, says so, and stays one JSON object', () => {
  const lines: string[] = [];
  const log = new Logger('debug', { write: (line: string) => lines.push(line) });
  log.debug(`invalid channel: ${'c'.repeat(1_000_000)}`, { client_id: '42' });
  log.info('fields too', { error: 'e'.repeat(100_000), n: 1 });
  log.info('objects too', { headers: { big: 'h'.repeat(100_000) } });
  log.info('short', { n: 2 });
  assert.equal(lines.length, 4);
  for (const line of lines) assert.ok(line.length <= MAX_LINE_LENGTH + 1, `a line of ${line.length}`);
  const [channel, fields, objects, short] = lines.map((line) => JSON.parse(line));
  assert.match(channel.msg, /^invalid channel: c+…$/);
  assert.equal(channel.client_id, '42');
  assert.equal(channel.truncated, true);
  assert.match(fields.error, /^e+…$/);
  assert.deepEqual([fields.msg, fields.n, fields.truncated], ['fields too', 1, true]);
  assert.deepEqual([objects.msg, objects.headers, objects.truncated], ['objects too', undefined, true]);
  assert.deepEqual({ ...short, time: 0 }, { time: 0, level: 'info', msg: 'short', n: 2 });
});

test('stdout that is not read holds at most its bound: later lines are dropped, counted, and the gap is reported', async () => {
  const { PassThrough } = await import('node:stream');
  // A stream nobody reads, with a small high-water mark so that its buffer is what grows.
  const stream = new PassThrough({ highWaterMark: 1024 });
  const sink = new StreamSink(stream, 64 * 1024);
  const log = new Logger('debug', sink);
  for (let i = 0; i < 2000; i++) log.info(`line ${i} ${'x'.repeat(100)}`);
  assert.ok(stream.writableLength <= 64 * 1024 + 200, `${stream.writableLength} bytes waiting`);
  assert.ok(sink.unreadLines > 1000 && log.dropped === sink.unreadLines, `${sink.unreadLines} dropped`);
  const out: string[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk.toString()));
  await new Promise((resolve) => setImmediate(resolve));
  log.info('after');
  await new Promise((resolve) => setImmediate(resolve));
  const lines = out.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  assert.equal(lines[0].msg, 'line 0 ' + 'x'.repeat(100));
  assert.deepEqual(lines.slice(-2).map((line) => [line.msg, line.dropped]), [['log lines dropped: the output was not read fast enough', sink.unreadLines], ['after', undefined]]);
});

test('a log file on a full disk (ENOSPC) is written again once there is room', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-log-'));
  const file = path.join(dir, 'connmix.log');
  const sink = new RotatingLogFile(file, 3, undefined, 200);
  const log = new Logger('debug', sink);
  // /dev/full answers every write with ENOSPC: the file is a link to it, as if the disk were full.
  fs.symlinkSync('/dev/full', file);
  const stderr = process.stderr.write;
  const reported: string[] = [];
  process.stderr.write = ((chunk: string) => {
    reported.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    log.info('lost on a full disk');
    assert.match(reported.join(''), /cannot write the log file .*ENOSPC/);
    assert.equal(sink.unreadLines, 1, 'the lost line is counted');
    fs.unlinkSync(file);
    await waitFor('lines are written again', () => {
      log.info('after the disk has room');
      return fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('after the disk has room');
    }, 20_000, 50);
    assert.match(reported.join(''), /writing the log file .* again/);
  } finally {
    process.stderr.write = stderr;
    sink.close();
  }
  assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /lost on a full disk/);
});
