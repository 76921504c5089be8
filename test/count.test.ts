import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { ConnmixClient, ConnmixError } from '../src/client';
import { SubscriberCounts } from '../src/mesh/subscriber-counts';
import type { CountResult } from '../src/mesh/broker';
import { withNode, post, startNode, TestClient, type Json, type TestNode, waitFor } from './support/helpers';
import { ApiClient } from './support/api-client';
import { meshYaml, SEED_WITH_TEST_OPS, viewer } from './support/mesh';
import { RedisServer } from './support/redis';
import { seedEngineFolder, startListening } from './support/engine-process';
import { ACCESS_USERS, basic } from './support/access-users';

// Subscribers per channel over the mesh: POST /v1/mesh/count, /ws/v1 mesh.count, mix.mesh.count and the
// SDK's count, on one node and on a two-node mesh over a real redis-server, one node killed by its pid.

/** The seed script plus the test ops of mesh.ts and `!count <channel>` (answers `n,f` or `err:...`). */
const LUA = {
  'lua/entry.websocket.lua': SEED_WITH_TEST_OPS['lua/entry.websocket.lua'].replace(
    'local channel, text = string.match',
    `local counted = string.match(data, "^!count (.*)$")
    if counted then
        local n, f, err = mix.mesh.count(counted)
        if err then conn:send("err:" .. err) else conn:send(string.format("%d,%d", n, f)) end
        return
    end
    local channel, text = string.match`,
  ),
};

test('one node: every API counts the subscribers of a channel, exactly and at once', async () => {
  await withNode({ lua: LUA }, async (node) => {
    const viewers = await Promise.all([1, 1, 1, 2].map((video) => viewer(node.wsUrl, video)));
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/count`, { c: 'video:1' })).json, { E: null, r: { n: 3, f: 0 } });
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/count`, { c: 'video:2' })).json, { E: null, r: { n: 1, f: 0 } });
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/count`, { c: 'video:404' })).json, { E: null, r: { n: 0, f: 0 } });

    const api = await ApiClient.open(node.apiUrl);
    assert.deepEqual(await api.call('mesh.count', { c: 'video:1' }), { E: null, r: { n: 3, f: 0 }, i: 1 });
    api.close();

    const client = new ConnmixClient({ url: node.apiUrl });
    assert.deepEqual(await client.count('video:1'), { subscribers: 3, unansweredNodes: 0 });
    const socket = await client.node();
    assert.deepEqual(await socket.count('video:2'), { subscribers: 1, unansweredNodes: 0 });

    const lua = await TestClient.open(node.wsUrl);
    assert.equal(await lua.request('!count video:1'), '3,0');

    // The embedded broker counts its own hub: a viewer leaving shows in the very next answer.
    viewers[0].close();
    await waitFor('the closed viewer is no longer counted', async () => (await client.count('video:1')).subscribers === 2, 10_000);
    assert.equal(await lua.request('!count video:1'), '2,0');
    client.close();
    for (const c of [...viewers, lua]) c.close();
  });
});

test('count: bad channels answer 101 with the reason; the read role may count, anonymous callers may not', async () => {
  await withNode({ lua: LUA, accessYaml: ACCESS_USERS }, async (node) => {
    const ask = (body: unknown, headers: Record<string, string>) =>
      fetch(`${node.apiUrl}/v1/mesh/count`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
        .then(async (response): Promise<{ status: number; json: Json }> => ({ status: response.status, json: await response.json() }));
    const reader = basic('console', 'read-only');
    assert.deepEqual((await ask({ c: 'video:1' }, reader)).json, { E: null, r: { n: 0, f: 0 } });
    assert.equal((await ask({ c: 'video:1' }, {})).status, 401);
    assert.deepEqual((await ask({}, reader)).json.E.c, 101);
    assert.match((await ask({}, reader)).json.E.m, /c: channel must be a non-empty string/);
    assert.match((await ask({ c: 'a b' }, reader)).json.E.m, /cannot contain spaces/);
    // Publishing still needs write.
    assert.equal((await ask({ c: 'video:1', d: 'x' }, reader)).status, 200);
    const denied = await fetch(`${node.apiUrl}/v1/mesh/publish`, { method: 'POST', headers: reader, body: '{"c":"video:1","d":"x"}' });
    assert.equal(denied.status, 403);

    const api = await ApiClient.open(node.apiUrl, basic('backend', 's3cret'));
    const refused = await api.call('mesh.count', { c: '' });
    assert.equal(refused.E?.c, 101);
    api.close();
    const client = new ConnmixClient({ url: node.apiUrl, credentials: { username: 'console', password: 'read-only' } });
    await assert.rejects(client.count('a b'), (error: ConnmixError) => error.code === 101 && /spaces/.test(error.message));
    const lua = await TestClient.open(node.wsUrl);
    assert.match(await lua.request('!count a b'), /^err:invalid channel "a b"/);
    lua.close();
  });
});

test('the cache: callers at the same moment share one question; a failed question is asked again', async () => {
  let asked = 0;
  let now = 0;
  let answer: Promise<CountResult> = Promise.resolve({ n: 7, f: 0 });
  const counts = new SubscriberCounts(() => {
    asked++;
    return answer;
  }, 2000, () => now);
  const results = await Promise.all(Array.from({ length: 50 }, () => counts.count('video:1')));
  assert.equal(asked, 1);
  assert.ok(results.every((result) => result.n === 7));
  now = 1999;
  assert.deepEqual(await counts.count('video:1'), { n: 7, f: 0 });
  assert.equal(asked, 1, 'reused within the TTL');
  now = 2000;
  answer = Promise.resolve({ n: 8, f: 0 });
  assert.deepEqual(await counts.count('video:1'), { n: 8, f: 0 });
  assert.equal(asked, 2, 'asked again past the TTL');
  now = 5000;
  answer = Promise.reject(new Error('redis away'));
  await assert.rejects(Promise.resolve(counts.count('video:1')), /redis away/);
  answer = Promise.resolve({ n: 9, f: 0 });
  assert.deepEqual(await counts.count('video:1'), { n: 9, f: 0 });
  assert.equal(asked, 4, 'a failure is not reused');
  // A synchronous answer (the embedded broker) is exact and never cached.
  let local = 0;
  const direct = new SubscriberCounts(() => ({ n: ++local, f: 0 }), 2000, () => now);
  assert.deepEqual([direct.count('x'), direct.count('x')], [{ n: 1, f: 0 }, { n: 2, f: 0 }]);
});

let redis: RedisServer;
let a: TestNode;

before(async () => {
  redis = await RedisServer.start();
  a = await startNode({ engineYaml: meshYaml([redis.address], 'cnt:'), lua: LUA });
});

after(async () => {
  await a?.stop();
  await redis?.stop();
});

test('two nodes: counts are summed over both, from either API and from Lua, and drop when a node is killed', async () => {
  const folder = await seedEngineFolder({ engineYaml: meshYaml([redis.address], 'cnt:') });
  const b = await startListening(folder.file);
  const { apiUrl: bApi, wsUrl: bWs } = folder;
  const clients: TestClient[] = [];
  try {
    clients.push(...(await Promise.all([a.wsUrl, a.wsUrl, a.wsUrl, bWs, bWs].map((url) => viewer(url, 100001)))));
    clients.push(await viewer(bWs, 100002));
    const viaA = new ConnmixClient({ url: a.apiUrl });
    const viaB = new ConnmixClient({ url: bApi });
    // Answers may be up to the cache's 2 s old; wait for the one that includes every viewer.
    await waitFor('5 viewers through A', async () => (await viaA.count('video:100001')).subscribers === 5, 20_000);
    await waitFor('5 viewers through B', async () => (await viaB.count('video:100001')).subscribers === 5, 20_000);
    assert.deepEqual((await post(`${bApi}/v1/mesh/count`, { c: 'video:100001' })).json, { E: null, r: { n: 5, f: 0 } });
    assert.deepEqual(await viaA.count('video:100002'), { subscribers: 1, unansweredNodes: 0 });
    const api = await ApiClient.open(bApi);
    assert.deepEqual((await api.call('mesh.count', { c: 'video:100001' })).r, { n: 5, f: 0 });
    api.close();
    const lua = await TestClient.open(a.wsUrl);
    clients.push(lua);
    assert.equal(await lua.request('!count video:100001'), '5,0');

    // Fifty callers at one moment cost one question through Redis: one PUBLISH out, one answer back from B.
    const publishes = async () => Number(/cmdstat_publish:calls=(\d+)/.exec(await redis.cli('info', 'commandstats'))?.[1] ?? 0);
    await waitFor('the cached answer has expired', async () => {
      const before = await publishes();
      const answers = await Promise.all(Array.from({ length: 50 }, () => a.engine.mesh.count('video:100002')));
      const after = await publishes();
      assert.ok(answers.every((answer) => answer.n === 1 && answer.f === 0), JSON.stringify(answers[0]));
      // 0 when the answer came from the cache; otherwise exactly one round.
      assert.ok(after - before <= 2, `${after - before} PUBLISH calls for 50 counts`);
      return after - before === 2;
    }, 20_000, 300);

    // B dies without a word: its Redis connection, and with it its subscriptions, go at once.
    b.child.kill('SIGKILL');
    await b.exited;
    await waitFor('only A\'s 3 viewers are counted', async () => (await viaA.count('video:100001')).subscribers === 3, 20_000);
    await waitFor('B\'s viewer of 100002 is gone too', async () => (await viaA.count('video:100002')).subscribers === 0, 20_000);
    assert.equal(await lua.request('!count video:100001'), '3,0');
    viaA.close();
    viaB.close();
  } finally {
    b.child.kill('SIGKILL');
    for (const client of clients) client.close();
  }
});
