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
