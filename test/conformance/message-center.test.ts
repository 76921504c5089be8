import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, post, withNode, freePort } from '../support/helpers';
import { AuthServer, exampleEntry, startTwoNodes, type TwoNodes } from '../support/two-nodes';

// Reference 9.4: the user message center (lua/examples/message-center.lua, as documented) on a two-node
// mesh, with the business auth endpoint POST /websocket_auth served by this test; the script reads its
// URL from the server option auth_url (the documented http://127.0.0.1:8000/websocket_auth otherwise).

const USER_MESSAGE = '{"event":"@user","data":{"uid":1001,"msg":"Hello,World!"}}';

let auth: AuthServer;
let mesh: TwoNodes;

before(async () => {
  auth = await AuthServer.start();
  mesh = await startTwoNodes(exampleEntry('message-center.lua', '/message-center', { options: { auth_url: auth.url } }));
});

after(async () => {
  await mesh?.stop();
  await auth?.stop();
});

/** A client that sent {"op":"auth"} with `token`; the script answers nothing (section 10.2). */
async function authed(url: string, token: string): Promise<TestClient> {
  const client = await TestClient.open(url);
  client.send(JSON.stringify({ op: 'auth', token }));
  return client;
}

test('9.4 message center: the documented transcript, with the user on two nodes and the push through either', async () => {
  const { a, b } = mesh;
  assert.match(a.wsUrl, /\/message-center$/);
  const before = auth.requests.length;
  const phone = await authed(a.wsUrl, '***');
  assert.ok(await phone.silentFor(200), 'auth is not answered');
  assert.equal(await phone.request('{"op":"subscribe","channel":"@user"}'), '{"result":true}');
  const laptop = await authed(b.wsUrl, 'another token of 1001');
  assert.equal(await laptop.request('{"op":"subscribe","channel":"@user"}'), '{"result":true}');
  const other = await authed(b.wsUrl, 't1002');
  assert.equal(await other.request('{"op":"subscribe","channel":"@user"}'), '{"result":true}');

  for (const node of [b, a]) {
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'user:1001', d: USER_MESSAGE })).json, { E: null, r: { s: 2, f: 0 } });
    for (const client of [phone, laptop]) assert.equal((await client.next()).data, USER_MESSAGE);
  }
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'user:1002', d: 'for 1002' })).json.r, { s: 1, f: 0 });
  assert.equal((await other.next()).data, 'for 1002');
  assert.ok(await phone.silentFor(100));

  // The endpoint was asked once per auth, by POST, with the documented body.
  const asked = auth.requests.slice(before);
  assert.equal(asked.length, 3);
  assert.deepEqual({ method: asked[0].method, url: asked[0].url, body: asked[0].body }, { method: 'POST', url: '/websocket_auth', body: '{"token:"***"}' });

  // unsubscribe: answered, and no more pushes for that connection.
  assert.equal(await laptop.request('{"op":"unsubscribe","channel":"@user"}'), '{"result":true}');
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'user:1001', d: USER_MESSAGE })).json.r, { s: 1, f: 0 });
  assert.equal((await phone.next()).data, USER_MESSAGE);
  assert.ok(await laptop.silentFor(150));
  for (const client of [phone, laptop, other]) client.close();
});

test('9.4 message center: messages sent right after auth wait for it (one connection is handled in order)', async () => {
  const client = await TestClient.open(mesh.b.wsUrl);
  client.send('{"op":"auth","token":"slow"}');
  client.send('{"op":"subscribe","channel":"@user"}');
  assert.equal((await client.next(2000)).data, '{"result":true}');
  assert.deepEqual((await post(`${mesh.a.apiUrl}/v1/mesh/publish`, { c: 'user:1001', d: 'after slow auth' })).json.r, { s: 1, f: 0 });
  assert.equal((await client.next()).data, 'after slow auth');
  client.close();
});

test('9.4 message center: without auth, @user answers Not Auth and the connection stays; other types only answer', async () => {
  const client = await TestClient.open(mesh.a.wsUrl);
  assert.equal(await client.request('{"op":"subscribe","channel":"@user"}'), '{"code":1,"msg":"Not Auth"}');
  assert.equal(await client.request('{"op":"unsubscribe","channel":"@user"}'), '{"code":1,"msg":"Not Auth"}');
  assert.equal(await client.request('{"op":"subscribe","channel":"1001@video"}'), '{"result":true}');
  assert.equal(await client.request('{"op":"ping","channel":"x@y"}'), '{"result":true}');
  // The user id comes from the context only: naming it in the channel changes nothing.
  assert.equal(await client.request('{"op":"subscribe","channel":"1001@user"}'), '{"code":1,"msg":"Not Auth"}');
  client.close();
});

test('9.4 message center: a refused token, a body that is not JSON, bad JSON, no op or a bad channel close the connection (1000)', async () => {
  for (const send of [
    '{"op":"auth","token":"denied"}',
    '{"op":"auth","token":"garbled"}',
    'not json',
    '{"channel":"@user"}',
    '{"op":"subscribe","channel":"user"}',
  ]) {
    const client = await TestClient.open(mesh.a.wsUrl);
    client.send(send);
    assert.equal((await client.waitClosed()).code, 1000, send);
    assert.equal(client.received.length, 0, send);
  }
});

test('9.4 message center: an auth endpoint that cannot be reached closes the connection (1000)', async () => {
  const nobody = `http://127.0.0.1:${await freePort()}/websocket_auth`;
  await withNode(exampleEntry('message-center.lua', '/message-center', { options: { auth_url: nobody } }), async (node) => {
    const client = await authed(node.wsUrl, '***');
    assert.equal((await client.waitClosed()).code, 1000);
    assert.ok(node.logs.some((line) => line.includes('http.request error')));
  });
});

test('10.1 message center: a binary frame is a Lua error (conn is a nil global there): close 1011', async () => {
  const client = await TestClient.open(mesh.b.wsUrl);
  client.send(Buffer.from('{"op":"auth","token":"***"}'), true);
  assert.deepEqual(await client.waitClosed(), { code: 1011, reason: 'script error' });
});

test('10.2 message center: auth answers nothing, and the auth body is sent as documented although it is not JSON', async () => {
  const before = auth.requests.length;
  const client = await authed(mesh.a.wsUrl, 'abc');
  assert.ok(await client.silentFor(250));
  const [request] = auth.requests.slice(before);
  assert.equal(request.body, '{"token:"abc"}');
  assert.throws(() => JSON.parse(request.body));
  // Subscribing afterwards shows the uid was kept although nothing was answered.
  assert.equal(await client.request('{"op":"subscribe","channel":"@user"}'), '{"result":true}');
  client.close();
});
