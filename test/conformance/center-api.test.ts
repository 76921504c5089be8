import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { TestClient, freePort, get, withNode, type Json, waitFor } from '../support/helpers';
import { meshYaml } from '../support/mesh';
import { seedEngineFolder, startConnmix, type EngineProcess } from '../support/engine-process';
import { exampleEntry, startTwoNodes, type TwoNodes } from '../support/two-nodes';
import { PhpStyleConsumer } from '../support/php-consumer';

// Every PHP example (the SDK's README and tests, laravel-chat's ChatMem.php) starts with
// `ClientBuilder::create()->setHost('127.0.0.1:6787')`: CONNMIX's center API. The SDK asks it
// GET /version, then GET /v1/nodes, and opens ws://<api_server>/ws/v1 on every node it lists. `dev` and
// `single` serve that API beside the engine; `connmix center` serves it alone on a Redis mesh.

const ROUND_TRIP = exampleEntry('queue-round-trip.lua', '/chat');

let mesh: TwoNodes | null = null;
const consumers: PhpStyleConsumer[] = [];
const processes: EngineProcess[] = [];

after(async () => {
  for (const consumer of consumers) consumer.close();
  for (const child of processes) child.child.kill('SIGKILL');
  await mesh?.stop();
});

async function consume(host: string): Promise<PhpStyleConsumer> {
  const consumer = await PhpStyleConsumer.start({
    host,
    topics: ['foo'],
    // The quick start's backend: answer "received: <text>" on the node the event came from.
    onMessage: (node, message) => {
      if (message.type === 'event') void node.meshSend(message.frame.p.c, `received: ${message.frame.p.d.frame.data}`);
    },
  });
  consumers.push(consumer);
  return consumer;
}

/** A client of `wsUrl` says "test" and gets "received: test" from the consumer. */
async function roundTrip(wsUrl: string, text: string): Promise<void> {
  const client = await TestClient.open(wsUrl);
  try {
    client.send(text);
    assert.equal((await client.next(10_000)).data, `received: ${text}`);
  } finally {
    client.close();
  }
}

test('dev/single: setHost(center) → GET /version, GET /v1/nodes on the center port → /ws/v1 on the advertised engine API', async () => {
  await withNode({ ...ROUND_TRIP, center: true }, async (node) => {
    const center = `http://${node.centerHost}`;
    assert.deepEqual(await get(`${center}/version`), { status: 200, json: { apis: ['v1'] } });
    const listed = await get(`${center}/v1/nodes`);
    // The same list as the engine API's, naming the engine's API port, not the center's.
    assert.deepEqual(listed, await get(`${node.apiUrl}/v1/nodes`));
    const address = node.apiUrl.replace('http://', '');
    // `host` too: PHP SDK v1.0.1 to v1.0.4 read the address by that name.
    assert.deepEqual(listed.json, { nodes: [{ id: node.engine.broker.nodeId, api_server: address, host: address }] });
    // The center is read-only: it publishes nothing.
    const publish = await fetch(`${center}/v1/mesh/publish`, { method: 'POST', body: '{"c":"x","d":"y"}' });
    assert.equal(publish.status, 404);

    // The user gives the SDK the center host only, as in setHost('127.0.0.1:6787').
    const sdk = await consume(node.centerHost);
    assert.deepEqual(sdk.nodes.map((n) => [n.id, n.apiServer]), [[node.engine.broker.nodeId, node.apiUrl.replace('http://', '')]]);
    await roundTrip(node.wsUrl, 'test');
    sdk.close();
  });
});

test('access.users guards the center port as it guards the engine API (401, 403, read role)', async () => {
  const users = `
    - username: console
      password: read-only
      roles: [read]
      host: '*'
    - username: writer
      password: w
      roles: [write]
      host: '*'
    - username: remote
      password: pw
      roles: [read, write]
      host: '10.*.*.*'`;
  await withNode({ ...ROUND_TRIP, center: true, accessYaml: users }, async (node) => {
    const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
    const call = async (url: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Json; challenge: string | null }> => {
      const response = await fetch(url, { headers });
      return { status: response.status, json: await response.json(), challenge: response.headers.get('www-authenticate') };
    };
    for (const base of [`http://${node.centerHost}`, node.apiUrl]) {
      for (const route of ['/version', '/v1/nodes']) {
        const anonymous = await call(`${base}${route}`);
        assert.equal(anonymous.status, 401, `${base}${route}`);
        assert.equal(anonymous.json.E.c, 401);
        assert.match(anonymous.challenge ?? '', /^Basic realm=/);
        assert.equal((await call(`${base}${route}`, basic('console', 'wrong'))).status, 401);
        const writeOnly = await call(`${base}${route}`, basic('writer', 'w'));
        assert.equal(writeOnly.status, 403);
        assert.match(writeOnly.json.E.m, /lacks the read role/);
        const wrongHost = await call(`${base}${route}`, basic('remote', 'pw'));
        assert.equal(wrongHost.status, 403);
        assert.match(wrongHost.json.E.m, /may not connect from 127\.0\.0\.1/);
        assert.equal((await call(`${base}${route}`, basic('console', 'read-only'))).status, 200);
      }
    }
    assert.deepEqual((await call(`http://${node.centerHost}/v1/nodes`, basic('console', 'read-only'))).json,
      (await call(`${node.apiUrl}/v1/nodes`, basic('console', 'read-only'))).json);
    // The unauthenticated probes stay open, as on the engine API.
    assert.equal((await fetch(`http://${node.centerHost}/healthz`)).status, 200);
    // access is a hot key on the center port too.
    node.engine.applyConfig({ ...node.engine.config, access: { users: [] } });
    assert.equal((await call(`http://${node.centerHost}/v1/nodes`)).status, 200);
  });
});

test('on a 2-node Redis mesh the center lists both nodes, and the SDK consumes from both through it', async () => {
  mesh = await startTwoNodes({ ...ROUND_TRIP, center: true });
  const { a, b } = mesh;
  const expected = [a, b].map((n) => ({ id: n.engine.broker.nodeId, api_server: n.apiUrl.replace('http://', ''), host: n.apiUrl.replace('http://', '') }));
  const byId = (x: { id: string }, y: { id: string }) => x.id.localeCompare(y.id);
  await waitFor('both nodes listed on the center', async () => (await get(`http://${a.centerHost}/v1/nodes`)).json.nodes?.length === 2);
  assert.deepEqual([...(await get(`http://${a.centerHost}/v1/nodes`)).json.nodes].sort(byId), [...expected].sort(byId));
  const sdk = await consume(a.centerHost);
  assert.equal(sdk.nodes.length, 2);
  await roundTrip(a.wsUrl, 'on a');
  await roundTrip(b.wsUrl, 'on b');
  sdk.close();
});

test('`connmix center -f conf/connmix.yaml -p 2` (the deployment doc) serves the center API of the Redis mesh', async () => {
  assert.ok(mesh, 'the 2-node mesh of the previous test');
  const { a, b, redis } = mesh;
  const folder = await seedEngineFolder({ engineYaml: meshYaml([redis.address], 'conformance:') });
  const centerPort = await freePort();
  fs.appendFileSync(folder.file, `center:\n  apiServer: { port: ${centerPort}, bind: 127.0.0.1 }\n`);
  const center = startConnmix('center', folder.file, 2);
  processes.push(center);
  await waitFor('center listening', () => new RegExp(`center server listening on 127\\.0\\.0\\.1:${centerPort}`).test(center.output()), 20_000);
  // -p is accepted; one process serves, and says so on stderr. No business server, no engine API.
  assert.match(center.errors(), /warning: -p 2 runs one process: the center API only lists nodes/);
  assert.doesNotMatch(center.output(), /websocket server|api server listening|worker/);
  const host = `127.0.0.1:${centerPort}`;
  assert.deepEqual((await get(`http://${host}/version`)).json, { apis: ['v1'] });
  const listed = await waitFor('both engines listed', async () => {
    const nodes = (await get(`http://${host}/v1/nodes`)).json.nodes as Array<{ id: string; api_server: string }>;
    return nodes?.length === 2 ? nodes : null;
  });
  const ids = (listed ?? []).map((n) => n.id).sort();
  assert.deepEqual(ids, [a.engine.broker.nodeId, b.engine.broker.nodeId].sort());
  const sdk = await consume(host);
  await roundTrip(b.wsUrl, 'through the center process');
  sdk.close();
  center.child.kill('SIGTERM');
  assert.equal(await center.exited, 0);
});

test('`connmix center` on the memory broker starts, warns that it can list no engine, and lists none', async () => {
  const folder = await seedEngineFolder();
  const centerPort = await freePort();
  fs.appendFileSync(folder.file, `center:\n  apiServer: { port: ${centerPort}, bind: 127.0.0.1 }\n`);
  const center = startConnmix('center', folder.file);
  processes.push(center);
  await waitFor('center listening', () => /center server listening/.test(center.output()), 20_000);
  assert.match(center.errors(), /warning: the center lists no nodes: with engine\.mesh\.broker: memory/);
  assert.deepEqual((await get(`http://127.0.0.1:${centerPort}/v1/nodes`)).json, { nodes: [] });
  assert.deepEqual((await get(`http://127.0.0.1:${centerPort}/version`)).json, { apis: ['v1'] });
  // access is a hot key of the center process, as of an engine.
  fs.appendFileSync(folder.file, `access:\n  users:\n    - { username: u, password: p, roles: [read], host: '*' }\n`);
  await waitFor('access applied', async () => (await fetch(`http://127.0.0.1:${centerPort}/version`)).status === 401);
  center.child.kill('SIGTERM');
  assert.equal(await center.exited, 0);
});
