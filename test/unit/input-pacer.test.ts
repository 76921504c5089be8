import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { InputPacer, PACE_SMALL_BYTES } from '../../src/server/input-pacer';

// When protocol_input runs again after answering 0; the timer's own firing is covered by test/socket.test.ts.

test('input pacer: small or first input runs at once; past 4 KiB only a growth of a quarter does, or a shrink', () => {
  let fired = 0;
  const pacer = new InputPacer(() => fired++);
  assert.equal(pacer.due(100_000), true, 'nothing seen yet');
  pacer.waiting(40_000);
  assert.equal(pacer.due(40_001), false);
  assert.equal(pacer.due(49_999), false);
  assert.equal(pacer.due(50_000), true, 'grew by a quarter');
  pacer.waiting(PACE_SMALL_BYTES - 10);
  assert.equal(pacer.due(PACE_SMALL_BYTES), true, 'small input');
  pacer.waiting(40_000);
  assert.equal(pacer.due(30_000), true, 'cleared since: none of it seen');
  pacer.waiting(40_000);
  pacer.took();
  assert.equal(pacer.due(40_001), true, 'after a packet, what is left is new');
  pacer.waiting(40_000);
  assert.equal(pacer.due(40_001), false);
  pacer.stop();
  assert.equal(fired, 0);
});
