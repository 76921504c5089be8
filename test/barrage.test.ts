import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, post, type TestNode } from './support/helpers';

// The seed's "test" section, end to end on one node with the shipped Lua and the embedded broker.
const SUBSCRIBE = '{"op":"subscribe","channel":"100001@video"}';
const COMMENT = '{"event":"@video","data":{"uid":1001,"video_id":100001,"msg":"Hello,World!"}}';

let node: TestNode;
before(async () => {
  node = await startNode();
});
after(async () => {
  await node.stop();
});

test('seed transcript: subscribe, {"result":true}, publish, exact d received', async () => {
  const viewer = await TestClient.open(node.wsUrl);
  assert.equal(await viewer.request(SUBSCRIBE), '{"result":true}');
  const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: COMMENT });
  assert.deepEqual(answer.json, { E: null, r: { s: 1, f: 0 } });
  const message = await viewer.next();
  assert.equal(message.data, COMMENT);
  assert.equal(message.binary, false);
  viewer.close();
});

test('publish counts every subscriber, and only subscribers of that video', async () => {
  const viewers = await Promise.all(Array.from({ length: 5 }, () => TestClient.open(node.wsUrl)));
  const other = await TestClient.open(node.wsUrl);
  for (const viewer of viewers) assert.equal(await viewer.request('{"op":"subscribe","channel":"777@video"}'), '{"result":true}');
  assert.equal(await other.request('{"op":"subscribe","channel":"778@video"}'), '{"result":true}');
  const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:777', d: 'comment' });
  assert.deepEqual(answer.json, { E: null, r: { s: 5, f: 0 } });
  for (const viewer of viewers) assert.equal((await viewer.next()).data, 'comment');
  assert.ok(await other.silentFor(100), 'a viewer of another video got the comment');
  const nobody = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:999999', d: 'x' });
  assert.deepEqual(nobody.json, { E: null, r: { s: 0, f: 0 } });
  for (const client of [...viewers, other]) client.close();
});

test('unsubscribe stops delivery; switching videos works as the seed describes', async () => {
  const viewer = await TestClient.open(node.wsUrl);
  assert.equal(await viewer.request('{"op":"subscribe","channel":"1@video"}'), '{"result":true}');
  assert.equal(await viewer.request('{"op":"unsubscribe","channel":"1@video"}'), '{"result":true}');
  assert.equal(await viewer.request('{"op":"subscribe","channel":"2@video"}'), '{"result":true}');
  assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'old' })).json.r, { s: 0, f: 0 });
  assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:2', d: 'new' })).json.r, { s: 1, f: 0 });
  assert.equal((await viewer.next()).data, 'new');
  assert.ok(await viewer.silentFor(100));
  viewer.close();
});

test('unknown ops and types still answer {"result":true}, as the seed script does', async () => {
  const viewer = await TestClient.open(node.wsUrl);
  assert.equal(await viewer.request('{"op":"x","channel":"1@foo"}'), '{"result":true}');
  viewer.close();
});

for (const [name, frame, binary] of [
  ['bad JSON', '{"op":', false],
  ['a missing op', '{"channel":"1@video"}', false],
  ['a bad channel', '{"op":"subscribe","channel":"100001"}', false],
  ['a channel with too many parts', '{"op":"subscribe","channel":"1@video@x"}', false],
  ['a binary frame', 'binary', true],
] as const) {
  test(`${name} closes only that connection`, async () => {
    const bystander = await TestClient.open(node.wsUrl);
    assert.equal(await bystander.request('{"op":"subscribe","channel":"55@video"}'), '{"result":true}');
    const offender = await TestClient.open(node.wsUrl);
    offender.send(binary ? Buffer.from(frame) : frame, binary);
    const { code } = await offender.waitClosed();
    // conn:close() answers 1000; the seed's binary branch calls close on a nil global: a Lua error, 1011.
    assert.equal(code, binary ? 1011 : 1000);
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:55', d: 'still here' })).json.r, { s: 1, f: 0 });
    assert.equal((await bystander.next()).data, 'still here');
    bystander.close();
  });
}

test('a binary publish arrives as one binary frame with the decoded bytes', async () => {
  const viewer = await TestClient.open(node.wsUrl);
  assert.equal(await viewer.request('{"op":"subscribe","channel":"9@video"}'), '{"result":true}');
  const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
  const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:9', d: bytes.toString('base64'), t: 'binary' });
  assert.deepEqual(answer.json.r, { s: 1, f: 0 });
  const message = await viewer.next();
  assert.equal(message.binary, true);
  assert.deepEqual(message.raw, bytes);
  viewer.close();
});

test('large and multi-byte comments arrive intact', async () => {
  const viewer = await TestClient.open(node.wsUrl);
  assert.equal(await viewer.request('{"op":"subscribe","channel":"10@video"}'), '{"result":true}');
  const comments = ['弹幕 😀 ok', 'x'.repeat(200), 'y'.repeat(70_000)];
  for (const d of comments) assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'video:10', d })).json.r, { s: 1, f: 0 });
  for (const d of comments) assert.equal((await viewer.next()).data, d);
  viewer.close();
});
