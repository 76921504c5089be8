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
