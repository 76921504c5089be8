import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as commands from '../../src/api/commands';
import { ApiError, ErrorCode } from '../../src/wire/api-errors';
import { MemoryQueue, type QueueConsumer } from '../../src/queue/memory-queue';
import { meshNode, TestSubscriber } from '../support/mesh-node';

// The API commands over a one-node Mesh in this process: what HTTP and /ws/v1 both answer.

/** The `E` a transport answers for what `run` throws (fails the test if it does not throw). */
function refusal(run: () => unknown): { c: number; m: string } {
  try {
    run();
  } catch (error) {
    const { c, m } = commands.errorOf(error);
    return { c, m };
  }
  assert.fail('expected a refusal');
}

test('publish validates c, d and t (code 101), then answers exactly {s, f}', async () => {
  const { mesh } = await meshNode();
  const conn = new TestSubscriber(mesh.nextClientId());
  mesh.attach(conn);
  mesh.subscribe(conn, ['room']);
  assert.deepEqual(refusal(() => commands.publish(mesh, { d: 'x' })), { c: 101, m: 'c: channel must be a non-empty string' });
  assert.deepEqual(refusal(() => commands.publish(mesh, { c: 'a b', d: 'x' })), { c: 101, m: 'c: invalid channel "a b": channels cannot contain spaces' });
  assert.deepEqual(refusal(() => commands.publish(mesh, { c: 'room', d: 1 })), { c: 101, m: 'd must be a string' });
  assert.deepEqual(refusal(() => commands.publish(mesh, { c: 'room', d: 'x', t: 'json' })), { c: 101, m: 't must be "text" or "binary"' });
  assert.deepEqual(refusal(() => commands.publish(mesh, { c: 'room', d: 'not base64!', t: 'binary' })), { c: 101, m: 'd must be base64 when t is "binary"' });
  assert.deepEqual(conn.received, [], 'a refused publish delivers nothing');
  assert.deepEqual(commands.publish(mesh, { c: 'room', d: 'aGk=', t: 'binary' }), { s: 1, f: 0 });
  assert.deepEqual(commands.publish(mesh, { c: 'room', d: 'text', extra: true }), { s: 1, f: 0 });
  assert.deepEqual(conn.received, ['hi', 'text']);
});

test('send takes client_ids as strings or JSON numbers; a client not here answers 401', async () => {
  const { mesh } = await meshNode();
  const conn = new TestSubscriber(mesh.nextClientId());
  mesh.attach(conn);
  assert.deepEqual(commands.send(mesh, { c: conn.clientId, d: 'one' }), { s: true });
  // A JSON number is a client_id too (the PHP SDK sends them so): not found, rather than invalid.
  assert.deepEqual(refusal(() => commands.send(mesh, { c: 5, d: 'x' })), { c: ErrorCode.SEND_FAILED, m: 'send failed: client 5 not found or gone' });
  assert.deepEqual(refusal(() => commands.send(mesh, { c: '12', d: 'x' })), { c: ErrorCode.SEND_FAILED, m: 'send failed: client 12 not found or gone' });
  assert.deepEqual(refusal(() => commands.send(mesh, { c: 'abc', d: 'x' })), { c: 101, m: 'c must be a client_id (a decimal string)' });
  assert.deepEqual(conn.received, ['one']);
});

test('count answers exactly {n, f}; call validates p.c, p.f and p.a and answers 301 with the refusal', async () => {
  const { mesh } = await meshNode();
  const conn = new TestSubscriber(mesh.nextClientId());
  mesh.attach(conn);
  assert.deepEqual(commands.count(mesh, { c: 'v' }), { n: 0, f: 0 });
  assert.deepEqual(commands.call(mesh, { c: conn.clientId, f: 'subscribe', a: ['v'] }), { s: true });
  assert.deepEqual(commands.count(mesh, { c: 'v' }), { n: 1, f: 0 });
  assert.deepEqual(commands.call(mesh, { c: conn.clientId, f: 'set_context', a: [{ room: 'r9', vip: true }] }), { s: true });
  assert.deepEqual(Object.fromEntries(conn.context.entries()), { room: 'r9', vip: true });
  assert.deepEqual(refusal(() => commands.call(mesh, { c: 'x', f: 'subscribe', a: [] })), { c: 101, m: 'p.c must be a client_id' });
  assert.deepEqual(refusal(() => commands.call(mesh, { c: conn.clientId, f: 'close', a: [] })),
    { c: 101, m: 'p.f must be one of set_context_value, set_context, subscribe, unsubscribe' });
  assert.deepEqual(refusal(() => commands.call(mesh, { c: conn.clientId, f: 'subscribe' })), { c: 101, m: 'p.a must be a list of arguments' });
  assert.deepEqual(refusal(() => commands.call(mesh, { c: conn.clientId, f: 'set_context_value', a: ['k'] })), { c: 101, m: 'set_context_value takes a = [key, value]' });
  let deep: unknown = 1;
  for (let i = 0; i < 70; i++) deep = [deep];
  assert.deepEqual(refusal(() => commands.call(mesh, { c: conn.clientId, f: 'set_context_value', a: ['k', deep] })), { c: 101, m: 'context values may nest at most 64 levels' });
  assert.deepEqual(refusal(() => commands.call(mesh, { c: conn.clientId, f: 'subscribe', a: ['bad channel'] })),
    { c: ErrorCode.CALL_FAILED, m: 'invalid channel "bad channel": channels cannot contain spaces' });
  assert.deepEqual(refusal(() => commands.call(mesh, { c: '99', f: 'set_context', a: [{}] })), { c: ErrorCode.CALL_FAILED, m: 'client 99 not found or gone' });
});

test('pop makes a consumer of each topic (202 for one already consumed), unpop releases them all (203 when none)', () => {
  const queue = new MemoryQueue('node1', { topicSize: 10, maxTopics: 2, topicBytes: 1 << 20, maxBytes: 1 << 20 });
  const events: string[] = [];
  const consumer: QueueConsumer = { offer: (event) => events.push(event) > 0 };
  assert.deepEqual(refusal(() => commands.pop(queue, consumer, { t: [] })), { c: 101, m: 'p.t must be a non-empty list of topic names' });
  assert.deepEqual(refusal(() => commands.unpop(queue, consumer)), { c: ErrorCode.UNCONSUME_FAILED, m: 'not consuming any topic' });
  assert.deepEqual(commands.pop(queue, consumer, { t: ['a'] }), { s: true });
  assert.deepEqual(refusal(() => commands.pop(queue, consumer, { t: ['a'] })), { c: ErrorCode.DUPLICATE_CONSUME, m: 'already consuming topic "a"' });
  queue.push({ clientId: '1', topic: 'a', dataJson: '"x"' });
  assert.equal(events.length, 1);
  assert.match(events[0], /"t":"a"/);
  assert.equal(refusal(() => commands.pop(queue, consumer, { t: ['b', 'c'] })).c, ErrorCode.CONSUME_FAILED, 'past maxTopics');
  assert.deepEqual(commands.unpop(queue, consumer), { s: true });
  assert.deepEqual(refusal(() => commands.unpop(queue, consumer)), { c: ErrorCode.UNCONSUME_FAILED, m: 'not consuming any topic' });
});

test('errorOf keeps an ApiError as it is and answers anything else as 500, to be logged', () => {
  assert.deepEqual(commands.errorOf(new ApiError(ErrorCode.SEND_FAILED, 'gone')), { c: 401, m: 'gone', expected: true });
  assert.deepEqual(commands.errorOf(new Error('boom')), { c: 500, m: 'boom', expected: false });
  assert.deepEqual(commands.errorOf('text'), { c: 500, m: 'text', expected: false });
});
