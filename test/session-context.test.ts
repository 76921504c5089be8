/** ConnectionContext.apply: the one write path of `conn:set_context*` (Lua) and `conn.call` (backend). */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ConnectionContext } from '../src/session/context';

test('set_context_value sets one key, and null or a missing value removes it', () => {
  const context = new ConnectionContext();
  context.apply('set_context_value', 'uid', 7);
  context.apply('set_context_value', 'room', 'a');
  assert.deepEqual([...context.entries()], [['uid', 7], ['room', 'a']]);
  context.apply('set_context_value', 'uid', null);
  context.apply('set_context_value', 'room');
  assert.equal(context.size, 0);
});

test('set_context replaces every value with the table given (an array by its indexes)', () => {
  const context = new ConnectionContext();
  context.apply('set_context_value', 'old', true);
  context.apply('set_context', { uid: 7, tags: ['x'] });
  assert.deepEqual(Object.fromEntries(context.entries()), { uid: 7, tags: ['x'] });
  context.apply('set_context', ['first', 'second']);
  assert.deepEqual(Object.fromEntries(context.entries()), { 0: 'first', 1: 'second' });
});

test('a write through apply wakes a hook waiting for that key', async () => {
  const context = new ConnectionContext();
  const waited = context.waitFor('token', 10_000);
  context.apply('set_context', { token: 'abc' });
  assert.equal(await waited, 'abc');
});

test('bytes follows what the values hold through sets, replacements, removals and clears, however deep a value nests', () => {
  const context = new ConnectionContext();
  const mib = 'x'.repeat(2 ** 20);
  context.apply('set_context_value', 'a', mib);
  context.apply('set_context_value', 'b', { list: [mib, mib], bytes: new Uint8Array(2 ** 20) });
  const held = context.bytes;
  assert.ok(held > 4 * 2 ** 20 && held < 4 * 2 ** 20 + 4096, `${held}`);
  context.apply('set_context_value', 'a', 1);
  assert.ok(context.bytes < held - 2 ** 20 + 64);
  context.apply('set_context_value', 'b');
  assert.ok(context.bytes < 256);
  // Parsed JSON from conn.call may nest deeper than the JS stack: the estimate must not recurse.
  let deep: unknown = 'leaf';
  for (let i = 0; i < 200_000; i++) deep = [deep];
  context.apply('set_context', { deep });
  assert.ok(context.bytes > 200_000);
  context.clear();
  assert.equal(context.bytes, 0);
});
