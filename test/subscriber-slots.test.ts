import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, post, type TestNode, waitFor } from './support/helpers';
import { RedisCluster, moveSlots, slotsOf } from './support/redis';
import { meshYaml } from './support/mesh';
import { TestSubscriber } from './support/mesh-node';
import { keySlot } from '../src/mesh/sharded-subscriber';
import { MAX_CHANNELS_IN_FLIGHT, LINK_CONNECTION_OPTIONS, SubscriberLink } from '../src/mesh/subscriber-link';
import type { RedisBroker } from '../src/mesh/redis-broker';
import Redis from 'ioredis';
import { connectMeshRedis } from '../src/mesh/redis-connections';
import { memoryLogger } from './support/lua-harness';

// Slots moving between Redis Cluster masters under a node's sharded subscriptions.

function brokerOf(node: TestNode): RedisBroker {
  return node.engine.broker as RedisBroker;
}

/** A 3-master Redis Cluster and two engines meshed through it (keys under `prefix`), stopped after `body`. */
async function withClusterNodes(prefix: string, body: (cluster: RedisCluster, a: TestNode, b: TestNode) => Promise<void>): Promise<void> {
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 });
  const nodes: TestNode[] = [];
  try {
    const engineYaml = meshYaml(cluster.addrs, prefix, true);
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    await body(cluster, nodes[0], nodes[1]);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await cluster.stop();
  }
}

/** The first of `prefix`0, `prefix`1, ... in hash slot `slot`. */
function nameInSlot(prefix: string, slot: number): string {
  for (let i = 0; ; i++) if (keySlot(`${prefix}${i}`) === slot) return `${prefix}${i}`;
}

test('viewers joining more channels than fit in flight on slots that just moved: the old master still gets later subscribes', () => withClusterNodes('m1:', async (cluster, a, b) => {
  const [m1, m2] = cluster.servers;
  const m1Slots = await slotsOf(m1);
  const moving = new Set([...m1Slots].slice(0, 300));
  const slotOf = (channel: string): number => keySlot(`m1:ch:${channel}`);
  // Channels m1 keeps, and more channels on the moving slots than may wait unanswered.
  const kept = Array.from({ length: 1000 }, (_, i) => `keep:${i}`).filter((channel) => m1Slots.has(slotOf(channel)) && !moving.has(slotOf(channel)));
  const burst: string[] = [];
  for (let i = 0; burst.length < MAX_CHANNELS_IN_FLIGHT + 500; i++) if (moving.has(slotOf(`burst:${i}`))) burst.push(`burst:${i}`);
  const hub = a.engine.hub;
  assert.equal(await hub.subscribe(new TestSubscriber('keeper'), [kept[0]]), null);
  // Viewers already on channels of the moving slots: their subscriptions follow the slots to m2.
  const earlier: TestSubscriber[] = [];
  for (let i = 0; earlier.length < 20; i++) {
    if (!moving.has(slotOf(`before:${i}`))) continue;
    const subscriber = new TestSubscriber(`before-${i}`);
    assert.equal(await hub.subscribe(subscriber, [`before:${i}`]), null);
    earlier.push(subscriber);
  }

  await moveSlots([...moving], m1, m2, cluster.servers);
  // Before A's slot map says so, its viewers join the moved channels: m1 answers MOVED to each SSUBSCRIBE.
  const joined = burst.map((channel, i) => {
    const subscriber = new TestSubscriber(`burst-${i}`);
    void hub.subscribe(subscriber, [channel]);
    return subscriber;
  });
  await cluster.waitHealthy();
  await waitFor('A subscribed the joined channels on their new master', async () =>
    (await m2.cli('pubsub', 'shardchannels', 'm1:ch:burst:*')).split('\n').filter(Boolean).length === burst.length, 20_000);
  await waitFor('A subscribed the earlier channels on their new master', async () =>
    (await m2.cli('pubsub', 'shardchannels', 'm1:ch:before:*')).split('\n').filter(Boolean).length === earlier.length, 10_000);

  // A viewer joins a channel m1 kept: A subscribes it there, and a publish from B reaches it.
  const late = new TestSubscriber('late');
  void hub.subscribe(late, [kept[1]]);
  await waitFor('A subscribed the new channel on m1', async () =>
    (await m1.cli('pubsub', 'shardnumsub', `m1:ch:${kept[1]}`)) === `m1:ch:${kept[1]}\n1`, 10_000);
  await waitFor('A caught up', () => brokerOf(a).subscriptions().unsynced === 0, 10_000);
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: kept[1], d: 'kept' })).json, { E: null, r: { s: 1, f: 0 } });
  assert.deepEqual(late.received, ['kept']);
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: burst[0], d: 'moved' })).json, { E: null, r: { s: 1, f: 0 } });
  assert.deepEqual(joined[0].received, ['moved']);
  const [before] = earlier[0].channels.keys();
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: before, d: 'followed' })).json, { E: null, r: { s: 1, f: 0 } });
  assert.deepEqual(earlier[0].received, ['followed']);
  // Thousands of MOVED answers, none worth a warning: the move is logged once per route.
  const warned = a.logs.filter((line) => line.includes('subscribe refused') && line.includes('"level":"warn"'));
  assert.equal(warned.length, 0, warned.slice(0, 3).join('\n'));
  // Nor are the earlier viewers' channels, which m1 unsubscribed itself as their slots left.
  assert.deepEqual([a, b].flatMap((node) => node.logs.filter((line) => line.includes('redis error'))), []);
  assert.ok(a.logs.some((line) => line.includes('sharded channels subscribed on their new master')));
}));

test('a reshard takes a node\'s inbox and a viewer\'s channel off their master: Redis\'s own unsubscribe makes the node follow, answers reach it, and no Redis error is logged', () => withClusterNodes('m2:', async (cluster, a, b) => {
  const owners = await Promise.all(cluster.servers.map((server) => slotsOf(server)));
  const ownerOf = (slot: number): number => owners.findIndex((slots) => slots.has(slot));
  // B's inbox, where the other nodes answer its publishes (private to the broker: read here only).
  const inbox = (brokerOf(b) as unknown as { inbox: string }).inbox;
  const from = ownerOf(keySlot(inbox));
  // A viewer on A, on a channel of the same master.
  let channel = '';
  for (let i = 0; channel === ''; i++) {
    const slot = keySlot(`m2:ch:video:${i}`);
    if (ownerOf(slot) === from && slot !== keySlot(inbox)) channel = `video:${i}`;
  }
  const viewer = new TestSubscriber('viewer');
  assert.equal(await a.engine.hub.subscribe(viewer, [channel]), null);

  const [source, target] = [cluster.servers[from], cluster.servers[(from + 1) % cluster.servers.length]];
  await moveSlots([keySlot(inbox), keySlot(`m2:ch:${channel}`)], source, target, cluster.servers);
  // The old master unsubscribes both itself; each node follows on that, not on its next slot-map refresh.
  for (const [node, what] of [[b, 'its inbox'], [a, 'its viewer\'s channel']] as const) {
    await waitFor(`${node === a ? 'A' : 'B'} followed the move of ${what}`, () =>
      node.logs.some((line) => line.includes('a master dropped shard channels of this node')), 20_000);
  }
  for (const name of [inbox, `m2:ch:${channel}`]) {
    await waitFor(`${name} subscribed on its new master`, async () => (await target.cli('pubsub', 'shardnumsub', name)) === `${name}\n1`, 20_000);
  }
  // B publishes, A delivers and answers in B's inbox: B counts the delivery, none failed.
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: channel, d: 'after the move' })).json, { E: null, r: { s: 1, f: 0 } });
  assert.deepEqual(viewer.received, ['after the move']);
  assert.deepEqual([a, b].flatMap((node) => node.logs.filter((line) => line.includes('redis error'))), []);
}));

test('right after a reshard, a publish sent in one batch with another command for the slot\'s old master follows the move instead of failing with MOVED', async () => {
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 });
  const { log } = memoryLogger();
  const received: string[] = [];
  const config = { addrs: cluster.addrs, cluster: true, password: '', db: 0, prefix: 'm3:', auditInterval: 0 };
  const events = (message: (channel: Buffer, message: Buffer) => void) => ({ message, up: () => undefined, down: () => undefined });
  // Two nodes' connections: the subscriber's sees its channel dropped and follows; the publisher's has no
  // subscription there, so its slot map stays as it was until its next periodic refresh (every 2 s).
  const subscriber = connectMeshRedis(config, events((_channel, message) => received.push(message.toString())), log, 2000);
  const publisher = connectMeshRedis(config, events(() => undefined), log, 2000);
  try {
    await waitFor('the mesh connections ready', () => subscriber.ready() && publisher.ready(), 20_000);
    const [m1, m2] = cluster.servers;
    const slots = [...(await slotsOf(m1))];
    const channel = nameInSlot('moving:', slots[0]);
    const key = nameInSlot('staying:', slots[1]);
    await subscriber.subscribe(channel);
    await moveSlots([slots[0]], m1, m2, cluster.servers);
    await waitFor('the channel subscribed on its new master', async () => (await m2.cli('pubsub', 'shardnumsub', channel)) === `${channel}\n1`, 20_000);
    // In one tick, the publish and a write that succeeds on m1 share ioredis's automatic pipeline to m1.
    const [published, counted] = await Promise.all([publisher.publish(channel, Buffer.from('after the move')), publisher.commands.incr(key)]);
    assert.deepEqual({ published, counted }, { published: 1, counted: 1 });
    await waitFor('the message delivered', () => received.length > 0, 10_000);
    assert.deepEqual(received, ['after the move']);
  } finally {
    subscriber.close();
    publisher.close();
    await cluster.stop();
  }
});

test('a master dropping a connection\'s last channel while it subscribes another: ioredis, thrown out of subscriber mode, is put back, and the new channel\'s messages arrive', async () => {
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 });
  const [m1, m2, m3] = cluster.servers;
  const { log } = memoryLogger();
  // One subscriber connection to m1 as the node makes them, and a plain client for the rest.
  const redis = new Redis({ port: m1.port, ...LINK_CONNECTION_OPTIONS });
  const link = new SubscriberLink(redis, log, { slotOf: keySlot, node: `127.0.0.1:${m1.port}` });
  const client = new Redis({ port: m1.port });
  const received: string[] = [];
  redis.on('smessageBuffer', (channel: Buffer, message: Buffer) => received.push(`${channel.toString()} ${message.toString()}`));
  try {
    await waitFor('the link connected', () => link.ready(), 10_000);
    const slots = [...(await slotsOf(m1))];
    const [leaving, joining] = [nameInSlot('c:', slots[0]), nameInSlot('c:', slots[1])];
    await link.add(leaving);
    const [m1Id, m2Id] = [await m1.cli('cluster', 'myid'), await m2.cli('cluster', 'myid')];
    await m2.cli('cluster', 'setslot', String(slots[0]), 'importing', m1Id);
    await m1.cli('cluster', 'setslot', String(slots[0]), 'migrating', m2Id);
    // In one tick: m1 gives the slot away (unsubscribing \`leaving\`, the connection's only channel, with a
    // count of 0) and the link subscribes \`joining\`, whose answer ioredis then takes that unsubscribe for.
    const given = client.call('cluster', 'setslot', String(slots[0]), 'node', m2Id);
    void link.add(joining);
    assert.equal(await given, 'OK');
    for (const server of [m2, m3]) await server.cli('cluster', 'setslot', String(slots[0]), 'node', m2Id);
    await waitFor('a message on the joined channel arrives', async () => {
      await client.spublish(joining, 'hello');
      return received.includes(`${joining} hello`);
    }, 10_000, 200);
  } finally {
    link.close();
    client.disconnect();
    await cluster.stop();
  }
});
