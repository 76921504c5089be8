import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Memberships } from '../../src/mesh/memberships';
import { storedNames } from '../support/mesh-node';

test('Memberships: a channel left and joined again is filled in place, and only held channels are seen', () => {
  const memberships = new Memberships<string>();
  memberships.join('a', 'entry a', 0);
  memberships.join('b', 'entry b', 3);
  memberships.leave(memberships.get('a')!);
  assert.equal(memberships.size, 1);
  assert.equal(memberships.get('a'), undefined);
  assert.equal(memberships.has('a'), false);
  assert.deepEqual([...memberships.keys()], ['b']);
  memberships.join('a', 'entry a2', 5);
  assert.deepEqual(memberships.get('a'), { entry: 'entry a2', slot: 5 });
  assert.deepEqual([...memberships.keys()], ['a', 'b'], 'a keeps its first place');
  assert.equal(storedNames(memberships), 2);
});

test('Memberships: left channels are purged once they pass 8 and outnumber the held ones', () => {
  const memberships = new Memberships<number>();
  memberships.join('kept', 0, 0);
  for (let i = 0; i < 1000; i++) {
    memberships.join(`video:${i}`, i, 0);
    memberships.leave(memberships.get(`video:${i}`)!);
    assert.ok(storedNames(memberships) <= 10, `after ${i + 1} videos: ${storedNames(memberships)} names stored`);
  }
  assert.equal(memberships.size, 1);
  assert.deepEqual([...memberships.keys()], ['kept']);
});
