import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, post } from '../support/helpers';
import { ApiClient } from '../support/api-client';
import { shippedLua, startTwoNodes, type TwoNodes } from '../support/two-nodes';

// Reference 9.3: the video barrage. The shipped lua/entry.websocket.lua is the documented script as
// written, served on /barrage-videos of a two-node mesh; viewers on both nodes, publishes through both.

const COMMENT = '{"event":"@video","data":{"uid":1001,"video_id":100001,"msg":"Hello,World!"}}';

let mesh: TwoNodes;

before(async () => {
  mesh = await startTwoNodes({ path: '/barrage-videos', lua: { 'lua/entry.websocket.lua': shippedLua('entry.websocket.lua') } });
});

after(async () => {
  await mesh?.stop();
});

async function viewer(url: string, channel: string): Promise<TestClient> {
  const client = await TestClient.open(url);
  assert.equal(await client.request(JSON.stringify({ op: 'subscribe', channel })), '{"result":true}');
  return client;
}

test('9.3 barrage: the documented transcript, viewers on two nodes, comments published through either', async () => {
  const { a, b } = mesh;
  assert.match(a.wsUrl, /\/barrage-videos$/);
  const onA = await viewer(a.wsUrl, '100001@video');
  const onB = await viewer(b.wsUrl, '100001@video');
  for (const node of [a, b]) {
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: COMMENT })).json, { E: null, r: { s: 2, f: 0 } });
    for (const client of [onA, onB]) {
      const message = await client.next();
      assert.equal(message.data, COMMENT);
      assert.equal(message.binary, false);
    }
  }
  const api = await ApiClient.open(a.apiUrl);
  assert.deepEqual(await api.call('mesh.publish', { c: 'video:100001', d: COMMENT }), { E: null, r: { s: 2, f: 0 }, i: 1 });
  for (const client of [onA, onB]) assert.equal((await client.next()).data, COMMENT);
  api.close();

  // unsubscribe: answered, and that viewer gets nothing more.
  assert.equal(await onB.request('{"op":"unsubscribe","channel":"100001@video"}'), '{"result":true}');
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: COMMENT })).json.r, { s: 1, f: 0 });
  assert.equal((await onA.next()).data, COMMENT);
  assert.ok(await onB.silentFor(150));
  onA.close();
  onB.close();
});

test('9.3 barrage: every non-closing path answers {"result":true}, unknown ops and types included', async () => {
  const client = await TestClient.open(mesh.b.wsUrl);
  for (const request of [
    '{"op":"x","channel":"1@foo"}',
    '{"op":"subscribe","channel":"1@foo"}',
    '{"op":"unsubscribe","channel":"2@video"}',
    '{"op":"subscribe","channel":"@video"}',
  ]) {
    assert.equal(await client.request(request), '{"result":true}', request);
  }
  // "@video" splits into {"", "video"}: the viewer is now on "video:" (empty id), nothing else.
  assert.deepEqual((await post(`${mesh.a.apiUrl}/v1/mesh/publish`, { c: 'video:', d: 'empty id' })).json.r, { s: 1, f: 0 });
  assert.equal((await client.next()).data, 'empty id');
  assert.deepEqual((await post(`${mesh.a.apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'x' })).json.r, { s: 0, f: 0 });
  client.close();
});

test('9.3 barrage: bad JSON, a missing op and a channel that is not <id>@<type> close the connection (1000)', async () => {
  for (const request of [
    'not json',
    '{"channel":"1@video"}',
    '{"op":"subscribe"}',
    '{"op":"subscribe","channel":"100001"}',
    '{"op":"subscribe","channel":"1@video@x"}',
  ]) {
    const client = await TestClient.open(mesh.a.wsUrl);
    client.send(request);
    assert.equal((await client.waitClosed()).code, 1000, request);
    assert.equal(client.received.length, 0, request);
  }
});

test('10.1 barrage: a binary frame reaches conn:close() on a nil global: a Lua error closes that connection with 1011, only it', async () => {
  const bystander = await viewer(mesh.a.wsUrl, '42@video');
  const client = await viewer(mesh.a.wsUrl, '42@video');
  client.send(Buffer.from('{"op":"subscribe","channel":"42@video"}'), true);
  assert.deepEqual(await client.waitClosed(), { code: 1011, reason: 'script error' });
  assert.ok(mesh.a.logs.some((line) => line.includes("attempt to index a nil value (global 'conn')")), 'the Lua error is logged');
  assert.deepEqual((await post(`${mesh.b.apiUrl}/v1/mesh/publish`, { c: 'video:42', d: COMMENT })).json.r, { s: 1, f: 0 });
  assert.equal((await bystander.next()).data, COMMENT);
  bystander.close();
});
