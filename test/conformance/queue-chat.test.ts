import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, type Json } from '../support/helpers';
import { exampleEntry, startTwoNodes, type TwoNodes } from '../support/two-nodes';
import { PhpStyleConsumer, type ConsumerEvent, type ConsumerNode, type SdkMessage } from '../support/php-consumer';

// Reference 9.6, simplified: laravel-chat's engine side (lua/examples/queue-chat.lua) forwards every
// event to topic `chat`; the backend below plays ChatMem.php through a PHP-SDK-style consumer popping
// `chat` on both nodes. Its login is the point: the Lua pushes the auth message and then blocks in
// conn:wait_context_value("uid") until the backend's conn.call set_context_value releases it.

const USERS: Record<string, { id: number; password: string }> = { user1: { id: 1, password: '123456' }, user2: { id: 2, password: '654321' } };

const ROOM_EVENT = '{"event":"subscribe","channel":"room_101","data":"uid:1,message:hello,world!"}';

let mesh: TwoNodes;
let sdk: PhpStyleConsumer;
/** Auth events held back instead of answered, while a test wants the login pending. */
let holdAuth = false;
const heldAuth: { node: ConsumerNode; event: Json }[] = [];
let replies: Promise<SdkMessage>[] = [];

/** ChatMem.php's handlers, reduced to what the transcript needs. */
function backend(node: ConsumerNode, event: Json): void {
  const { c: clientId, d: data } = event.p;
  if (data.event !== 'message') return;
  let json: Json;
  try {
    json = JSON.parse(data.frame.data);
  } catch {
    json = null;
  }
  if (!json || typeof json !== 'object' || Object.keys(json).length === 0) {
    replies.push(node.meshSend(clientId, '{"error":"Json format error"}'));
    return;
  }
  const { op = '', args = [] } = json;
  const uid: number = data.uid ?? 0;
  if (op === 'auth') {
    if (holdAuth) {
      heldAuth.push({ node, event });
      return;
    }
    login(node, clientId, args);
    return;
  }
  if (op === 'ping') {
    replies.push(node.meshSend(clientId, '{"op":"pong"}'));
    return;
  }
  if (!uid) {
    replies.push(node.meshSend(clientId, `{"op":"${op}","error":"No access"}`));
    return;
  }
  if (op === 'subscribe') {
    replies.push(node.subscribe(clientId, ...args));
    replies.push(node.meshSend(clientId, '{"op":"subscribe","success":true}'));
  } else if (op === 'sendtoroom') {
    const [channel, message] = args;
    replies.push(node.meshPublish(channel, `{"event":"subscribe","channel":"${channel}","data":"uid:${uid},message:${message}"}`));
    replies.push(node.meshSend(clientId, '{"op":"sendtoroom","success":true}'));
  }
}

/** setContextValue releases the Lua (0 on failure, as laravel-chat's comment intends), then the answer. */
function login(node: ConsumerNode, clientId: string, [name, password]: string[]): void {
  const user = USERS[name];
  if (!user || user.password !== password) {
    replies.push(node.setContextValue(clientId, 'uid', 0));
    replies.push(node.meshSend(clientId, '{"op":"auth","error":"Invalid name or password"}'));
    return;
  }
  replies.push(node.setContextValue(clientId, 'uid', user.id));
  replies.push(node.meshSend(clientId, '{"op":"auth","success":true}'));
}

/** Waits for the backend's requests so far; each must have been answered with s: 1 or true. */
async function settled(): Promise<void> {
  const answers = await Promise.all(replies);
  replies = [];
  for (const answer of answers) assert.equal(answer.type, 'result', JSON.stringify(answer.frame));
}

before(async () => {
  mesh = await startTwoNodes(exampleEntry('queue-chat.lua', '/chat'));
  sdk = await PhpStyleConsumer.start({
    host: mesh.a.apiUrl,
    topics: ['chat'],
    onMessage: (node, message) => {
      if (message.type === 'event') backend(node, message.frame);
    },
  });
});

after(async () => {
  sdk?.close();
  await mesh?.stop();
});

async function login1(url: string, name: string, password: string): Promise<TestClient> {
  const client = await TestClient.open(url);
  assert.equal(await client.request(JSON.stringify({ op: 'auth', args: [name, password] })), '{"op":"auth","success":true}');
  return client;
}

test('9.6 queue chat: the laravel-chat transcript with one user on each node', async () => {
  const one = await login1(mesh.a.wsUrl, 'user1', '123456');
  const two = await login1(mesh.b.wsUrl, 'user2', '654321');
  for (const client of [one, two]) {
    assert.equal(await client.request('{"op":"subscribe","args":["room_101"]}'), '{"op":"subscribe","success":true}');
  }
  one.send('{"op":"sendtoroom","args":["room_101","hello,world!"]}');
  // Both members get the room event, the sender also the answer (in either order: see the next test).
  const got = [(await one.next()).data, (await one.next()).data].sort();
  assert.deepEqual(got, [ROOM_EVENT, '{"op":"sendtoroom","success":true}'].sort());
  assert.equal((await two.next()).data, ROOM_EVENT);
  assert.equal(await one.request('{"op":"ping"}'), '{"op":"pong"}');
  await settled();
  one.close();
  two.close();
});

test('9.6 queue chat: as in the transcript, the sender gets the room event before the answer (publish, then send, on one connection)', async () => {
  const one = await login1(mesh.a.wsUrl, 'user1', '123456');
  assert.equal(await one.request('{"op":"subscribe","args":["room_103"]}'), '{"op":"subscribe","success":true}');
  one.send('{"op":"sendtoroom","args":["room_103","hello,world!"]}');
  try {
    assert.equal((await one.next()).data, ROOM_EVENT.replace('room_101', 'room_103'));
    assert.equal((await one.next()).data, '{"op":"sendtoroom","success":true}');
  } finally {
    await settled();
    one.close();
  }
});

test('9.6 queue chat: the Lua waits in wait_context_value until the backend sets uid; later messages wait behind it', async () => {
  const b = mesh.b.engine.broker.nodeId;
  holdAuth = true;
  sdk.events.length = 0; // earlier tests' events; this client's handshake is the next one from B
  const client = await TestClient.open(mesh.b.wsUrl);
  try {
    client.send('{"op":"auth","args":["user1","123456"]}');
    client.send('{"op":"ping","n":1}');
    client.send('{"op":"subscribe","args":["room_202"]}');

    // The backend has the handshake and the auth event, with the handshake headers; nothing after it.
    const handshake = await sdk.nextEvent(3000, ({ node, frame }) => node.id === b && frame.p.d.event === 'handshake');
    const clientId: string = handshake.frame.p.c;
    const mine = ({ frame }: ConsumerEvent): boolean => frame.p.c === clientId;
    assert.equal(handshake.frame.p.d.headers['Sec-Websocket-Version'], '13');
    const auth = await sdk.nextEvent(3000, mine);
    assert.equal(auth.node.id, b);
    assert.equal(auth.frame.p.n, b);
    assert.deepEqual({ ...auth.frame.p.d, headers: undefined }, {
      event: 'message',
      frame: { type: 'text', data: '{"op":"auth","args":["user1","123456"]}', finish: true },
      headers: undefined,
    });
    assert.equal(auth.frame.p.d.headers['Sec-Websocket-Version'], '13');
    assert.ok(await sdk.quietFor(300, mine), 'the ping waits behind the pending login');
    assert.ok(await client.silentFor(0));

    // Release it the way laravel-chat does, on the node that holds the connection.
    const [held] = heldAuth.splice(0);
    login(held.node, held.event.p.c, ['user1', '123456']);
    assert.equal((await client.next()).data, '{"op":"auth","success":true}');
    const ping = await sdk.nextEvent(3000, mine);
    assert.equal(ping.frame.p.d.uid, 1, 'the next message carries the uid the backend set');
    assert.equal((await client.next()).data, '{"op":"pong"}');
    assert.equal((await client.next()).data, '{"op":"subscribe","success":true}');
    await settled();
  } finally {
    holdAuth = false;
    heldAuth.length = 0;
    client.close();
  }
});

test('9.6 queue chat: a failed login sets uid 0, which releases the Lua; the user then has no access', async () => {
  const client = await TestClient.open(mesh.a.wsUrl);
  assert.equal(await client.request('{"op":"auth","args":["user1","wrong"]}'), '{"op":"auth","error":"Invalid name or password"}');
  assert.equal(await client.request('{"op":"subscribe","args":["room_101"]}'), '{"op":"subscribe","error":"No access"}');
  // The Lua drops what it cannot decode; JSON that PHP's empty() rejects reaches the backend.
  client.send('not json');
  assert.ok(await client.silentFor(150));
  assert.equal(await client.request('[]'), '{"error":"Json format error"}');
  await settled();
  client.close();
});

test('9.6 queue chat: on_close pushes a close event with the uid of the closed connection', async () => {
  sdk.events.length = 0;
  const client = await login1(mesh.b.wsUrl, 'user2', '654321');
  const { frame: handshake } = await sdk.nextEvent(3000, ({ frame }) => frame.p.d.event === 'handshake');
  client.close();
  await client.waitClosed();
  const { node, frame } = await sdk.nextEvent(3000, ({ frame: event }) => event.p.c === handshake.p.c && event.p.d.event === 'close');
  assert.equal(node.id, mesh.b.engine.broker.nodeId);
  assert.deepEqual(frame.p.d, { event: 'close', uid: 2 });
  await settled();
});
