/** ConnectionContext.apply: the one write path of `conn:set_context*` (Lua) and `conn.call` (backend). */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ConnectionContext, ContextFullError } from '../src/session/context';
import { ByteBudget } from '../src/wire/byte-budget';

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

test('contexts sharing a node budget: growth is taken, a write past it changes nothing, and replace, remove, set_context and clear give back exactly what was taken', () => {
  const budget = new ByteBudget(64 * 1024);
  const contexts = [0, 1, 2].map(() => new ConnectionContext(budget));
  const sum = () => contexts.reduce((total, context) => total + context.bytes, 0);
  // A deterministic walk of writes of every kind, some past the budget, checked after each.
  let seed = 7;
  const next = (n: number) => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  let refused = 0;
  for (let step = 0; step < 5000; step++) {
    const context = contexts[next(contexts.length)];
    const key = `k${next(8)}`;
    const value = next(5) === 0 ? null : next(3) === 0 ? { list: ['x'.repeat(next(4000)), next(100)] } : 'y'.repeat(next(20_000));
    const before = { bytes: context.bytes, entries: [...context.entries()] };
    try {
      if (next(6) === 0) context.apply('set_context', { [key]: value, other: 'z'.repeat(next(3000)) });
      else if (next(40) === 0) context.clear();
      else context.apply('set_context_value', key, value);
    } catch (error) {
      assert.ok(error instanceof ContextFullError);
      assert.match(error.message, /^the node's connection contexts would hold \d+ bytes, over their limit of 65536 \(engine\.maxContextBytes\)$/);
      assert.deepEqual({ bytes: context.bytes, entries: [...context.entries()] }, before, 'a refused write changed the context');
      refused++;
    }
    assert.equal(budget.held, sum(), `step ${step}: the budget drifted from the contexts`);
    assert.ok(budget.held <= budget.limit);
  }
  assert.ok(refused > 100, `the walk reached the budget (${refused} refusals)`);
  for (const context of contexts) context.clear();
  assert.equal(budget.held, 0);
});

test('the per-context cap is checked before the node budget, and a context without a budget counts only itself', () => {
  const budget = new ByteBudget(64 * 1024 * 1024);
  const context = new ConnectionContext(budget);
  assert.throws(() => context.apply('set_context_value', 'big', 'x'.repeat(17 * 1024 * 1024)), /over its limit of 16777216$/);
  assert.equal(budget.held, 0);
  const alone = new ConnectionContext();
  alone.apply('set_context_value', 'a', 'x'.repeat(1024));
  assert.equal(budget.held, 0);
  assert.ok(alone.bytes > 1024);
});
