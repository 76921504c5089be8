import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, post, get, type TestNode } from './support/helpers';
import { ROUTES } from '../src/api/routes';

// Each connection learns its client_id from a hook, so the send API can be tested against it.
const ECHO_ID = `
function on_handshake(client_id, headers, server) end
function on_message(msg)
  local conn = mix.websocket()
  if msg.data == "id" then conn:send(conn:client_id()) end
  if msg.data == "sub" then conn:subscribe("news") conn:send("ok") end
end
function on_close(client_id, err) end
`;

let node: TestNode;
before(async () => {
  node = await startNode({ lua: { 'lua/entry.websocket.lua': ECHO_ID }, path: '/chat' });
});
after(async () => {
  await node.stop();
});

async function clientWithId(): Promise<{ client: TestClient; id: string }> {
  const client = await TestClient.open(node.wsUrl);
  return { client, id: await client.request('id') };
}

test('GET /version and /v1/nodes answer in the PHP SDK format', async () => {
  assert.deepEqual((await get(`${node.apiUrl}/version`)).json, { apis: ['v1'] });
  const { json } = await get(`${node.apiUrl}/v1/nodes`);
  assert.equal(json.nodes.length, 1);
  assert.equal(json.nodes[0].id, node.engine.broker.nodeId);
  assert.match(json.nodes[0].api_server, /^127\.0\.0\.1:\d+$/);
});

test('send reaches one client by client_id; text and binary', async () => {
  const { client, id } = await clientWithId();
  assert.match(id, /^\d{15,20}$/);
  assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/send`, { c: id, d: 'hello' })).json, { E: null, r: { s: true } });
  assert.equal((await client.next()).data, 'hello');
  const bytes = Buffer.from([255, 0, 7]);
  assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/send`, { c: id, d: bytes.toString('base64'), t: 'binary' })).json.E, null);
  const message = await client.next();
  assert.equal(message.binary, true);
  assert.deepEqual(message.raw, bytes);
  client.close();
});

test('send to an unknown or closed client answers 401', async () => {
  const { client, id } = await clientWithId();
  client.close();
  await client.waitClosed();
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const c of [id, '1234567890123456789']) {
    const { status, json } = await post(`${node.apiUrl}/v1/mesh/send`, { c, d: 'x' });
    assert.equal(status, 200);
    assert.equal(json.E.c, 401);
    assert.match(json.E.m, /not found or gone/);
  }
});

test('client_ids are unique', async () => {
  const clients = await Promise.all(Array.from({ length: 20 }, () => clientWithId()));
  assert.equal(new Set(clients.map((c) => c.id)).size, 20);
  for (const { client } of clients) client.close();
});

test('invalid requests answer code 101 and deliver nothing', async () => {
  const subscriber = await TestClient.open(node.wsUrl);
  assert.equal(await subscriber.request('sub'), 'ok');
  const cases: Array<[string, unknown]> = [
    ['/v1/mesh/publish', '{"c":"news","d":'],
    ['/v1/mesh/publish', '[1,2]'],
    ['/v1/mesh/publish', ''],
    ['/v1/mesh/publish', { d: 'x' }],
    ['/v1/mesh/publish', { c: '', d: 'x' }],
    ['/v1/mesh/publish', { c: 'has space', d: 'x' }],
    ['/v1/mesh/publish', { c: 'news' }],
    ['/v1/mesh/publish', { c: 'news', d: 5 }],
    ['/v1/mesh/publish', { c: 'news', d: 'x', t: 'json' }],
    ['/v1/mesh/publish', { c: 'news', d: 'not base64!', t: 'binary' }],
    ['/v1/mesh/send', { c: 'abc', d: 'x' }],
    ['/v1/mesh/send', { c: -1, d: 'x' }],
    ['/v1/mesh/send', { d: 'x' }],
  ];
  for (const [route, body] of cases) {
    const { status, json } = await post(`${node.apiUrl}${route}`, body);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(json.E?.c, 101, `${route} ${JSON.stringify(body)} → ${JSON.stringify(json)}`);
    assert.equal(typeof json.E.m, 'string');
  }
  assert.ok(await subscriber.silentFor(100));
  subscriber.close();
});

test('a client_id sent as a JSON number (PHP SDK style) is accepted', async () => {
  const { client, id } = await clientWithId();
  // A 19-digit JSON number would lose digits in a double; the API keeps them.
  const { json } = await post(`${node.apiUrl}/v1/mesh/send`, `{"c": ${id}, "d":"n"}`);
  assert.deepEqual(json, { E: null, r: { s: true } });
  assert.equal((await client.next()).data, 'n');
  client.close();
});

test('unknown routes answer 404 with an E body', async () => {
  const { status, json } = await get(`${node.apiUrl}/v1/nothing`);
  assert.equal(status, 404);
  assert.equal(json.E.c, 404);
});

test('every route of the table is served with its method, and no other method', async () => {
  for (const route of ROUTES) {
    const url = `${node.apiUrl}${route.path}`;
    const served = route.method === 'GET'
      ? await fetch(url)
      : await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ c: 'table', d: 'x' }) });
    assert.notEqual(served.status, 404, `${route.method} ${route.path}`);
    const other = await fetch(url, { method: route.method === 'GET' ? 'POST' : 'GET' });
    assert.equal(other.status, 404, `the other method on ${route.path}`);
  }
});
