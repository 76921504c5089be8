import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, EVAL, startNode, type TestNode, type Json } from '../support/helpers';
import { RedisServer, redisCli } from '../support/redis';

// CONNMIX v1.0.1's mix.redis functions, as its Lua API page listed them from May to August 2022:
// push (LPUSH of a queue item), llen, set, get, incr and decr, on the Redis connection that a v1.0.1
// connmix.yaml gives as one `engine.luavm.redis` mapping. A real redis-server; the EVAL entry runs
// what a client sends and answers its results as JSON.

let redis: RedisServer;
let node: TestNode;

before(async () => {
  redis = await RedisServer.start();
  node = await startNode({
    lua: { 'lua/entry.websocket.lua': EVAL },
    path: '/chat',
    // The v1.0.1 form: a mapping, not a list of named connections.
    luavmYaml: `    redis:\n      addr: ${redis.address}\n      password:\n      db: 0\n      poolSize: 20\n`,
  });
});

after(async () => {
  await node?.stop();
  await redis?.stop();
});

test('v1.0.1 mix.redis.set/get/incr/decr/llen on the connection of the engine.luavm.redis mapping', async () => {
  const client = await TestClient.open(node.wsUrl);
  try {
    assert.equal(await client.request('return mix.redis.set("v101:k", "hello", 60)'), '["OK"]');
    assert.equal(await client.request('return mix.redis.get("v101:k")'), '["hello"]');
    const ttl = Number(await redisCli(redis.port, 'TTL', 'v101:k'));
    assert.ok(ttl > 0 && ttl <= 60, `TTL ${ttl}`);
    assert.equal(await client.request('return mix.redis.set("v101:n", 10)'), '["OK"]');
    assert.equal(await redisCli(redis.port, 'TTL', 'v101:n'), '-1');
    assert.equal(await client.request('return mix.redis.incr("v101:n", 5)'), '[15]');
    assert.equal(await client.request('return mix.redis.incr("v101:n")'), '[16]');
    assert.equal(await client.request('return mix.redis.decr("v101:n", 6)'), '[10]');
    assert.equal(await client.request('return mix.redis.llen("v101:none")'), '[0]');
    // A Redis error is `nil, err`.
    assert.match(await client.request('return mix.redis.incr("v101:k")'), /not an integer/);
  } finally {
    client.close();
  }
});

test('v1.0.1 mix.redis.push LPUSHes {"n", "c", "t", "d"}: what laravel-chat\'s ChatRds BRPOPs and reads with the SDK\'s Client::parse', async () => {
  const client = await TestClient.open(node.wsUrl);
  try {
    const [id] = JSON.parse(await client.request('return mix.websocket():client_id()')) as string[];
    assert.equal(await client.request('return mix.redis.push("v101:chat", { event = "message", uid = 7 })'), '[1]');
    assert.equal(await client.request('return mix.redis.push("v101:chat", "plain")'), '[2]');
    assert.equal(await client.request('return mix.redis.llen("v101:chat")'), '[2]');
    // BRPOP takes the oldest; Client::parse wraps it as {"p": item} and reads p.n, p.c, p.t, p.d.
    const [, first] = (await redisCli(redis.port, 'BRPOP', 'v101:chat', '5')).split('\n');
    const p = (JSON.parse(`{"p":${first}}`) as Json).p;
    assert.deepEqual(p, { n: node.engine.broker.nodeId, c: id, t: 'v101:chat', d: { event: 'message', uid: 7 } });
    const [, second] = (await redisCli(redis.port, 'BRPOP', 'v101:chat', '5')).split('\n');
    assert.equal((JSON.parse(second) as Json).d, 'plain');
  } finally {
    client.close();
  }
});
