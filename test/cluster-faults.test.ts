import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { ROOT, freePort, startNode, post, get, EVAL, TestClient, type TestNode, waitFor } from './support/helpers';
import { RedisServer, freeRedisPort } from './support/redis';
import { meshYaml, viewer } from './support/mesh';
import { ApiClient } from './support/api-client';

// Standalone Redis going away and coming back under running nodes, and nodes dying under Redis.

test('Redis down at start: the node starts, is not ready, and serves once Redis comes up', async () => {
  const port = await freeRedisPort();
  const started = Date.now();
  const node = await startNode({ engineYaml: meshYaml([`127.0.0.1:${port}`], 'f1:') });
  let redis: RedisServer | undefined;
  try {
    // Start does not wait for Redis (startTimeout is 3 s); the bound only tells that from a hang.
    assert.ok(Date.now() - started < 20_000, `start took ${Date.now() - started} ms`);
    assert.equal(node.engine.broker.ready(), false);
    assert.equal((await get(`${node.apiUrl}/readyz`)).status, 503);
    assert.equal((await get(`${node.apiUrl}/healthz`)).status, 200);
    const provisional = node.engine.broker.nodeNumber;
    assert.ok(provisional >= 0 && provisional <= 1023);
    assert.notEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'x' })).json.E, null);
    // A viewer subscribing during the outage is accepted; its subscription reaches Redis later.
    const client = await viewer(node.wsUrl, 1);
    redis = await RedisServer.start({ port });
    await waitFor('node ready', () => node.engine.broker.ready(), 5000);
    assert.equal((await get(`${node.apiUrl}/readyz`)).status, 200);
    assert.equal(node.engine.broker.nodeNumber, provisional, 'the provisional number was free and kept');
    await waitFor('subscription in Redis', async () => (await redis!.cli('pubsub', 'numsub', 'f1:ch:video:1')).endsWith('\n1'), 3000);
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'hello' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await client.next()).data, 'hello');
    assert.deepEqual((await get(`${node.apiUrl}/v1/nodes`)).json.nodes.map((n: { id: string }) => n.id), [node.engine.broker.nodeId]);
    client.close();
  } finally {
    await node.stop();
    await redis?.stop();
  }
});

test('Redis killed while serving: clients stay, publishes fail fast, delivery resumes after restart', async () => {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  try {
    nodes.push(await startNode({ engineYaml: meshYaml([redis.address], 'f2:') }), await startNode({ engineYaml: meshYaml([redis.address], 'f2:') }));
    const [a, b] = nodes;
    const viewers = [await viewer(a.wsUrl, 8), await viewer(b.wsUrl, 8)];
    assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:8', d: 'before' })).json.r, { s: 2, f: 0 });
    for (const client of viewers) assert.equal((await client.next()).data, 'before');

    await redis.kill();
    await waitFor('nodes see the outage', () => !a.engine.broker.ready() && !b.engine.broker.ready(), 3000);
    const started = Date.now();
    const during = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:8', d: 'during' });
    assert.notEqual(during.json.E, null, 'a publish during the outage must not claim success');
    assert.match(during.json.E.m, /delivered on this node only: s=1, f=0/);
    // Fails fast rather than waiting for Redis; how fast is the bench's business.
    assert.ok(Date.now() - started < 10_000, `publish answered after ${Date.now() - started} ms`);
    // Node A's own viewer got it (local delivery needs no Redis); node B's could not.
    assert.equal((await viewers[0].next()).data, 'during');
    assert.ok(await viewers[1].silentFor(200));
    // /ws/v1 answers the same failure with the same code and text as HTTP.
    assert.equal(during.json.E.c, 500);
    assert.match(during.json.E.m, /^mesh unavailable: /);
    const api = await ApiClient.open(a.apiUrl);
    const viaWs = await api.call('mesh.publish', { c: 'video:8', d: 'during ws' }, 20_000);
    assert.equal(viaWs.E?.c, 500, JSON.stringify(viaWs));
    assert.match(viaWs.E?.m ?? '', /^mesh unavailable: .*delivered on this node only: s=1, f=0/);
    assert.equal((await viewers[0].next()).data, 'during ws');
    api.close();
    assert.notEqual((await get(`${b.apiUrl}/v1/nodes`)).json.E, null);

    await redis.restart();
    await waitFor('both nodes ready again', () => a.engine.broker.ready() && b.engine.broker.ready(), 5000);
    await waitFor('both nodes resubscribed', async () => (await redis.cli('pubsub', 'numsub', 'f2:ch:video:8')).endsWith('\n2'), 5000);
    for (const client of viewers) assert.equal(client.ws.readyState, WebSocket.OPEN, 'clients stay connected through the outage');
    assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'video:8', d: 'after' })).json, { E: null, r: { s: 2, f: 0 } });
    for (const client of viewers) assert.equal((await client.next()).data, 'after');
    await waitFor('both nodes listed again', async () => (await get(`${a.apiUrl}/v1/nodes`)).json.nodes?.length === 2, 3000);
    for (const node of nodes) {
      assert.ok(node.logs.some((line) => line.includes('redis disconnected')));
      assert.ok(node.logs.some((line) => line.includes('resubscribing channels')));
      assert.ok(node.logs.some((line) => line.includes('node re-registered')));
    }
    for (const client of viewers) client.close();
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
});

test('a killed node process leaves /v1/nodes when its TTL runs out', async (t) => {
  const redis = await RedisServer.start();
  const node = await startNode({ engineYaml: meshYaml([redis.address], 'f3:') });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-victim-'));
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  fs.mkdirSync(path.join(dir, 'lua'));
  fs.copyFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), path.join(dir, 'lua/entry.websocket.lua'));
  fs.writeFileSync(
    path.join(dir, 'connmix.yaml'),
    `engine:\n  apiServer:\n    port: ${apiPort}\n    bind: 127.0.0.1\n${meshYaml([redis.address], 'f3:')}  servers:\n    - port: ${wsPort}\n      bind: 127.0.0.1\n      entry: lua/entry.websocket.lua\n`,
  );
  const victim = spawn(process.execPath, [path.join(ROOT, 'bin/connmix.js'), 'engine', '-f', path.join(dir, 'connmix.yaml')], { stdio: 'ignore' });
  const exited = new Promise((resolve) => victim.once('exit', resolve));
  try {
    const listed = async (): Promise<string[]> => ((await get(`${node.apiUrl}/v1/nodes`)).json.nodes as { api_server: string }[]).map((n) => n.api_server);
    await waitFor('the second node is listed', async () => (await listed()).includes(`127.0.0.1:${apiPort}`), 10_000);
    victim.kill('SIGKILL');
    await exited;
    const killed = Date.now();
    // Its registration expires with its TTL (5 s); the wait is generous for a busy machine.
    await waitFor('the killed node leaves the list', async () => !(await listed()).includes(`127.0.0.1:${apiPort}`), 30_000, 200);
    t.diagnostic(`left the list ${Date.now() - killed} ms after the kill (TTL 5000 ms)`);
  } finally {
    victim.kill('SIGKILL');
    await node.stop();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Redis down: Lua mix.mesh.publish answers nil, nil, err; a node holds one subscriber connection', async () => {
  const redis = await RedisServer.start();
  const node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, engineYaml: meshYaml([redis.address], 'f5:') });
  try {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('mix.websocket():subscribe("a", "b") return 1'), '[1]');
    // The node's Redis links: one for commands, one subscriber carrying both channels.
    const subscribers = (await redis.cli('client', 'list')).split('\n').filter((line) => / cmd=(p?)subscribe/.test(line) || /sub=[1-9]/.test(line));
    assert.equal(subscribers.length, 1, subscribers.join('\n'));
    await redis.kill();
    await waitFor('node sees the outage', () => !node.engine.broker.ready(), 3000);
    client.send('local s, f, err = mix.mesh.publish("a", "x") return tostring(s), tostring(f), err');
    // This node's own subscriber still gets it (local delivery needs no Redis), before the hook's answer.
    assert.equal((await client.next()).data, 'x');
    const answer = JSON.parse((await client.next()).data);
    assert.equal(answer[0], 'nil');
    assert.equal(answer[1], 'nil');
    assert.match(answer[2], /./);
    client.close();
  } finally {
    await node.stop();
    await redis.stop();
  }
});
