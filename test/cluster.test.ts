import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import Redis from 'ioredis';
import { startNode, freePort, TestClient, post, get, EVAL, type TestNode, waitFor } from './support/helpers';
import { ApiClient } from './support/api-client';
import { memoryLogger } from './support/lua-harness';
import { RedisServer } from './support/redis';
import { meshYaml, SEED_WITH_TEST_OPS, viewer, barrageThroughEveryNode } from './support/mesh';
import { RedisBroker } from '../src/mesh/redis-broker';
import { ApiServer } from '../src/api/api-server';
import type { LocalDelivery } from '../src/mesh/broker';

// Several nodes in this process sharing one standalone redis-server: the seed barrage across nodes,
// exact counts, subscriptions in Redis, prefixes, sends, the node list.
const COMMENT = '{"event":"@video","data":{"uid":1001,"video_id":100001,"msg":"Hello,World!"}}';

let redis: RedisServer;
let a: TestNode;
let b: TestNode;
const extra: TestNode[] = [];

async function meshNode(prefix = 't1:'): Promise<TestNode> {
  return startNode({ engineYaml: meshYaml([redis.address], prefix), lua: SEED_WITH_TEST_OPS });
}

before(async () => {
  redis = await RedisServer.start();
  [a, b] = await Promise.all([meshNode(), meshNode()]);
});

after(async () => {
  await Promise.all([a, b, ...extra].map((node) => node?.stop()));
  await redis?.stop();
});

test('seed barrage across nodes: viewer on B, publish on A, exact d', async () => {
  const client = await viewer(b.wsUrl, 100001);
  const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: COMMENT });
  assert.deepEqual(answer.json, { E: null, r: { s: 1, f: 0 } });
  const message = await client.next();
  assert.equal(message.data, COMMENT);
  assert.equal(message.binary, false);
  client.close();
});

test('counts are summed over nodes: 3 on A + 2 on B give s: 5, from either API and from Lua', async () => {
  const viewers = await Promise.all([a, a, a, b, b].map((node) => viewer(node.wsUrl, 5)));
  for (const node of [a, b]) {
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:5', d: `via ${node.apiUrl}` })).json, { E: null, r: { s: 5, f: 0 } });
    for (const client of viewers) assert.equal((await client.next()).data, `via ${node.apiUrl}`);
  }
  const publisher = await TestClient.open(a.wsUrl);
  assert.equal(await publisher.request('!pub video:5 from lua'), '5,0');
  for (const client of viewers) assert.equal((await client.next()).data, 'from lua');
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'video:404', d: 'x' })).json.r, { s: 0, f: 0 });
  for (const client of [...viewers, publisher]) client.close();
});

test('binary payloads cross nodes as one binary frame with the exact bytes', async () => {
  const client = await viewer(b.wsUrl, 9);
  const bytes = Buffer.from([0, 1, 2, 0xfd, 0xfe, 0xff]);
  const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:9', d: bytes.toString('base64'), t: 'binary' });
  assert.deepEqual(answer.json.r, { s: 1, f: 0 });
  const message = await client.next();
  assert.equal(message.binary, true);
  assert.deepEqual(message.raw, bytes);
  client.close();
});

test('a channel is subscribed in Redis while a node has local subscribers, once per node', async () => {
  const numsub = async (): Promise<number> => Number((await redis.cli('pubsub', 'numsub', 't1:ch:video:31')).split('\n')[1]);
  const [b1, b2] = [await viewer(b.wsUrl, 31), await viewer(b.wsUrl, 31)];
  assert.equal(await numsub(), 1);
  const a1 = await viewer(a.wsUrl, 31);
  assert.equal(await numsub(), 2);
  assert.equal(await b1.request('{"op":"unsubscribe","channel":"31@video"}'), '{"result":true}');
  assert.equal(await numsub(), 2, 'B still has a subscriber');
  b2.close(); // closing the last local subscriber unsubscribes too, a moment later
  await waitFor('B unsubscribed in Redis', async () => (await numsub()) === 1);
  assert.equal(await a1.request('{"op":"unsubscribe","channel":"31@video"}'), '{"result":true}');
  await waitFor('A unsubscribed in Redis', async () => (await numsub()) === 0);
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:31', d: 'x' })).json.r, { s: 0, f: 0 });
  for (const client of [a1, b1]) client.close();
});

test('subscribe and unsubscribe racing on one channel end in the last call\'s state', async () => {
  const broker = b.engine.broker;
  const channel = 'race:1';
  const calls: (void | Promise<void>)[] = [];
  for (let i = 0; i < 10; i++) calls.push(broker.subscribe(channel), broker.unsubscribe(channel));
  calls.push(broker.subscribe(channel));
  await Promise.all(calls);
  assert.equal(await redis.cli('pubsub', 'numsub', 't1:ch:race:1'), 't1:ch:race:1\n1');
  await broker.unsubscribe(channel);
  assert.equal(await redis.cli('pubsub', 'numsub', 't1:ch:race:1'), 't1:ch:race:1\n0');
});

test('meshes with different prefixes on one Redis do not see each other', async () => {
  const other = await meshNode('t2:');
  extra.push(other);
  const [mine, theirs] = [await viewer(b.wsUrl, 6), await viewer(other.wsUrl, 6)];
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:6', d: 'mesh 1' })).json.r, { s: 1, f: 0 });
  assert.deepEqual((await post(`${other.apiUrl}/v1/mesh/publish`, { c: 'video:6', d: 'mesh 2' })).json.r, { s: 1, f: 0 });
  assert.equal((await mine.next()).data, 'mesh 1');
  assert.equal((await theirs.next()).data, 'mesh 2');
  assert.ok(await mine.silentFor(100));
  assert.ok(await theirs.silentFor(0));
  const nodes = (await get(`${other.apiUrl}/v1/nodes`)).json.nodes;
  assert.deepEqual(nodes.map((node: { id: string }) => node.id), [other.engine.broker.nodeId]);
  for (const client of [mine, theirs]) client.close();
});

test('send reaches a client on another node; unknown clients and nodes answer 401', async () => {
  const target = await TestClient.open(b.wsUrl);
  const clientId = await target.request('!id');
  const local = await TestClient.open(a.wsUrl);
  const localId = await local.request('!id');
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/send`, { c: clientId, d: 'hello B' })).json, { E: null, r: { s: true } });
  assert.equal((await target.next()).data, 'hello B');
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/send`, { c: localId, d: 'hello A' })).json, { E: null, r: { s: true } });
  assert.equal((await local.next()).data, 'hello A');
  target.close();
  await target.waitClosed();
  await waitFor('B forgot the closed client', async () => (await post(`${a.apiUrl}/v1/mesh/send`, { c: clientId, d: 'x' })).json.E?.c === 401, 3000);
  // A client_id whose node number no live node holds.
  const nobody = (BigInt(clientId) & ~(1023n << 12n)) | (1000n << 12n);
  assert.equal((await post(`${a.apiUrl}/v1/mesh/send`, { c: nobody.toString(), d: 'x' })).json.E.c, 401);
  local.close();
});

test('/v1/nodes on any node lists every live node; a stopped node leaves at once', async () => {
  const expected = (nodes: TestNode[]): { id: string; api_server: string; host: string }[] =>
    nodes
      .map((node) => ({ id: node.engine.broker.nodeId, api_server: node.apiUrl.replace('http://', ''), number: node.engine.broker.nodeNumber }))
      .sort((x, y) => x.number - y.number)
      .map(({ id, api_server }) => ({ id, api_server, host: api_server }));
  const c = await meshNode();
  for (const node of [a, b, c]) assert.deepEqual((await get(`${node.apiUrl}/v1/nodes`)).json, { nodes: expected([a, b, c]) });
  await c.stop();
  assert.deepEqual((await get(`${a.apiUrl}/v1/nodes`)).json, { nodes: expected([a, b]) });
});

test('node numbers are unique when five brokers start at the same moment', async () => {
  const local: LocalDelivery = { deliver: () => ({ s: 0, f: 0 }), deliverTo: () => false, callOn: () => 'no connections', count: () => 0 };
  const config = { addrs: [redis.address], cluster: false, password: '', db: 0, prefix: 't5:', auditInterval: 30 };
  const brokers = Array.from({ length: 5 }, (_, i) => new RedisBroker(config, `127.0.0.1:${7000 + i}`, memoryLogger().log));
  try {
    await Promise.all(brokers.map((broker) => broker.start(local)));
    const numbers = brokers.map((broker) => broker.nodeNumber);
    assert.equal(new Set(numbers).size, 5, `numbers ${numbers}`);
    assert.ok(brokers.every((broker) => broker.ready()));
    const listed = await brokers[0].nodes();
    assert.deepEqual(listed.map((node) => node.id).sort(), brokers.map((broker) => broker.nodeId).sort());
  } finally {
    await Promise.all(brokers.map((broker) => broker.stop()));
  }
  assert.equal(await redis.cli('keys', 't5:*'), '');
});

test('a node that does not answer is counted as failed after the reply timeout, never a hang', async () => {
  // A foreign subscriber on the channel: PUBLISH counts it, but it never answers.
  const silent = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true });
  silent.on('error', () => undefined);
  await silent.subscribe('t1:ch:video:77');
  const client = await viewer(b.wsUrl, 77);
  const started = Date.now();
  const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:77', d: 'x' });
  const elapsed = Date.now() - started;
  assert.deepEqual(answer.json, { E: null, r: { s: 1, f: 1 } });
  // It waited for the reply timeout (2 s), and did answer: the upper bound only tells that from a hang.
  assert.ok(elapsed >= 1900 && elapsed < 20_000, `answered after ${elapsed} ms`);
  assert.equal((await client.next()).data, 'x');
  assert.ok(a.logs.some((line) => line.includes('mesh peer timeout')));
  silent.disconnect();
  client.close();
});

test('conn.call reaches a connection on another node and releases its wait_context_value', async () => {
  const [evalA, evalB] = await Promise.all(
    [0, 1].map(() => startNode({ engineYaml: meshYaml([redis.address], 't6:'), lua: { 'lua/entry.websocket.lua': EVAL } })),
  );
  extra.push(evalA, evalB);
  const api = await ApiClient.open(evalA.apiUrl);
  const client = await TestClient.open(evalB.wsUrl);
  const [id] = JSON.parse(await client.request('return mix.websocket():client_id()'));
  // The client waits for a uid that only the backend can set, through node A.
  client.send('return mix.websocket():wait_context_value("uid")');
  assert.ok(await client.silentFor(100));
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context_value', a: ['uid', 1001] })).r, { s: true });
  assert.equal((await client.next()).data, '[1001]');
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'subscribe', a: ['room:remote'] })).r, { s: true });
  assert.deepEqual((await post(`${evalA.apiUrl}/v1/mesh/publish`, { c: 'room:remote', d: 'across' })).json.r, { s: 1, f: 0 });
  assert.equal((await client.next()).data, 'across');
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context', a: [{ room: 'remote' }] })).r, { s: true });
  assert.equal(await client.request('return mix.websocket():context_value("room"), mix.websocket():context_value("uid")'), '["remote"]');
  const bad = await api.call('conn.call', { c: id, f: 'subscribe', a: ['has space'] });
  assert.equal(bad.E?.c, 301);
  client.close();
  await client.waitClosed();
  const gone = await api.call('conn.call', { c: id, f: 'subscribe', a: ['x'] });
  assert.equal(gone.E?.c, 301);
  api.close();
});

test('the seed barrage through any node of a 3-node mesh', async () => {
  const c = await meshNode();
  extra.push(c);
  await barrageThroughEveryNode([a, b, c], 100003);
});

test('a stopping node lets API publishes in flight finish: /ws/v1 and HTTP requests are answered and reach other nodes', async () => {
  const c = await meshNode();
  const watcher = await viewer(b.wsUrl, 77);
  const backend = await ApiClient.open(c.apiUrl);
  const control = new Redis(redis.port, '127.0.0.1');
  try {
    // Redis holds every write (PUBLISH included) for 600 ms: the publishes below are in flight when the stop begins.
    await control.call('CLIENT', 'PAUSE', '600', 'WRITE');
    const viaWs = backend.call('mesh.publish', { c: 'video:77', d: 'sent on /ws/v1' });
    const body = JSON.stringify({ c: 'video:77', d: 'sent over HTTP' });
    const http = net.connect(Number(new URL(c.apiUrl).port), '127.0.0.1');
    let response = '';
    http.on('data', (chunk) => (response += chunk.toString()));
    http.write(`POST /v1/mesh/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const stopped = c.stop();
    assert.equal(c.engine.mesh.ready(), false, 'a stopping node is not ready');
    await new Promise((resolve) => setTimeout(resolve, 150));
    http.write(body.slice(10));
    assert.deepEqual(await viaWs, { E: null, r: { s: 1, f: 0 }, i: 1 });
    await stopped;
    assert.match(response, /^HTTP\/1\.1 200 [^]*\{"E":null,"r":\{"s":1,"f":0\}\}$/);
    const received = [(await watcher.next()).data, (await watcher.next()).data].sort();
    assert.deepEqual(received, ['sent on /ws/v1', 'sent over HTTP']);
    http.destroy();
  } finally {
    control.disconnect();
    watcher.close();
  }
});

test('an API server that stops answers the /ws/v1 requests it is still computing before it closes their connection', async () => {
  const api = new ApiServer({ ...a.engine.config.engine.apiServer, port: await freePort() }, a.engine, [], memoryLogger().log);
  const { port } = await api.start();
  const backend = await ApiClient.open(`http://127.0.0.1:${port}`);
  const watcher = await viewer(b.wsUrl, 78);
  const control = new Redis(redis.port, '127.0.0.1');
  try {
    await control.call('CLIENT', 'PAUSE', '500', 'WRITE');
    const answer = backend.call('mesh.publish', { c: 'video:78', d: 'answered before the close' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closed = new Promise<number>((resolve) => backend.ws.once('close', resolve));
    await api.stop();
    assert.deepEqual(await answer, { E: null, r: { s: 1, f: 0 }, i: 1 });
    assert.equal(await closed, 1001);
    assert.equal((await watcher.next()).data, 'answered before the close');
  } finally {
    control.disconnect();
    watcher.close();
  }
});
