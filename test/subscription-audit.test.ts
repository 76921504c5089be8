import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startNode, post, metric, sleep, type TestNode, type TestClient, waitFor } from './support/helpers';
import { RedisCluster, RedisServer, moveSlots, slotsOf } from './support/redis';
import { HidingProxy } from './support/hiding-proxy';
import { meshYaml, viewer } from './support/mesh';
import { TestSubscriber } from './support/mesh-node';
import { memoryLogger } from './support/lua-harness';
import { keySlot } from '../src/mesh/sharded-subscriber';
import { SubscriberLink } from '../src/mesh/subscriber-link';
import type { RedisBroker } from '../src/mesh/redis-broker';

// The subscription audit: Redis losing (or gaining) a node's subscriptions without its subscriber
// connection dropping, and the audit noticing and repairing it.

/** Seconds between audits in these tests (30 by default). */
const AUDIT_INTERVAL = 0.2;
const REPAIRS = /^connmix_mesh_subscription_repairs_total/;

function brokerOf(node: TestNode): RedisBroker {
  return node.engine.broker as RedisBroker;
}

/** How many times Redis ran CLIENT LIST since it started (INFO commandstats). */
async function clientListCalls(server: RedisServer): Promise<number> {
  const match = /^cmdstat_client\|list:calls=(\d+)/m.exec(await server.cli('info', 'commandstats'));
  return match ? Number(match[1]) : 0;
}

/**
 * Publishes `channel` from `from` until one publish reaches a subscriber (each with its own text),
 * then returns the texts `client` received from the first to that one, in order.
 */
async function publishUntilDelivered(from: TestNode, channel: string, client: TestClient): Promise<{ sent: string; got: string[] }> {
  let attempt = 0;
  let sent = '';
  await waitFor(`a publish on ${channel} is delivered`, async () => {
    sent = `attempt ${++attempt}`;
    return (await post(`${from.apiUrl}/v1/mesh/publish`, { c: channel, d: sent })).json.r?.s === 1;
  }, 30_000, 200);
  const got: string[] = [];
  while (got[got.length - 1] !== sent) got.push((await client.next()).data);
  return { sent, got };
}

test('a Redis restart hidden by a proxy: the audit finds the subscriber connection gone, and deliveries resume', async () => {
  const redis = await RedisServer.start();
  const proxy = await HidingProxy.start(redis.port);
  const nodes: TestNode[] = [];
  const clients: TestClient[] = [];
  try {
    // A reaches Redis through the proxy, B directly.
    nodes.push(
      await startNode({ engineYaml: meshYaml([proxy.address], 'a1:', false, AUDIT_INTERVAL) }),
      await startNode({ engineYaml: meshYaml([redis.address], 'a1:', false, AUDIT_INTERVAL) }),
    );
    const [a, b] = nodes;
    const watching = await viewer(a.wsUrl, 1);
    clients.push(watching);
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'before' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await watching.next()).data, 'before');

    await redis.kill();
    await redis.restart();
    await waitFor('B back', () => brokerOf(b).ready(), 10_000);
    // A's connections stayed open through the restart, but the new Redis has none of its subscriptions.
    const { sent, got } = await publishUntilDelivered(b, 'video:1', watching);
    assert.ok(got.every((text) => /^attempt \d+$/.test(text)), got.join());
    assert.equal(got[got.length - 1], sent);

    assert.ok((await metric(a.apiUrl, REPAIRS)) >= 1);
    const repaired = a.logs.findIndex((line) => line.includes('no longer knows the subscriber connection') && line.includes('"level":"warn"'));
    assert.ok(repaired >= 0, 'the repair is logged');
    // Nothing dropped A's subscriber connection before the audit did.
    const dropped = a.logs.findIndex((line) => line.includes('redis disconnected') && line.includes('subscriber'));
    assert.ok(dropped < 0 || dropped > repaired, a.logs.slice(dropped, dropped + 1).join());
    // The new Redis knows A's subscriber connection by its name, with its inbox and the video.
    const name = `connmix-sub-${a.engine.broker.nodeId}`;
    await waitFor('A subscriber named in CLIENT LIST', async () => / sub=2 /.test((await redis.cli('client', 'list')).split('\n').find((line) => line.includes(` name=${name} `)) ?? ''), 10_000);
    assert.equal(await metric(b.apiUrl, REPAIRS), 0);
  } finally {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await proxy.close();
    await redis.stop();
  }
});

test('viewers churning in a normal run: the audit runs often and finds nothing to repair', async () => {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  try {
    const engineYaml = meshYaml([redis.address], 'a2:', false, 0.05);
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    const [a, b] = nodes;
    const hub = a.engine.hub;
    const pool = Array.from({ length: 300 }, (_, i) => `churn:${i}`);
    const holders = new Map<string, TestSubscriber>();
    // Joins and leaves in bursts, with pauses that let the link settle and audits run in between.
    const until = Date.now() + 3000;
    for (let i = 0; Date.now() < until; i++) {
      for (let j = 0; j < 20; j++) {
        const channel = pool[Math.floor(Math.random() * pool.length)];
        const held = holders.get(channel);
        if (held) {
          void hub.unsubscribe(held, [channel]);
          holders.delete(channel);
        } else {
          const subscriber = new TestSubscriber(`churn-${i}-${j}`);
          void hub.subscribe(subscriber, [channel]);
          holders.set(channel, subscriber);
        }
      }
      await sleep(Math.random() * 30);
    }
    await waitFor('A settled, the channels left let go', () => hub.idleChannelCount === 0 && brokerOf(a).subscriptions().unsynced === 0, 10_000);
    const before = await clientListCalls(redis);
    await waitFor('more audits ran once settled', async () => (await clientListCalls(redis)) >= before + 10, 10_000);

    assert.ok(before >= 10, `${before} audits during the churn`);
    assert.match(await (await fetch(`${a.apiUrl}/metrics`)).text(), /^connmix_mesh_subscription_repairs_total\{[^}]*\} 0$/m);
    for (const node of nodes) assert.equal(await metric(node.apiUrl, REPAIRS), 0);
    const audits = /subscribing every wanted channel again|reconnecting it|subscription audit/;
    assert.deepEqual(nodes.flatMap((node) => node.logs.filter((line) => audits.test(line))), []);
    // And Redis holds exactly what A wants.
    const expected = [...holders.keys()].map((channel) => `a2:ch:${channel}`).sort();
    assert.deepEqual((await redis.cli('pubsub', 'channels', 'a2:ch:*')).split('\n').filter(Boolean).sort(), expected);
    const [channel, subscriber] = [...holders][0];
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: channel, d: 'still here' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.deepEqual(subscriber.received, ['still here']);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
});

test('a subscriber connection that lost a channel, or holds one it never asked for, behind its link: both are repaired', async () => {
  const redis = await RedisServer.start();
  const { log, lines } = memoryLogger();
  const commands = new Redis({ port: redis.port, host: '127.0.0.1', enableOfflineQueue: false, commandTimeout: 1000, maxRetriesPerRequest: 0 });
  const subscriber = new Redis({ port: redis.port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResubscribe: false });
  let repairs = 0;
  const link = new SubscriberLink(subscriber, log, null, { every: 50, name: 'audit-test', commands: () => commands, repaired: () => repairs++ });
  const held = async (): Promise<string> => (await redis.cli('pubsub', 'channels', 'l:*')).split('\n').filter(Boolean).sort().join();
  try {
    await Promise.all([link.add('l:a'), link.add('l:b'), link.add('l:c')]);
    assert.equal(await held(), 'l:a,l:b,l:c');
    // A bookkeeping bug: the connection leaves a channel without its link knowing.
    await subscriber.unsubscribe('l:b');
    await waitFor('l:b subscribed again', async () => (await held()) === 'l:a,l:b,l:c', 10_000);
    assert.equal(repairs, 1);
    assert.equal(lines.filter((line) => line.includes('subscribing every wanted channel again')).length, 1);

    // Another: the connection joins a channel nobody wants.
    await subscriber.subscribe('l:stray');
    await waitFor('l:stray gone', async () => (await held()) === 'l:a,l:b,l:c', 10_000);
    assert.equal(repairs, 2);
    assert.equal(lines.filter((line) => line.includes('holds subscriptions the node did not ask for')).length, 1);
    await waitFor('the link back', () => link.ready() && link.stats().unsynced === 0, 10_000);
    assert.equal(repairs, 2);
  } finally {
    link.close();
    commands.disconnect();
    await redis.stop();
  }
});

test('a Redis Cluster slot moving away and back at once: the old master\'s own unsubscribe makes the node follow it there and back, and its channels are subscribed again', async () => {
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 });
  const nodes: TestNode[] = [];
  try {
    const engineYaml = meshYaml(cluster.addrs, 'a3:', true, AUDIT_INTERVAL);
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    const [a, b] = nodes;
    const [m1, m2] = cluster.servers;
    const m1Slots = await slotsOf(m1);
    const slotOf = (channel: string): number => keySlot(`a3:ch:${channel}`);
    // A channel on m1 whose slot holds no key (a slot with keys cannot move without them), and one m1 keeps.
    let moving = '';
    for (let i = 0; !moving; i++) {
      const slot = slotOf(`round:${i}`);
      if (m1Slots.has(slot) && (await m1.cli('cluster', 'countkeysinslot', String(slot))) === '0') moving = `round:${i}`;
    }
    let kept = '';
    for (let i = 0; !kept; i++) if (m1Slots.has(slotOf(`kept:${i}`)) && slotOf(`kept:${i}`) !== slotOf(moving)) kept = `kept:${i}`;
    const hub = a.engine.hub;
    const roundTripper = new TestSubscriber('round');
    const keeper = new TestSubscriber('keeper');
    assert.equal(await hub.subscribe(roundTripper, [moving]), null);
    assert.equal(await hub.subscribe(keeper, [kept]), null);
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: moving, d: 'before' })).json, { E: null, r: { s: 1, f: 0 } });

    // Out and back at once: m1 drops the channel's subscription as the slot leaves and tells A, whose
    // periodic refresh (every 2 s) could miss the round trip; A refreshes its slot map on being told.
    await moveSlots([slotOf(moving)], m1, m2, cluster.servers);
    await moveSlots([slotOf(moving)], m2, m1, cluster.servers);
    await cluster.waitHealthy();
    await waitFor('a publish from B reaches the channel again', async () =>
      (await post(`${b.apiUrl}/v1/mesh/publish`, { c: moving, d: 'after' })).json.r?.s === 1, 30_000, 200);
    assert.equal(roundTripper.received[0], 'before');
    assert.ok(roundTripper.received.slice(1).every((text) => text === 'after') && roundTripper.received.length >= 2);
    assert.ok(a.logs.some((line) => line.includes('a master dropped shard channels of this node') && line.includes(`:${m1.port}`)));
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: kept, d: 'kept' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.deepEqual(keeper.received, ['kept']);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await cluster.stop();
  }
});
