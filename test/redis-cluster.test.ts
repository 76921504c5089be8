import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, post, get, type TestNode, waitFor } from './support/helpers';
import { RedisCluster } from './support/redis';
import { meshYaml, SEED_WITH_TEST_OPS, viewer, barrageThroughEveryNode } from './support/mesh';
import { keySlot } from '../src/mesh/sharded-subscriber';

// Two nodes on a Redis Cluster of 3 masters with one replica each: sharded pub/sub, and a failover.
const CHANNEL_KEY = 'c1:ch:video:100001';

let cluster: RedisCluster;
let a: TestNode;
let b: TestNode;
let c: TestNode;

before(async () => {
  cluster = await RedisCluster.start({ masters: 3, replicas: 1 });
  const engineYaml = meshYaml(cluster.addrs, 'c1:', true);
  [a, b, c] = await Promise.all([0, 1, 2].map(() => startNode({ engineYaml, lua: SEED_WITH_TEST_OPS })));
});

after(async () => {
  await Promise.all([a, b, c].map((node) => node?.stop()));
  await cluster?.stop();
});

/** Messages up to and including `data`, waiting at most `ms` (earlier ones may be retries of a publish). */
async function receiveUntil(client: TestClient, data: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await client.next(Math.max(1, deadline - Date.now()))).data !== data);
}

test('the seed barrage across nodes over sharded pub/sub, with exact counts', async () => {
  const viewers = [await viewer(a.wsUrl, 100001), await viewer(a.wsUrl, 100001), await viewer(b.wsUrl, 100001)];
  const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: 'comment' });
  assert.deepEqual(answer.json, { E: null, r: { s: 3, f: 0 } });
  for (const client of viewers) assert.equal((await client.next()).data, 'comment');
  // SSUBSCRIBE on the channel's shard only; no classic channel anywhere.
  const owner = await cluster.masterOf(CHANNEL_KEY);
  assert.match(await owner.cli('pubsub', 'shardchannels', 'c1:ch:*'), new RegExp(CHANNEL_KEY));
  assert.equal(await owner.cli('pubsub', 'shardnumsub', CHANNEL_KEY), `${CHANNEL_KEY}\n2`);
  for (const server of cluster.alive) assert.equal(await server.cli('pubsub', 'channels'), '', `classic channels on ${server.port}`);
  for (const client of viewers) client.close();
  await waitFor('unsubscribed in the shard', async () => (await owner.cli('pubsub', 'shardnumsub', CHANNEL_KEY)).endsWith('\n0'), 3000);
});

test('the seed barrage through any node of a 3-node mesh over Redis Cluster', async () => {
  await barrageThroughEveryNode([a, b, c], 100004);
});

test('keySlot agrees with CLUSTER KEYSLOT, hash tags and UTF-8 included', async () => {
  const probe = cluster.alive[0];
  for (const key of ['', 'a', CHANNEL_KEY, 'c1:{nodes}:7', '{}x', 'x{}y{z}', 'video:弹幕😀', 'c1:node:abc']) {
    assert.equal(keySlot(key), Number(await probe.cli('cluster', 'keyslot', key)), key);
  }
});

test('subscribe and unsubscribe racing on one channel end in the last call\'s state on its shard', async () => {
  const broker = a.engine.broker;
  const calls: (void | Promise<void>)[] = [];
  for (let i = 0; i < 10; i++) calls.push(broker.subscribe('race:2'), broker.unsubscribe('race:2'));
  calls.push(broker.subscribe('race:2'));
  await Promise.all(calls);
  const owner = await cluster.masterOf('c1:ch:race:2');
  assert.equal(await owner.cli('pubsub', 'shardnumsub', 'c1:ch:race:2'), 'c1:ch:race:2\n1');
  await broker.unsubscribe('race:2');
  assert.equal(await owner.cli('pubsub', 'shardnumsub', 'c1:ch:race:2'), 'c1:ch:race:2\n0');
});

test('send and the node list work on the cluster', async () => {
  const target = await TestClient.open(b.wsUrl);
  const clientId = await target.request('!id');
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/send`, { c: clientId, d: 'hi' })).json, { E: null, r: { s: true } });
  assert.equal((await target.next()).data, 'hi');
  const ids = (await get(`${b.apiUrl}/v1/nodes`)).json.nodes.map((node: { id: string }) => node.id).sort();
  assert.deepEqual(ids, [a, b, c].map((node) => node.engine.broker.nodeId).sort());
  target.close();
});

test('a master killed and its replica promoted: delivery resumes without clients reconnecting', async () => {
  const viewers = [await viewer(a.wsUrl, 100001), await viewer(b.wsUrl, 100001)];
  const publisher = await TestClient.open(b.wsUrl);
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: 'before' })).json.r, { s: 2, f: 0 });
  for (const client of viewers) assert.equal((await client.next()).data, 'before');

  const master = await cluster.masterOf(CHANNEL_KEY);
  await master.kill();
  await cluster.waitHealthy(15_000);
  const promoted = await cluster.masterOf(CHANNEL_KEY);
  assert.notEqual(promoted.port, master.port);

  // Publish until both nodes count their subscriber again; each try answers (an error or counts) in bounded time.
  let attempt = 0;
  await waitFor('delivery resumed after failover', async () => {
    const started = Date.now();
    const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: `after ${++attempt}` });
    assert.ok(Date.now() - started < 15_000, `a publish took ${Date.now() - started} ms`);
    return answer.json.E === null && answer.json.r.s === 2;
  }, 20_000, 200);
  for (const client of viewers) await receiveUntil(client, `after ${attempt}`);
  assert.equal(await publisher.request('!pub video:100001 from lua'), '2,0');
  for (const client of viewers) await receiveUntil(client, 'from lua');
  // Each node says where its sharded channels went.
  for (const node of [a, b]) assert.ok(node.logs.some((line) => line.includes('sharded channels subscribed on their new master')));
  for (const client of [...viewers, publisher]) client.close();
});
