import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Memberships } from '../../src/mesh/memberships';
import { MemoryBroker } from '../../src/mesh/memory-broker';
import { Hub } from '../../src/mesh/hub';
import { TestSubscriber } from '../support/mesh-node';

/** How many names the memberships' map holds, tombstones included. */
function stored(memberships: Memberships<unknown>): number {
  return (memberships as unknown as { byName: Map<string, unknown> }).byName.size;
}

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
  assert.equal(stored(memberships), 2);
});

test('Memberships: left channels are purged once they pass 8 and outnumber the held ones', () => {
  const memberships = new Memberships<number>();
  memberships.join('kept', 0, 0);
  for (let i = 0; i < 1000; i++) {
    memberships.join(`video:${i}`, i, 0);
    memberships.leave(memberships.get(`video:${i}`)!);
    assert.ok(stored(memberships) <= 10, `after ${i + 1} videos: ${stored(memberships)} names stored`);
  }
  assert.equal(memberships.size, 1);
  assert.deepEqual([...memberships.keys()], ['kept']);
});

test('Hub: thousands of random joins and leaves over many channels match a model, and no connection grows', async () => {
  const broker = new MemoryBroker('127.0.0.1:1');
  const hub = new Hub(broker, undefined, { lingerMs: 0 });
  await broker.start(hub);
  let seed = 11;
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const viewers = Array.from({ length: 12 }, (_, i) => new TestSubscriber(String(i)));
  const channels = Array.from({ length: 40 }, (_, i) => `video:${i}`);
  const model = viewers.map(() => new Set<string>());
  for (let round = 0; round < 40; round++) {
    for (let op = 0; op < 200; op++) {
      const v = random(viewers.length);
      const channel = channels[random(channels.length)];
      if (model[v].has(channel)) {
        assert.equal(hub.unsubscribe(viewers[v], [channel]), null);
        model[v].delete(channel);
      } else {
        assert.equal(hub.subscribe(viewers[v], [channel]), null);
        model[v].add(channel);
      }
    }
    viewers.forEach((viewer, v) => {
      assert.deepEqual([...viewer.channels.keys()].sort(), [...model[v]].sort(), `viewer ${v} in round ${round}`);
      assert.ok(stored(viewer.channels) <= Math.max(9, 2 * model[v].size + 1), `viewer ${v} stores ${stored(viewer.channels)} names`);
    });
    const channel = channels[random(channels.length)];
    const members = viewers.filter((_, v) => model[v].has(channel));
    const before = viewers.map((viewer) => viewer.received.length);
    assert.deepEqual(hub.deliver(channel, Buffer.from(`m${round}`), false), { s: members.length, f: 0 });
    viewers.forEach((viewer, v) => {
      assert.deepEqual(viewer.received.slice(before[v]), model[v].has(channel) ? [`m${round}`] : [], `viewer ${v}, ${channel}`);
    });
  }
  for (const viewer of viewers) hub.remove(viewer);
  assert.equal(hub.channelCount, 0);
});
