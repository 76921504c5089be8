import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MemoryBroker } from '../../src/mesh/memory-broker';
import { Hub, type HubOptions } from '../../src/mesh/hub';
import { TestSubscriber, storedNames } from '../support/mesh-node';
import { waitFor } from '../support/helpers';

// The Hub alone, over a MemoryBroker that notes which channels the hub asks it to carry: the node's
// local subscribers, and what reaches the broker (once per channel, not once per subscriber).

class NotingBroker extends MemoryBroker {
  readonly asked: string[] = [];

  override subscribe(channel?: string): void {
    this.asked.push(`+${channel}`);
  }

  override unsubscribe(channel?: string): void {
    this.asked.push(`-${channel}`);
  }
}

async function hubNode(options: HubOptions = { lingerMs: 0 }): Promise<{ broker: NotingBroker; hub: Hub }> {
  const broker = new NotingBroker('127.0.0.1:1');
  const hub = new Hub(broker, undefined, options);
  await broker.start(hub);
  return { broker, hub };
}

test('Hub: the broker carries a channel from its first local subscriber to its last', async () => {
  const { broker, hub } = await hubNode();
  const [a, b] = [new TestSubscriber('1'), new TestSubscriber('2')];
  hub.add(a);
  hub.add(b);
  assert.equal(hub.subscribe(a, ['video:1', 'video:2']), null);
  assert.equal(hub.subscribe(b, ['video:1']), null);
  assert.equal(hub.subscribe(b, ['video:1']), null, 'subscribing twice is not an error');
  assert.deepEqual(broker.asked, ['+video:1', '+video:2']);
  assert.equal(hub.channelCount, 2);
  assert.equal(hub.count('video:1'), 2);

  assert.equal(hub.unsubscribe(a, ['video:1', 'never-subscribed']), null, 'unknown channels are ignored');
  assert.deepEqual(broker.asked, ['+video:1', '+video:2'], 'b still holds video:1');
  hub.remove(b);
  assert.deepEqual(broker.asked, ['+video:1', '+video:2', '-video:1']);
  assert.equal(hub.connection('2'), undefined);
  assert.deepEqual([...a.channels.keys()], ['video:2']);
  assert.deepEqual(hub.deliver('video:1', Buffer.from('x'), false), { s: 0, f: 0 });
});

test('Hub: a subscribe is all or none, and maxChannels counts only channels not held yet', async () => {
  const { broker, hub } = await hubNode();
  const limited = new TestSubscriber('1', 'websocket', 2);
  hub.add(limited);
  assert.match(String(hub.subscribe(limited, ['ok', ''])), /channel/);
  assert.deepEqual([...limited.channels.keys()], [], 'a bad name refuses the whole list');
  assert.equal(hub.subscribe(limited, ['a', 'b']), null);
  assert.equal(hub.subscribe(limited, ['a', 'b']), null, 'channels already held do not count again');
  assert.match(String(hub.subscribe(limited, ['c'])), /too many channels: a connection may subscribe to 2/);
  assert.deepEqual([...limited.channels.keys()], ['a', 'b']);
  assert.deepEqual(broker.asked, ['+a', '+b']);
});

test('Hub: deliveries count websocket and socket members alike in s and f; deliverTo reaches one connection', async () => {
  const { hub } = await hubNode();
  const ws = new TestSubscriber('1');
  const socket = new TestSubscriber('2', 'socket');
  const full = new TestSubscriber('3');
  full.accepts = false;
  for (const conn of [ws, socket, full]) {
    hub.add(conn);
    hub.subscribe(conn, ['room']);
  }
  assert.deepEqual(hub.deliver('room', Buffer.from('hi'), false), { s: 2, f: 1 });
  assert.deepEqual([ws.received, socket.received, full.received], [['hi'], ['hi'], []]);
  assert.equal(hub.deliverTo('2', Buffer.from('just you'), false), true);
  assert.equal(hub.deliverTo('3', Buffer.from('full'), false), false);
  assert.equal(hub.deliverTo('404', Buffer.from('nobody'), false), false);
  assert.deepEqual(socket.received, ['hi', 'just you']);
});

test('Hub.callOn: context writes apply at once, (un)subscribes go through the hub, a gone client is named', async () => {
  const { broker, hub } = await hubNode();
  const conn = new TestSubscriber('7');
  hub.add(conn);
  assert.equal(hub.callOn('7', 'set_context_value', ['uid', 1001]), null);
  assert.equal(conn.context.get('uid'), 1001);
  assert.equal(hub.callOn('7', 'set_context', [{ room: 'r1' }]), null);
  assert.equal(conn.context.get('room'), 'r1');
  assert.equal(hub.callOn('7', 'subscribe', ['room:r1']), null);
  assert.equal(hub.count('room:r1'), 1);
  assert.equal(hub.callOn('7', 'unsubscribe', ['room:r1']), null);
  assert.deepEqual(broker.asked, ['+room:r1', '-room:r1']);
  assert.equal(hub.callOn('8', 'subscribe', ['room:r1']), 'client 8 not found or gone');
});

test('Hub: a channel left by its last subscriber stays at the broker a moment, and a return costs no broker call', async () => {
  const { broker, hub } = await hubNode({ lingerMs: 50 });
  const [a, b] = [new TestSubscriber('1'), new TestSubscriber('2')];
  assert.equal(hub.subscribe(a, ['video:1']), null);
  assert.equal(hub.unsubscribe(a, ['video:1']), null);
  assert.deepEqual(broker.asked, ['+video:1'], 'not unsubscribed at once');
  assert.deepEqual([hub.channelCount, hub.idleChannelCount, hub.count('video:1')], [0, 1, 0]);
  assert.deepEqual(hub.deliver('video:1', Buffer.from('nobody'), false), { s: 0, f: 0 });

  assert.equal(hub.subscribe(b, ['video:1']), null);
  assert.deepEqual(broker.asked, ['+video:1'], 'the channel was still held');
  assert.deepEqual([hub.channelCount, hub.idleChannelCount], [1, 0]);
  assert.deepEqual(hub.deliver('video:1', Buffer.from('back'), false), { s: 1, f: 0 });
  assert.deepEqual(b.received, ['back']);

  hub.remove(b);
  await waitFor('the left channel unsubscribed', () => broker.asked.length === 2);
  assert.deepEqual(broker.asked, ['+video:1', '-video:1']);
  assert.deepEqual([hub.channelCount, hub.idleChannelCount], [0, 0]);
  assert.equal(hub.subscribe(a, ['video:1']), null);
  assert.deepEqual(broker.asked, ['+video:1', '-video:1', '+video:1'], 'subscribed again once dropped');
  hub.close();
});

test('Hub: left channels held are bounded; past maxIdle a left channel is unsubscribed at once', async () => {
  const { broker, hub } = await hubNode({ lingerMs: 60_000, maxIdle: 2 });
  const viewer = new TestSubscriber('1');
  assert.equal(hub.subscribe(viewer, ['c1', 'c2', 'c3', 'c4']), null);
  assert.equal(hub.unsubscribe(viewer, ['c1', 'c2', 'c3', 'c4']), null);
  assert.deepEqual(broker.asked, ['+c1', '+c2', '+c3', '+c4', '-c3', '-c4']);
  assert.deepEqual([hub.channelCount, hub.idleChannelCount], [0, 2]);
  hub.close();
});

test('Hub: a subscriber joining while the broker has not confirmed the channel waits for it too', async () => {
  let confirm!: () => void;
  const confirmed = new Promise<void>((resolve) => (confirm = resolve));
  class SlowBroker extends NotingBroker {
    override subscribe(channel?: string): Promise<void> {
      super.subscribe(channel);
      return confirmed;
    }
  }
  const broker = new SlowBroker('127.0.0.1:1');
  const hub = new Hub(broker, undefined, { lingerMs: 0 });
  await broker.start(hub);
  const first = hub.subscribe(new TestSubscriber('1'), ['video:9']);
  const second = hub.subscribe(new TestSubscriber('2'), ['video:9']);
  assert.ok(first instanceof Promise && second instanceof Promise, 'both wait for the broker');
  const settled: string[] = [];
  void second.then(() => settled.push('second'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(settled, [], 'not before the broker confirms');
  confirm();
  assert.deepEqual(await Promise.all([first, second]), [null, null]);
  assert.deepEqual(broker.asked, ['+video:9']);
  assert.equal(hub.subscribe(new TestSubscriber('3'), ['video:9']), null, 'once confirmed, at once');
});

test('Hub: after thousands of random joins and leaves, a channel delivers once to each member and to nobody else', async () => {
  const { hub } = await hubNode();
  let seed = 7;
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const viewers = Array.from({ length: 60 }, (_, i) => new TestSubscriber(String(i)));
  const joined = new Set<TestSubscriber>();
  for (let round = 0; round < 50; round++) {
    for (let op = 0; op < 100; op++) {
      const viewer = viewers[random(viewers.length)];
      if (joined.has(viewer)) {
        assert.equal(hub.unsubscribe(viewer, ['hot']), null);
        joined.delete(viewer);
      } else {
        assert.equal(hub.subscribe(viewer, ['hot']), null);
        joined.add(viewer);
      }
    }
    const before = viewers.map((viewer) => viewer.received.length);
    assert.deepEqual(hub.deliver('hot', Buffer.from(`m${round}`), false), { s: joined.size, f: 0 });
    assert.equal(hub.count('hot'), joined.size);
    viewers.forEach((viewer, i) => {
      const expected = joined.has(viewer) ? [`m${round}`] : [];
      assert.deepEqual(viewer.received.slice(before[i]), expected, `viewer ${i} in round ${round}`);
    });
  }
});

test('Hub: members leaving and joining while a delivery walks the channel: the left are skipped, the joined reached, each once', async () => {
  const { hub } = await hubNode();
  let republished = false;
  const late = new TestSubscriber('late');
  const viewers: TestSubscriber[] = [];
  const viewer = (id: string, during?: () => void) => {
    const subscriber = new TestSubscriber(id, 'websocket', 0, during);
    viewers.push(subscriber);
    assert.equal(hub.subscribe(subscriber, ['live']), null);
    return subscriber;
  };
  const [a] = [viewer('a')];
  const b = viewer('b', () => {
    if (b.received.length > 0) return;
    // b leaves, d (not reached yet) leaves, a newcomer joins, and a nested publish walks the same list.
    hub.unsubscribe(b, ['live']);
    hub.unsubscribe(d, ['live']);
    hub.subscribe(late, ['live']);
    if (!republished) {
      republished = true;
      assert.deepEqual(hub.deliver('live', Buffer.from('nested'), false), { s: 4, f: 0 }, 'a, c, e and the newcomer');
    }
  });
  const c = viewer('c');
  const d = viewer('d');
  const e = viewer('e');
  assert.deepEqual(hub.deliver('live', Buffer.from('first'), false), { s: 5, f: 0 }, 'a, b, c, e and the newcomer');
  assert.deepEqual([a, b, c, d, e, late].map((s) => s.received), [
    ['first', 'nested'], ['first'], ['nested', 'first'], [], ['nested', 'first'], ['nested', 'first'],
  ]);
  assert.equal(hub.count('live'), 4);
  assert.deepEqual(hub.deliver('live', Buffer.from('second'), false), { s: 4, f: 0 });
  assert.deepEqual([a, b, c, d, e, late].map((s) => s.received.at(-1)), ['second', 'first', 'second', undefined, 'second', 'second']);
  for (const subscriber of [a, c, e, late]) assert.equal(hub.unsubscribe(subscriber, ['live']), null);
  assert.equal(hub.count('live'), 0);
  assert.deepEqual(hub.deliver('live', Buffer.from('nobody'), false), { s: 0, f: 0 });
});

test('Hub: thousands of random joins and leaves over many channels match a model, and no connection grows', async () => {
  const { hub } = await hubNode();
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
      assert.ok(storedNames(viewer.channels) <= Math.max(9, 2 * model[v].size + 1), `viewer ${v} stores ${storedNames(viewer.channels)} names`);
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
