import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, EVAL, freePort, type TestNode, waitFor } from '../support/helpers';
import { RedisServer } from '../support/redis';

// mix.redis against a real redis-server started (and killed by pid) by this file.
let redis: RedisServer;
let node: TestNode;
let client: TestClient;
let downPort: number;

before(async () => {
  redis = await RedisServer.start();
  downPort = await freePort();
  node = await startNode({
    lua: { 'lua/entry.websocket.lua': EVAL },
    path: '/redis',
    // startNode puts engineYaml right under `luavm:`'s callBudget, so these lines extend luavm.
    engineYaml: `    redis:
      - name: default
        addr: ${redis.address}
      - name: db2
        addr: ${redis.address}
        db: 2
      - name: down
        addr: 127.0.0.1:${downPort}`,
  });
  client = await TestClient.open(node.wsUrl);
});

after(async () => {
  client.close();
  await node?.stop();
  await redis?.stop();
});

async function run(lua: string): Promise<unknown[]> {
  client.send(`local r = assert(mix.redis.connection("default")) ${lua}`);
  // Generous: a 105,000-element reply takes seconds on a loaded machine, and a late answer would be read by the next test.
  const answer = (await client.next(30_000)).data;
  try {
    return JSON.parse(answer);
  } catch {
    throw new Error(`not JSON: ${answer}`);
  }
}

async function fails(lua: string): Promise<string> {
  const [ok, message] = await run(`return pcall(function() ${lua} end)`);
  assert.equal(ok, false, `expected an error from: ${lua}`);
  return String(message);
}

test('set and get; numbers as arguments; status replies as strings', async () => {
  assert.deepEqual(await run('return r:command("set", "greeting", "hello"), r:command("get", "greeting")'), ['OK', 'hello']);
  assert.deepEqual(await run('r:command("set", "n", 42) r:command("set", "f", 1.5) return r:command("get", "n"), r:command("get", "f")'), ['42', '1.5']);
  assert.deepEqual(await run('return r:command("PING"), tostring(r)'), ['PONG', 'redis: default']);
});

test('binary values survive', async () => {
  assert.deepEqual(await run('r:command("set", "bin", "\\0\\255\\1\\128") local v = r:command("get", "bin") return #v, { v:byte(1, -1) }'), [4, [0, 255, 1, 128]]);
  assert.equal(await redis.cli('strlen', 'bin'), '4');
});

test('integers, arrays, nil', async () => {
  await redis.cli('del', 'counter', 'list');
  assert.deepEqual(await run('return r:command("incr", "counter"), r:command("incrby", "counter", 5), type(r:command("incr", "counter"))'), [1, 6, 'number']);
  assert.deepEqual(await run('r:command("rpush", "list", "a", "b", "c") return r:command("lrange", "list", 0, -1)'), [['a', 'b', 'c']]);
  assert.deepEqual(await run('return r:command("mget", "greeting", "no-such-key")'), [['hello', false]]);
  assert.deepEqual(await run('local v, err = r:command("get", "no-such-key") return v == nil, err == nil'), [true, true]);
  assert.deepEqual(await run('return r:command("lrange", "no-such-key", 0, -1)'), [{}]);
});

test('a reply of more than maxItems elements gives nil, err instead of a million-entry table', async () => {
  await redis.cli('del', 'big');
  for (let chunk = 0; chunk < 21; chunk++) await redis.cli('rpush', 'big', ...Array.from({ length: 5000 }, (_, i) => String(i)));
  assert.equal(await redis.cli('llen', 'big'), '105000');
  assert.deepEqual(await run('local v, err = r:command("lrange", "big", 0, -1) return v == nil, err'),
    [true, 'reply has more than 100000 elements (the maxItems limit)']);
  assert.deepEqual(await run('return #r:command("lrange", "big", 0, 99998)'), [99999]);
});

test('a reply whose strings pass maxStringSize gives nil, err: one value, or the elements of an array together', async () => {
  await redis.cli('del', 'big', 'bigs');
  // 16 MiB and one byte, made by Redis (SETRANGE pads with zero bytes).
  assert.equal(await redis.cli('setrange', 'big', String(16 * 1024 * 1024), 'x'), String(16 * 1024 * 1024 + 1));
  assert.deepEqual(await run('local v, err = r:command("get", "big") return v == nil, err'),
    [true, 'reply is larger than 16777216 bytes (the maxStringSize limit)']);
  // Eighteen values of 1 MiB: each fits, the list does not.
  await redis.cli('setrange', 'mib', String(1024 * 1024 - 1), 'x');
  for (let i = 0; i < 18; i++) await redis.cli('eval', "return redis.call('rpush', KEYS[1], redis.call('get', KEYS[2]))", '2', 'bigs', 'mib');
  assert.deepEqual(await run('local v, err = r:command("lrange", "bigs", 0, -1) return v == nil, err'),
    [true, 'reply is larger than 16777216 bytes (the maxStringSize limit)']);
  assert.deepEqual(await run('local v = r:command("lrange", "bigs", 0, 14) return #v, #v[1]'), [15, 1024 * 1024]);
  assert.deepEqual(await run('return #r:command("getrange", "big", 0, 16777215)'), [16 * 1024 * 1024]);
  // Replies that each fit go through however many follow each other on the shared connection: 24
  // scripts fetching 1 MiB at once (24 MiB in a row, past the size at which a reply being read is cut).
  const many = await Promise.all(Array.from({ length: 24 }, () => TestClient.open(node.wsUrl)));
  try {
    for (const viewer of many) viewer.send('local r = assert(mix.redis.connection("default")) local v, err = r:command("get", "mib") return v and #v, err');
    const answers = await Promise.all(many.map(async (viewer) => (await viewer.next(30_000)).data));
    assert.deepEqual(answers, many.map(() => `[${1024 * 1024}]`));
  } finally {
    for (const viewer of many) viewer.close();
  }
  assert.ok(!node.logs.some((line) => line.includes('Lua redis reply too large')), 'no connection was reset');
  await redis.cli('del', 'big', 'bigs', 'mib');
});

test('a reply far past maxStringSize is cut while ioredis reads it: the connection is reset, its commands fail saying so, and it serves again', async () => {
  await redis.cli('del', 'huge');
  // 64 MiB: without a cut, ioredis would buffer all of it before anything could refuse it.
  assert.equal(await redis.cli('setrange', 'huge', String(64 * 1024 * 1024 - 1), 'x'), String(64 * 1024 * 1024));
  const other = await TestClient.open(node.wsUrl);
  try {
    // A command of another connection, behind the huge reply on the shared Redis connection.
    client.send('local r = assert(mix.redis.connection("default")) local v, err = r:command("get", "huge") return v == nil, err');
    other.send('local r = assert(mix.redis.connection("default")) local v, err = r:command("ping") return tostring(v), err');
    const [huge, behind] = await Promise.all([client.next(60_000), other.next(60_000)]);
    const reset = /^redis default \(127\.0\.0\.1:\d+\): the connection was reset: a reply passed \d+ bytes while being read$/;
    const [refused, message] = JSON.parse(huge.data) as [boolean, string];
    assert.equal(refused, true);
    assert.match(message, reset);
    // The ping went out before the reset (same turn) or after it, while ioredis reconnects.
    const [pong, why] = JSON.parse(behind.data) as [string, string];
    assert.ok(pong === 'PONG' || (pong === 'nil' && (reset.test(why) || /is unreachable: the connection was reset/.test(why))), behind.data);
    await waitFor('the connection serves again', async () => (await run('return r:command("ping")'))[0] === 'PONG', 20_000, 200);
    assert.ok(node.logs.some((line) => line.includes('Lua redis reply too large: connection reset')));
  } finally {
    other.close();
    await redis.cli('del', 'huge');
  }
});

test('the db option selects the database', async () => {
  assert.deepEqual(await run('local r2 = mix.redis.connection("db2") r2:command("set", "only-in-2", "yes") return r:command("exists", "only-in-2"), r2:command("get", "only-in-2")'), [0, 'yes']);
  assert.equal(await redis.cli('-n', '2', 'get', 'only-in-2'), 'yes');
});

test('error replies and refused commands give nil, err', async () => {
  const [v, err] = await run('local v, err = r:command("incr", "list") return tostring(v), err');
  assert.equal(v, 'nil');
  assert.match(String(err), /^WRONGTYPE /);
  const [, unknown] = await run('local v, err = r:command("nosuchcommand") return tostring(v), err');
  assert.match(String(unknown), /unknown command/i);
  for (const command of ['select', 'SUBSCRIBE', 'multi', 'quit']) {
    const [, refused] = await run(`local v, err = r:command("${command}", "1") return tostring(v), err`);
    assert.match(String(refused), new RegExp(`redis: ${command} is not allowed on a connection shared by all scripts`));
  }
  assert.deepEqual(await run('return r:command("ping")'), ['PONG']);
});

test('unknown names give nil, err; wrong arguments raise', async () => {
  const [conn, err] = await run('local c, err = mix.redis.connection("nope") return tostring(c), err');
  assert.equal(conn, 'nil');
  assert.equal(err, 'redis connection "nope" is not configured (engine.luavm.redis[].name)');
  assert.match(await fails('mix.redis.connection()'), /bad argument #1 to 'connection' \(string expected, got no value\)/);
  assert.match(await fails('r:command()'), /bad argument #1 to 'command' \(string expected, got no value\)/);
  assert.match(await fails('r:command("get", {})'), /bad argument #2 to 'command' \(string or number expected, got table\)/);
  assert.match(await fails('r.command({}, "get")'), /connmix\.redis expected/);
  // Each kind of userdata is only itself: a connection method refuses a Redis connection object, and back.
  assert.match(await fails('mix.websocket().send(r, "hi")'), /bad argument #1 to 'send' \(connmix\.conn expected, got connmix\.redis\)/);
  assert.match(await fails('mix.websocket().unsubscribe(r, "video:1")'), /bad argument #1 to 'unsubscribe' \(connmix\.conn expected, got connmix\.redis\)/);
  assert.match(await fails('r.command(mix.websocket(), "ping")'), /bad argument #1 to 'command' \(connmix\.redis expected, got connmix\.conn\)/);
});

test('a Redis that is not running fails fast', async () => {
  const started = Date.now();
  const [v, err] = await run('local v, err = mix.redis.connection("down"):command("get", "x") return tostring(v), err');
  assert.equal(v, 'nil');
  assert.match(String(err), new RegExp(`redis down \\(127\\.0\\.0\\.1:${downPort}\\) is unreachable: .*ECONNREFUSED`));
  // Fails at once rather than after ioredis's retries (many seconds); generous for a busy machine.
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  // Still down, still fast, while ioredis retries in the background.
  const again = Date.now();
  const [, err2] = await run('local v, err = mix.redis.connection("down"):command("get", "x") return tostring(v), err');
  assert.match(String(err2), /is unreachable/);
  assert.ok(Date.now() - again < 5000);
});

test('Redis going away gives errors quickly; commands work again once it is back', async () => {
  assert.deepEqual(await run('return r:command("set", "k", "before")'), ['OK']);
  await redis.kill();
  const started = Date.now();
  const [, err] = await run('local v, err = r:command("get", "k") return tostring(v), err');
  assert.match(String(err), /^redis default \(127\.0\.0\.1:\d+\) is unreachable: /);
  assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  await redis.restart();
  await waitFor('commands work again', async () => {
    const [value] = await run('return r:command("set", "k", "after")');
    return value === 'OK';
  }, 10_000, 200);
});

test('stopping the node closes its Redis connections', async () => {
  const clients = async () => (await redis.cli('client', 'list')).split('\n').filter((line) => line.includes('cmd=')).length;
  await run('return r:command("ping")');
  const before = await clients();
  assert.ok(before >= 2, `redis-cli and the node: ${before}`);
  client.close();
  await node.stop();
  await waitFor('the node disconnected', async () => (await clients()) === 1, 5000, 50);
  node = undefined as unknown as TestNode;
});
