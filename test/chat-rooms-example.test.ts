import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, post, type Json } from './support/helpers';
import { nodeNumberOf } from '../src/mesh/ids';
import { exampleEntry, startTwoNodes, type TwoNodes } from './support/two-nodes';

// lua/examples/chat-rooms.lua (the bench's chat-room scenario runs it) on a two-node mesh over a real
// redis-server: rooms by name, a member in several rooms, says that reach every member of the room on
// either node (the sender too) and no one else, leave, and bad input that closes only its connection.

let mesh: TwoNodes;

before(async () => {
  mesh = await startTwoNodes(exampleEntry('chat-rooms.lua', '/chat'));
});

after(async () => {
  await mesh?.stop();
});

/** A client on `url` that has joined each of `rooms`, checking each answer. */
async function member(url: string, ...rooms: string[]): Promise<TestClient> {
  const client = await TestClient.open(url);
  for (const room of rooms) assert.deepEqual(JSON.parse(await client.request(JSON.stringify({ op: 'join', room }))), { op: 'joined', room });
  return client;
}

function say(client: TestClient, room: string, text: string): void {
  client.send(JSON.stringify({ op: 'say', room, text }));
}

/** The next `count` messages of `client`, parsed. */
async function nextSaid(client: TestClient, count: number): Promise<Json[]> {
  const out: Json[] = [];
  for (let i = 0; i < count; i++) out.push(JSON.parse((await client.next()).data));
  return out;
}

test('chat rooms: a say reaches every member of its room on both nodes, the sender included, in order, and no other room', async () => {
  const { a, b } = mesh;
  const alice = await member(a.wsUrl, 'lobby');
  const bob = await member(b.wsUrl, 'lobby');
  const carol = await member(b.wsUrl, 'games');
  const dave = await member(a.wsUrl, 'lobby', 'games');

  // Any text is safe: quotes, backslashes and non-ASCII survive json_encode.
  const texts = ['one', 'two says "hi" \\ back', 'drei ü €'];
  for (const text of texts) say(alice, 'lobby', text);
  const lobby = await nextSaid(alice, 3);
  const from = lobby[0].from;
  assert.match(from, /^\d{1,20}$/);
  assert.equal(nodeNumberOf(from), a.engine.broker.nodeNumber, "from is the sender's client_id, on node A");
  assert.deepEqual(lobby, texts.map((text) => ({ op: 'said', room: 'lobby', from, text })));
  assert.deepEqual(await nextSaid(bob, 3), lobby, 'bob on node B gets the same messages in the same order');
  assert.deepEqual(await nextSaid(dave, 3), lobby);

  say(carol, 'games', 'gg');
  const games = await nextSaid(carol, 1);
  assert.equal(games[0].text, 'gg');
  assert.equal(nodeNumberOf(games[0].from), b.engine.broker.nodeNumber);
  assert.deepEqual(await nextSaid(dave, 1), games, 'dave is in both rooms');

  // Nobody got another room's message.
  assert.ok(await carol.silentFor(200), 'carol is not in lobby');
  assert.ok(await alice.silentFor(0), 'alice is not in games');
  assert.ok(await bob.silentFor(0), 'bob is not in games');

  // A backend posts to a room through the HTTP API of either node: room:<name> is the channel.
  assert.deepEqual((await post(`${b.apiUrl}/v1/mesh/publish`, { c: 'room:lobby', d: 'from the backend' })).json.r, { s: 3, f: 0 });
  for (const client of [alice, bob, dave]) assert.equal((await client.next()).data, 'from the backend');
  for (const client of [alice, bob, carol, dave]) client.close();
});

test('chat rooms: leave answers and stops the room\'s messages; saying in a room left closes that connection', async () => {
  const { a, b } = mesh;
  const stays = await member(a.wsUrl, 'kitchen');
  const leaves = await member(b.wsUrl, 'kitchen', 'garden');
  assert.deepEqual(JSON.parse(await leaves.request('{"op":"leave","room":"kitchen"}')), { op: 'left', room: 'kitchen' });

  say(stays, 'kitchen', 'anyone?');
  assert.equal((await nextSaid(stays, 1))[0].text, 'anyone?');
  assert.ok(await leaves.silentFor(200), 'a member who left gets nothing of the room');

  // Still in the garden.
  say(leaves, 'garden', 'still here');
  assert.equal((await nextSaid(leaves, 1))[0].text, 'still here');

  say(leaves, 'kitchen', 'let me back');
  assert.equal((await leaves.waitClosed()).code, 1000);
  assert.ok(await stays.silentFor(200), 'the say of a non-member reached no one');
  stays.close();
});

test('chat rooms: bad input closes only that connection; the room goes on', async () => {
  const { a, b } = mesh;
  const bystander = await member(b.wsUrl, 'hall');
  const bad: (string | Buffer)[] = [
    'not json',
    '"a string"',
    'null',
    '{"op":"join"}',
    '{"op":"join","room":"two words"}',
    `{"op":"join","room":"${'r'.repeat(65)}"}`,
    '{"op":"join","room":7}',
    '{"op":"dance","room":"hall"}',
    '{"op":"say","room":"hall","text":"not joined"}',
    Buffer.from('{"op":"join","room":"hall"}'),
  ];
  for (const request of bad) {
    const client = await TestClient.open(a.wsUrl);
    client.send(request, Buffer.isBuffer(request));
    assert.equal((await client.waitClosed()).code, 1000, String(request));
    assert.equal(client.received.length, 0, String(request));
  }
  // A member whose text is not a string is closed too, after it joined.
  const member2 = await member(a.wsUrl, 'hall');
  member2.send('{"op":"say","room":"hall","text":{"nested":true}}');
  assert.equal((await member2.waitClosed()).code, 1000);

  const speaker = await member(a.wsUrl, 'hall');
  say(speaker, 'hall', 'the room goes on');
  assert.equal((await nextSaid(bystander, 1))[0].text, 'the room goes on');
  assert.equal((await nextSaid(speaker, 1))[0].text, 'the room goes on');
  assert.ok(await bystander.silentFor(100), 'none of the bad requests reached the room');
  bystander.close();
  speaker.close();
});
