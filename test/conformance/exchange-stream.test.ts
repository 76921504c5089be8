import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, post } from '../support/helpers';
import { AuthServer, exampleEntry, startTwoNodes, type TwoNodes } from '../support/two-nodes';

// Reference 9.5: the exchange market stream (lua/examples/exchange-stream.lua, as documented) on a
// two-node mesh: public <symbol>@<type> channels as given, private @balance/@order/@position/@account
// channels made per user with string.format("%d@%s", uid, type), everything prefixed "ex:".

const BALANCE = '{"event":"@balance","data":{"uid":1001,"balance":[{"currency":"BTC","available":100,"unavailable":100}]}}';
const DEPTH = '{"event":"BTCUSDT@depth","data":{"bids":[],"asks":[]}}';

let auth: AuthServer;
let mesh: TwoNodes;

before(async () => {
  auth = await AuthServer.start();
  mesh = await startTwoNodes(exampleEntry('exchange-stream.lua', '/exchange-stream', { options: { auth_url: auth.url } }));
});

after(async () => {
  await mesh?.stop();
  await auth?.stop();
});

async function subscribe(client: TestClient, channel: string): Promise<string> {
  return client.request(JSON.stringify({ op: 'subscribe', channel }));
}

test('9.5 exchange: the documented transcript: auth, @balance, a push to ex:1001@balance through the other node', async () => {
  const { a, b } = mesh;
  assert.match(a.wsUrl, /\/exchange-stream$/);
  const client = await TestClient.open(a.wsUrl);
  client.send('{"op":"auth","token":"***"}');
  assert.equal(await subscribe(client, '@balance'), '{"result":true}', 'auth answers nothing; the subscribe answer comes first');
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'ex:1001@balance', d: BALANCE })).json, { E: null, r: { s: 1, f: 0 } });
  assert.equal((await client.next()).data, BALANCE);
  // Without the prefix, or for another user, nothing is delivered.
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: '1001@balance', d: 'x' })).json.r, { s: 0, f: 0 });
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'ex:1002@balance', d: 'x' })).json.r, { s: 0, f: 0 });
  client.close();
});

test('9.5 exchange: public channels need no auth and are shared by subscribers on both nodes', async () => {
  const { a, b } = mesh;
  const onA = await TestClient.open(a.wsUrl);
  const onB = await TestClient.open(b.wsUrl);
  for (const type of ['depth', 'trades', 'markprice', 'ticker', 'kline']) {
    assert.equal(await subscribe(onA, `BTCUSDT@${type}`), '{"result":true}');
    assert.equal(await subscribe(onB, `BTCUSDT@${type}`), '{"result":true}');
  }
  for (const type of ['depth', 'trades', 'markprice', 'ticker', 'kline']) {
    const node = type === 'depth' ? a : b;
    const d = type === 'depth' ? DEPTH : `{"event":"BTCUSDT@${type}"}`;
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: `ex:BTCUSDT@${type}`, d })).json.r, { s: 2, f: 0 });
    for (const client of [onA, onB]) assert.equal((await client.next()).data, d);
  }
  assert.equal(await onB.request('{"op":"unsubscribe","channel":"BTCUSDT@depth"}'), '{"result":true}');
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'ex:BTCUSDT@depth', d: DEPTH })).json.r, { s: 1, f: 0 });
  assert.equal((await onA.next()).data, DEPTH);
  assert.ok(await onB.silentFor(100));
  onA.close();
  onB.close();
});

test('9.5 exchange: every private type needs auth, then maps to ex:<uid>@<type> (%d of the float uid)', async () => {
  const { a, b } = mesh;
  const client = await TestClient.open(b.wsUrl);
  for (const type of ['balance', 'order', 'position', 'account']) {
    assert.equal(await subscribe(client, `@${type}`), '{"code":1,"msg":"Not Auth"}');
  }
  client.send('{"op":"auth","token":"t1002"}');
  for (const type of ['balance', 'order', 'position', 'account']) {
    assert.equal(await subscribe(client, `@${type}`), '{"result":true}');
    assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: `ex:1002@${type}`, d: type })).json.r, { s: 1, f: 0 });
    assert.equal((await client.next()).data, type);
  }
  // The symbol part of a private channel is ignored: "9999@order" is still the caller's own orders.
  assert.equal(await subscribe(client, '9999@order'), '{"result":true}');
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'ex:9999@order', d: 'x' })).json.r, { s: 0, f: 0 });
  assert.equal(await client.request('{"op":"unsubscribe","channel":"@order"}'), '{"result":true}');
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'ex:1002@order', d: 'x' })).json.r, { s: 0, f: 0 });
  client.close();
});

test('9.5 exchange: a channel that is not <symbol>@<type>, bad JSON or a refused token close the connection (1000)', async () => {
  for (const send of ['{"op":"subscribe","channel":"BTCUSDT"}', '{"op":"subscribe"}', 'not json', '{"op":"auth","token":"denied"}']) {
    const client = await TestClient.open(mesh.a.wsUrl);
    client.send(send);
    assert.equal((await client.waitClosed()).code, 1000, send);
  }
});

test('10.1 and 10.2 exchange: a binary frame closes with 1011; auth answers nothing and posts the documented body', async () => {
  const binary = await TestClient.open(mesh.a.wsUrl);
  binary.send(Buffer.from('{"op":"subscribe","channel":"BTCUSDT@depth"}'), true);
  assert.deepEqual(await binary.waitClosed(), { code: 1011, reason: 'script error' });

  const before = auth.requests.length;
  const client = await TestClient.open(mesh.b.wsUrl);
  client.send('{"op":"auth","token":"***"}');
  assert.ok(await client.silentFor(250));
  assert.deepEqual(auth.requests.slice(before).map((request) => request.body), ['{"token:"***"}']);
  client.close();
});
