import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, post, metric, type TestNode, type TestClient, waitFor } from './support/helpers';
import { RedisCluster, RedisServer } from './support/redis';
import { meshYaml, viewer } from './support/mesh';
import { TestSubscriber } from './support/mesh-node';
import { keySlot } from '../src/mesh/sharded-subscriber';
import { bounded } from '../src/mesh/redis-connections';
import { MAX_CHANNELS_IN_FLIGHT } from '../src/mesh/subscriber-link';
import type { RedisBroker } from '../src/mesh/redis-broker';
import type { Hub } from '../src/mesh/hub';

// Viewers coming and going while a node's Redis subscriber connection is away: the node keeps the
// channels it wants, not a queue of every (un)subscribe, and on reconnect subscribes what is wanted then.

/** Join-and-leave cycles during an outage: each on its own channel (the worst case for a queue), then on one channel. */
const DISTINCT_CYCLES = 5000;
const SAME_CHANNEL_CYCLES = 5000;
/** Churn subscribers still in their channel when Redis comes back. */
const STAYING = 300;

/** Waits until the hub has unsubscribed the channels their last viewer left (it holds them a moment). */
async function letGo(hub: Hub): Promise<void> {
  await waitFor('the hub let go of the channels left', () => hub.idleChannelCount === 0);
}

function brokerOf(node: TestNode): RedisBroker {
  return node.engine.broker as RedisBroker;
}

/** `name` → `calls` of each command Redis ran since it started (INFO commandstats). */
async function commandCalls(server: RedisServer): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const match of (await server.cli('info', 'commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    calls.set(match[1], Number(match[2]));
  }
  return calls;
}

/**
 * Churns `channels` on `node`'s hub as many viewers would: DISTINCT_CYCLES subscribers join and leave a
 * channel each, then SAME_CHANNEL_CYCLES join and leave `channels[0]` one after another; the last STAYING
 * distinct channels keep their subscriber. Returns the subscribers still joined.
 */
async function churn(node: TestNode, channels: string[]): Promise<TestSubscriber[]> {
  const hub = node.engine.hub;
  const staying: TestSubscriber[] = [];
  const answers: unknown[] = [];
  for (let i = 0; i < DISTINCT_CYCLES; i++) {
    const subscriber = new TestSubscriber(`churn-${i}`);
    answers.push(hub.subscribe(subscriber, [channels[i % channels.length]]));
    if (i >= DISTINCT_CYCLES - STAYING) staying.push(subscriber);
    else answers.push(hub.unsubscribe(subscriber, [...subscriber.channels.keys()]));
  }
  for (let i = 0; i < SAME_CHANNEL_CYCLES; i++) {
    const subscriber = new TestSubscriber(`same-${i}`);
    answers.push(hub.subscribe(subscriber, [channels[0]]), hub.unsubscribe(subscriber, [channels[0]]));
  }
  // Every (un)subscribe answers success while Redis is away: none waits for Redis, nor for another.
  for (const answer of await bounded(Promise.all(answers), 30_000, 'the answers to the churn')) assert.equal(answer, null);
  return staying;
}

test('Redis down while viewers churn: the node holds one entry per wanted channel, and resubscribes those on its return', async () => {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  const clients: TestClient[] = [];
  try {
    const engineYaml = meshYaml([redis.address], 'o1:');
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    const [a, b] = nodes;
    const kept = await viewer(a.wsUrl, 1);
    const leaving = await viewer(a.wsUrl, 2);
    clients.push(kept, leaving);

    await redis.kill();
    await waitFor('A sees its subscriber connection drop', () =>
      !brokerOf(a).ready() && a.logs.some((line) => line.includes('redis disconnected') && line.includes('subscriber')), 5000);
    const joining = await viewer(a.wsUrl, 3);
    clients.push(joining);
    assert.equal(await leaving.request('{"op":"unsubscribe","channel":"2@video"}'), '{"result":true}');
    const channels = Array.from({ length: DISTINCT_CYCLES }, (_, i) => `churn:${i}`);
    const staying = await churn(a, channels);
    const hub = a.engine.hub;
    await letGo(hub);

    // Pending work is the wanted set (local channels and the inbox), not the 20,000 calls made; all of it
    // is to be subscribed when Redis returns.
    assert.equal(hub.channelCount, 2 + STAYING);
    assert.deepEqual(brokerOf(a).subscriptions(), { wanted: hub.channelCount + 1, unsynced: hub.channelCount + 1, queued: 0 });

    await redis.restart();
    await waitFor('both nodes ready again', () => brokerOf(a).ready() && brokerOf(b).ready(), 10_000);
    const expected = ['o1:ch:video:1', 'o1:ch:video:3', ...staying.map((subscriber) => `o1:ch:${[...subscriber.channels.keys()][0]}`)].sort();
    await waitFor('A resubscribed exactly its wanted channels', async () =>
      (await redis.cli('pubsub', 'channels', 'o1:ch:*')).split('\n').filter(Boolean).sort().join() === expected.join(), 10_000);
    assert.deepEqual(brokerOf(a).subscriptions(), { wanted: hub.channelCount + 1, unsynced: 0, queued: 0 });
    // A handful of bounded commands, nothing replayed: each node subscribes its wanted set in chunks of 500 channels.
    const calls = await commandCalls(redis);
    assert.ok((calls.get('subscribe') ?? 0) <= 4, `SUBSCRIBE ran ${calls.get('subscribe')} times`);
    assert.equal(calls.get('unsubscribe') ?? 0, 0);

    // A publish from the other node reaches the channel joined during the outage, and a churn channel still held.
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'video:3', d: 'joined' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await joining.next()).data, 'joined');
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'kept' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await kept.next()).data, 'kept');
    const held = [...staying[0].channels.keys()][0];
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: held, d: 'held' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.deepEqual(staying[0].received, ['held']);
    // The channel left during the outage reaches no node: A is not subscribed to it.
    assert.equal(await redis.cli('pubsub', 'numsub', 'o1:ch:video:2'), 'o1:ch:video:2\n0');
    assert.ok(a.logs.some((line) => line.includes('resubscribing channels')));
  } finally {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
});

test('Redis frozen while viewers churn: unanswered (un)subscribes stay bounded, and the node catches up on the thaw', async () => {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  try {
    const engineYaml = meshYaml([redis.address], 'o3:');
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    const [a, b] = nodes;
    const hub = a.engine.hub;
    // 10,100 joins and leaves over 200 channels (the first 100 end joined), a few per tick, so each goes out on its own.
    redis.freeze();
    const pool = Array.from({ length: 200 }, (_, i) => `frozen:${i}`);
    const answers: unknown[] = [];
    const holders = new Map<string, TestSubscriber>();
    for (let i = 0; i < 10_100; i++) {
      const channel = pool[i % pool.length];
      const held = holders.get(channel);
      if (held) {
        answers.push(hub.unsubscribe(held, [channel]));
        holders.delete(channel);
      } else {
        const subscriber = new TestSubscriber(`frozen-${i}`);
        answers.push(hub.subscribe(subscriber, [channel]));
        holders.set(channel, subscriber);
      }
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const frozen = brokerOf(a).subscriptions();
    // What waits on the node: the channels in unanswered commands (capped), plus one entry per channel.
    assert.ok(frozen.queued <= MAX_CHANNELS_IN_FLIGHT, `${frozen.queued} commands unanswered`);
    assert.ok(frozen.unsynced <= MAX_CHANNELS_IN_FLIGHT + pool.length, `${frozen.unsynced} channels unsynced`);
    // Callers are answered (after commandTimeout at most), not held until Redis reads.
    for (const answer of await bounded(Promise.all(answers), 30_000, 'the answers to the churn')) assert.equal(answer, null);

    redis.thaw();
    await letGo(hub);
    await waitFor('A caught up', () => brokerOf(a).ready() && brokerOf(a).subscriptions().unsynced === 0, 15_000);
    const expected = [...holders.keys()].map((channel) => `o3:ch:${channel}`).sort();
    assert.equal(expected.length, hub.channelCount);
    assert.deepEqual((await redis.cli('pubsub', 'channels', 'o3:ch:*')).split('\n').filter(Boolean).sort(), expected);
    const [channel, subscriber] = [...holders][0];
    await waitFor('B ready', () => brokerOf(b).ready(), 10_000);
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: channel, d: 'after the thaw' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.deepEqual(subscriber.received, ['after the thaw']);
  } finally {
    redis.thaw();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
});

test('a Redis Cluster master down while viewers churn: its link holds the wanted channels, and resubscribes those when it restarts', async () => {
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 });
  const nodes: TestNode[] = [];
  const clients: TestClient[] = [];
  try {
    const engineYaml = meshYaml(cluster.addrs, 'o2:', true);
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    const [a, b] = nodes;
    // Videos and churn channels whose shard is the master that will go down.
    const master = await cluster.masterOf('o2:ch:video:1');
    const ranges = (await master.cli('cluster', 'nodes')).split('\n').find((line) => line.includes('myself'))!.split(' ').slice(8);
    const onMaster = (key: string): boolean => {
      const slot = keySlot(key);
      return ranges.some((range) => {
        const [from, to] = range.split('-').map(Number);
        return slot >= from && slot <= (to ?? from);
      });
    };
    const videos: number[] = [];
    for (let id = 1; videos.length < 3; id++) if (onMaster(`o2:ch:video:${id}`)) videos.push(id);
    const [keptId, leftId, joinedId] = videos;
    const channels: string[] = [];
    for (let i = 0; channels.length < DISTINCT_CYCLES; i++) if (onMaster(`o2:ch:churn:${i}`)) channels.push(`churn:${i}`);
    const kept = await viewer(a.wsUrl, keptId);
    const leaving = await viewer(a.wsUrl, leftId);
    clients.push(kept, leaving);

    await master.kill();
    await waitFor('A sees its subscriber connection to the master drop', () =>
      a.logs.some((line) => line.includes('redis disconnected') && line.includes(`:${master.port}`)), 5000);
    const joining = await viewer(a.wsUrl, joinedId);
    clients.push(joining);
    assert.equal(await leaving.request(`{"op":"unsubscribe","channel":"${leftId}@video"}`), '{"result":true}');
    const staying = await churn(a, channels);
    const hub = a.engine.hub;
    await letGo(hub);
    assert.equal(hub.channelCount, 2 + STAYING);
    // The links to the other masters are idle; the one to the dead master holds its wanted channels only,
    // all to be subscribed when it returns (with A's inbox, if the inbox is on that master).
    const inboxThere = onMaster(`o2:node:${brokerOf(a).nodeId}`) ? 1 : 0;
    assert.deepEqual(brokerOf(a).subscriptions(), { wanted: hub.channelCount + 1, unsynced: hub.channelCount + inboxThere, queued: 0 });

    await master.restart();
    await cluster.waitHealthy(20_000);
    const expected = [`o2:ch:video:${keptId}`, `o2:ch:video:${joinedId}`, ...staying.map((subscriber) => `o2:ch:${[...subscriber.channels.keys()][0]}`)].sort();
    await waitFor('A resubscribed exactly its wanted channels on the restarted master', async () =>
      (await master.cli('pubsub', 'shardchannels', 'o2:ch:*')).split('\n').filter(Boolean).sort().join() === expected.join(), 15_000);
    // One SSUBSCRIBE per slot of the wanted channels at most, and nothing of the churn replayed.
    const calls = await commandCalls(master);
    // (+2: the inboxes of A and B may live on this master.)
    assert.ok((calls.get('ssubscribe') ?? 0) <= expected.length + 2, `SSUBSCRIBE ran ${calls.get('ssubscribe')} times`);
    assert.equal(calls.get('sunsubscribe') ?? 0, 0);

    await waitFor('a publish from B reaches the channel joined during the outage', async () => {
      const answer = await post(`${b.apiUrl}/v1/mesh/publish`, { c: `video:${joinedId}`, d: 'joined' });
      return answer.json.E === null && answer.json.r.s === 1;
    }, 15_000, 200);
    await waitFor('the joined viewer got it', async () => (await joining.next()).data === 'joined', 5000);
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: `video:${keptId}`, d: 'kept' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await kept.next()).data, 'kept');
    assert.equal(await master.cli('pubsub', 'shardnumsub', `o2:ch:video:${leftId}`), `o2:ch:video:${leftId}\n0`);
  } finally {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await cluster.stop();
  }
});

test('the mesh subscription gauges in /metrics: every wanted channel unsynced while Redis is down, none once the node caught up', async () => {
  const redis = await RedisServer.start();
  const clients: TestClient[] = [];
  let node: TestNode | null = null;
  try {
    node = await startNode({ engineYaml: meshYaml([redis.address], 'o4:') });
    const { apiUrl } = node;
    const gauges = async (): Promise<number[]> =>
      Promise.all(['wanted', 'unsynced'].map((name) => metric(apiUrl, new RegExp(`^connmix_mesh_channels_${name}\\b`))).concat(
        metric(apiUrl, /^connmix_mesh_subscribe_commands_pending\b/)));
    clients.push(await viewer(node.wsUrl, 1), await viewer(node.wsUrl, 2));
    // Two channels and the inbox, all subscribed.
    assert.deepEqual(await gauges(), [3, 0, 0]);

    await redis.kill();
    await waitFor('the subscriber connection dropped', () => !brokerOf(node!).ready() && node!.logs.some((line) => line.includes('redis disconnected') && line.includes('subscriber')), 5000);
    clients.push(await viewer(node.wsUrl, 3));
    assert.equal(await clients[1].request('{"op":"unsubscribe","channel":"2@video"}'), '{"result":true}');
    // Redis holds none of them now: each wanted channel is to be subscribed on its return, and nothing waits on the connection.
    await letGo(node.engine.hub);
    assert.deepEqual(await gauges(), [3, 3, 0]);

    await redis.restart();
    await waitFor('the node caught up', async () => (await gauges()).join() === '3,0,0', 15_000);
    assert.deepEqual((await redis.cli('pubsub', 'channels', 'o4:ch:*')).split('\n').sort(), ['o4:ch:video:1', 'o4:ch:video:3']);
  } finally {
    for (const client of clients) client.close();
    await node?.stop();
    await redis.stop();
  }
});

test('Redis frozen while each viewer joins and leaves a channel of its own: the node keeps nothing for the channels left', async () => {
  const redis = await RedisServer.start();
  let node: TestNode | null = null;
  try {
    node = await startNode({ engineYaml: meshYaml([redis.address], 'o5:') });
    const hub = node.engine.hub;
    redis.freeze();
    // Viewers that stay fill the unanswered commands up to their bound...
    const staying: TestSubscriber[] = [];
    const answers: unknown[] = [];
    for (let i = 0; i < MAX_CHANNELS_IN_FLIGHT + 100; i++) {
      const subscriber = new TestSubscriber(`stay-${i}`);
      answers.push(hub.subscribe(subscriber, [`stay:${i}`]));
      staying.push(subscriber);
    }
    await new Promise((resolve) => setImmediate(resolve));
    // ...then 20,000 come and go, each on a channel of its own (a private channel per user, say).
    for (let i = 0; i < 20_000; i++) {
      const subscriber = new TestSubscriber(`own-${i}`);
      answers.push(hub.subscribe(subscriber, [`own:${i}`]), hub.unsubscribe(subscriber, [`own:${i}`]));
      if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // The channels left wait a moment (at most 10,000 of them), then go.
    assert.ok(hub.idleChannelCount <= 10_000, `${hub.idleChannelCount} left channels held`);
    await letGo(hub);
    const frozen = brokerOf(node).subscriptions();
    assert.equal(frozen.wanted, staying.length + 1);
    // What the node holds for Redis is bounded by what it wants, not by the channels that came and went.
    assert.ok(frozen.unsynced <= frozen.wanted, `${frozen.unsynced} channels unsynced for ${frozen.wanted} wanted`);
    for (const answer of await bounded(Promise.all(answers), 30_000, 'the answers to the churn')) assert.equal(answer, null);

    redis.thaw();
    await waitFor('the node caught up', () => brokerOf(node!).ready() && brokerOf(node!).subscriptions().unsynced === 0, 15_000);
    const expected = staying.map((_, i) => `o5:ch:stay:${i}`).sort();
    assert.deepEqual((await redis.cli('pubsub', 'channels', 'o5:ch:*')).split('\n').sort(), expected);
  } finally {
    redis.thaw();
    await node?.stop();
    await redis.stop();
  }
});
