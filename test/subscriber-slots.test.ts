import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startNode, post, type TestNode, waitFor } from './support/helpers';
import { RedisCluster, type RedisServer } from './support/redis';
import { meshYaml } from './support/mesh';
import { TestSubscriber } from './support/mesh-node';
import { keySlot } from '../src/mesh/sharded-subscriber';
import { MAX_CHANNELS_IN_FLIGHT } from '../src/mesh/subscriber-link';
import type { RedisBroker } from '../src/mesh/redis-broker';

// Slots moving between Redis Cluster masters under a node's sharded subscriptions.

function brokerOf(node: TestNode): RedisBroker {
  return node.engine.broker as RedisBroker;
}

/** Runs `commands`, one per line, through one redis-cli connection to `server` (bounded to 10 s). */
function pipe(server: RedisServer, commands: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port)], { stdio: ['pipe', 'ignore', 'inherit'], timeout: 10_000 });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli exited with ${code}`))));
    child.stdin.end(`${commands.join('\n')}\n`);
  });
}

/** The slots `server` serves, as it says itself. */
async function slotsOf(server: RedisServer): Promise<Set<number>> {
  const line = (await server.cli('cluster', 'nodes')).split('\n').find((candidate) => candidate.includes('myself')) ?? '';
  const slots = new Set<number>();
  for (const range of line.split(' ').slice(8)) {
    const [from, to] = range.split('-').map(Number);
    for (let slot = from; slot <= (to ?? from); slot++) slots.add(slot);
  }
  return slots;
}

/** Moves empty `slots` from master `from` to master `to` as a reshard does, telling every master in `all`. */
async function moveSlots(slots: number[], from: RedisServer, to: RedisServer, all: RedisServer[]): Promise<void> {
  const [fromId, toId] = await Promise.all([from.cli('cluster', 'myid'), to.cli('cluster', 'myid')]);
  await pipe(to, slots.map((slot) => `cluster setslot ${slot} importing ${fromId}`));
  await pipe(from, slots.map((slot) => `cluster setslot ${slot} migrating ${toId}`));
  for (const server of [to, from, ...all.filter((other) => other !== from && other !== to)]) {
    await pipe(server, slots.map((slot) => `cluster setslot ${slot} node ${toId}`));
  }
}

test('viewers joining more channels than fit in flight on slots that just moved: the old master still gets later subscribes', async () => {
  const cluster = await RedisCluster.start({ masters: 3, replicas: 0 });
  const nodes: TestNode[] = [];
  try {
    const engineYaml = meshYaml(cluster.addrs, 'm1:', true);
    nodes.push(await startNode({ engineYaml }), await startNode({ engineYaml }));
    const [a, b] = nodes;
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
    const [before] = earlier[0].channels;
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: before, d: 'followed' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.deepEqual(earlier[0].received, ['followed']);
    // Thousands of MOVED answers, none worth a warning: the move is logged once per route.
    const warned = a.logs.filter((line) => line.includes('subscribe refused') && line.includes('"level":"warn"'));
    assert.equal(warned.length, 0, warned.slice(0, 3).join('\n'));
    assert.ok(a.logs.some((line) => line.includes('sharded channels subscribed on their new master')));
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await cluster.stop();
  }
});
