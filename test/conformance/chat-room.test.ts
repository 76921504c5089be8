import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, post } from '../support/helpers';
import { ApiClient } from '../support/api-client';
import { nodeNumberOf } from '../../src/mesh/ids';
import { exampleEntry, startTwoNodes, type TwoNodes } from '../support/two-nodes';

// Reference 9.2: the quick-start chat room (lua/examples/chat-room.lua, as documented) on a two-node
// mesh: C1 on node A, C2 on node B, backends publishing through either node.

const BROADCAST = '{"type":"broadcast","msg":"Hello,World!"}';

let mesh: TwoNodes;

before(async () => {
  mesh = await startTwoNodes(exampleEntry('chat-room.lua', '/chat'));
});

after(async () => {
  await mesh?.stop();
});

test('9.2 chat room: the documented transcript, with the room members on two nodes', async () => {
  const { a, b } = mesh;
  const c1 = await TestClient.open(a.wsUrl);
  const c2 = await TestClient.open(b.wsUrl);
  assert.equal(await c1.request('{"op":"join","room_id":1002}'), '{"status":"success"}');
  assert.equal(await c2.request('{"op":"join","room_id":1002}'), '{"status":"success"}');

  // The sender's answer comes first (conn:send runs before mix.mesh.publish), then the room message,
  // which reaches the sender too. The client_id is C1's, a decimal string naming node A.
  c1.send('{"op":"send","msg":"Hello,World!"}');
  assert.equal((await c1.next()).data, '{"status":"success"}');
  const roomMessage = (await c1.next()).data;
  const { client_id: c1Id, msg } = JSON.parse(roomMessage);
  assert.equal(msg, 'Hello,World!');
  assert.match(c1Id, /^\d{1,20}$/);
  assert.equal(nodeNumberOf(c1Id), a.engine.broker.nodeNumber);
  assert.equal(roomMessage, `{"client_id":"${c1Id}","msg":"Hello,World!"}`);
  assert.equal((await c2.next()).data, roomMessage);

  // A backend broadcast through either node's HTTP API reaches both members, d verbatim.
  for (const node of [b, a]) {
    const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room:1002', d: BROADCAST });
    assert.deepEqual(answer.json, { E: null, r: { s: 2, f: 0 } });
    for (const client of [c1, c2]) assert.equal((await client.next()).data, BROADCAST);
  }
  // And through the WebSocket API (reference: "if you send very frequently, use the websocket-api").
  const api = await ApiClient.open(b.apiUrl);
  assert.deepEqual((await api.call('mesh.publish', { c: 'room:1002', d: BROADCAST })).r, { s: 2, f: 0 });
  for (const client of [c1, c2]) assert.equal((await client.next()).data, BROADCAST);
  api.close();

  // C1 quits: answered, and no further room messages for it.
  assert.equal(await c1.request('{"op":"quit"}'), '{"status":"success"}');
  assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'room:1002', d: BROADCAST })).json.r, { s: 1, f: 0 });
  assert.equal((await c2.next()).data, BROADCAST);
  assert.ok(await c1.silentFor(150));
  c1.close();
  c2.close();
});

test('9.2 chat room: the message is concatenated into the JSON, not escaped', async () => {
  const c1 = await TestClient.open(mesh.a.wsUrl);
  const c2 = await TestClient.open(mesh.b.wsUrl);
  assert.equal(await c1.request('{"op":"join","room_id":"7"}'), '{"status":"success"}');
  assert.equal(await c2.request('{"op":"join","room_id":7}'), '{"status":"success"}', 'room 7 and room "7" are one room');
  c1.send(JSON.stringify({ op: 'send', msg: 'say "hi"\\ now' }));
  assert.equal((await c1.next()).data, '{"status":"success"}');
  const roomMessage = (await c1.next()).data;
  assert.match(roomMessage, /^\{"client_id":"\d+","msg":"say "hi"\\ now"\}$/);
  assert.throws(() => JSON.parse(roomMessage));
  assert.equal((await c2.next()).data, roomMessage);
  c1.close();
  c2.close();
});

test('9.2 chat room: joining another room leaves the previous one', async () => {
  const c1 = await TestClient.open(mesh.a.wsUrl);
  const c2 = await TestClient.open(mesh.b.wsUrl);
  assert.equal(await c1.request('{"op":"join","room_id":2001}'), '{"status":"success"}');
  assert.equal(await c2.request('{"op":"join","room_id":2001}'), '{"status":"success"}');
  assert.equal(await c2.request('{"op":"join","room_id":2002}'), '{"status":"success"}');
  assert.deepEqual((await post(`${mesh.b.apiUrl}/v1/mesh/publish`, { c: 'room:2001', d: 'to 2001' })).json.r, { s: 1, f: 0 });
  assert.deepEqual((await post(`${mesh.a.apiUrl}/v1/mesh/publish`, { c: 'room:2002', d: 'to 2002' })).json.r, { s: 1, f: 0 });
  assert.equal((await c1.next()).data, 'to 2001');
  assert.equal((await c2.next()).data, 'to 2002');
  assert.ok(await c1.silentFor(100));
  assert.ok(await c2.silentFor(0));
  c1.close();
  c2.close();
});

test('9.2 chat room: bad JSON, a missing op, join without room_id and send without msg are ignored; the connection stays', async () => {
  const client = await TestClient.open(mesh.a.wsUrl);
  for (const ignored of ['not json', '{"room_id":1}', '{"op":"join"}', '{"op":"send"}', '{"op":"dance"}']) client.send(ignored);
  assert.ok(await client.silentFor(150));
  assert.equal(await client.request('{"op":"join","room_id":3001}'), '{"status":"success"}');
  client.close();
});

test('9.2 chat room: quit or send before joining concatenates nil: a Lua error, that connection is closed with 1011', async () => {
  const bystander = await TestClient.open(mesh.a.wsUrl);
  assert.equal(await bystander.request('{"op":"join","room_id":4001}'), '{"status":"success"}');

  const quitter = await TestClient.open(mesh.a.wsUrl);
  quitter.send('{"op":"quit"}');
  assert.deepEqual(await quitter.waitClosed(), { code: 1011, reason: 'script error' });
  assert.equal(quitter.received.length, 0);

  // send answers first, then fails on "room:" .. nil.
  const sender = await TestClient.open(mesh.a.wsUrl);
  sender.send('{"op":"send","msg":"hi"}');
  assert.equal((await sender.next()).data, '{"status":"success"}');
  assert.equal((await sender.waitClosed()).code, 1011);

  assert.ok(mesh.a.logs.some((line) => line.includes('attempt to concatenate')), 'the Lua error is logged');
  assert.deepEqual((await post(`${mesh.b.apiUrl}/v1/mesh/publish`, { c: 'room:4001', d: 'still here' })).json.r, { s: 1, f: 0 });
  assert.equal((await bystander.next()).data, 'still here');
  bystander.close();
});
