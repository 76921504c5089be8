import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { Engine } from '../src/engine';
import { Backoff } from '../src/client/backoff';
import { ConnmixClient, ConnmixError, ErrorCode, NodeSocket, type QueueEvent } from '../src/client';
import { startNode, TestClient, withTimeout, type TestNode, waitFor } from './support/helpers';
import { memoryLogger } from './support/lua-harness';
import { meshYaml, SEED_WITH_TEST_OPS, viewer } from './support/mesh';
import { RedisServer } from './support/redis';

// The SDK against real engines: HTTP publish and send, /ws/v1 sockets, queue consumption with replies,
// access.users credentials, reconnection after an engine restart, node discovery across a Redis mesh.

/** A chat entry: each text message is pushed to the `chat` queue; "uid?" answers the context's uid. */
const CHAT_ENTRY = {
  'lua/entry.websocket.lua': `
function on_handshake(client_id, headers, server) end
function on_message(msg)
  local conn = mix.websocket()
  if msg.data == "uid?" then conn:send("uid=" .. tostring(conn:context_value("uid"))) return end
  local n, err = mix.queue.push("chat", { text = msg.data })
  if err then conn:send("push failed: " .. err) end
end
function on_close(client_id, err) end
`,
};

const ACCESS = `    - username: backend
      password: s3cret
      roles: [read, write]
      host: '*'
`;

const FAST = { backoff: { minMs: 50, maxMs: 200 }, timeoutMs: 3000 };

let seed: TestNode;
let chat: TestNode;
let guarded: TestNode;

before(async () => {
  [seed, chat, guarded] = await Promise.all([
    startNode({ lua: SEED_WITH_TEST_OPS }),
    startNode({ lua: CHAT_ENTRY }),
    startNode({ lua: CHAT_ENTRY, accessYaml: ACCESS }),
  ]);
});

after(async () => {
  await Promise.all([seed, chat, guarded].map((node) => node?.stop()));
});

/** Awaits `promise` and returns the ConnmixError it rejects with. */
async function failure(promise: Promise<unknown>): Promise<ConnmixError> {
  const error = await promise.then(
    () => assert.fail('expected a ConnmixError'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConnmixError, `expected a ConnmixError, got ${String(error)}`);
  return error;
}

/** Collects queue events and lets a test wait for the next one. */
function inbox(): { events: QueueEvent[]; next(ms?: number): Promise<QueueEvent> } {
  const events: QueueEvent[] = [];
  return {
    events,
    next: async (ms = 3000) => (await waitFor('a queue event', () => events.shift(), ms, 10)) as QueueEvent,
  };
}

test('the package exports the SDK as connmix-ts/client', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolving the package's own name at run time is what this test checks
  const viaExports = require('connmix-ts/client');
  assert.equal(viaExports.ConnmixClient, ConnmixClient);
  assert.equal(viaExports.ConnmixError, ConnmixError);
});

test('publish reaches seed viewers as one text frame, with typed counts', async () => {
  const client = new ConnmixClient({ url: seed.apiUrl });
  const watcher = await viewer(seed.wsUrl, 100001);
  const event = { event: '@video', data: { uid: 1001, video_id: 100001, msg: 'Hello,World!' } };
  assert.deepEqual(await client.publish('video:100001', event), { delivered: 1, failed: 0 });
  assert.equal((await watcher.next()).data, JSON.stringify(event));
  assert.deepEqual(await client.publish('video:100001', 'plain text'), { delivered: 1, failed: 0 });
  assert.equal((await watcher.next()).data, 'plain text');
  await client.publish('video:100001', new Uint8Array([0, 1, 255]), { binary: true });
  const frame = await watcher.next();
  assert.equal(frame.binary, true);
  assert.deepEqual([...frame.raw], [0, 1, 255]);
  assert.deepEqual(await client.publish('video:999', 'nobody'), { delivered: 0, failed: 0 });
  watcher.close();
});

test('send reaches one connection; unknown clients and bad channels fail with their E codes', async () => {
  const client = new ConnmixClient({ url: seed.apiUrl.replace('http://', '') });
  const target = await TestClient.open(seed.wsUrl);
  const clientId = await target.request('!id');
  await client.send(clientId, 'just you');
  assert.equal((await target.next()).data, 'just you');

  const gone = await failure(client.send('12345', 'x'));
  assert.equal(gone.code, ErrorCode.SEND_FAILED);
  assert.equal(gone.status, 200);
  const bad = await failure(client.publish('has space', 'x'));
  assert.equal(bad.code, ErrorCode.INVALID_PARAMS);
  assert.deepEqual(await client.version(), ['v1']);
  target.close();
});

test('a node socket publishes, sends and reports E codes without HTTP', async () => {
  const client = new ConnmixClient({ url: seed.apiUrl, ...FAST });
  try {
    const socket = await client.node();
    assert.equal(await client.node(), socket, 'sockets are reused');
    const watcher = await viewer(seed.wsUrl, 7);
    assert.deepEqual(await socket.publish('video:7', { event: '@video' }), { delivered: 1, failed: 0 });
    assert.equal((await watcher.next()).data, '{"event":"@video"}');
    const unknown = await failure(socket.call('no.such.method', {}));
    assert.equal(unknown.code, ErrorCode.INVALID_PARAMS);
    const gone = await failure(socket.send('42', 'x'));
    assert.equal(gone.code, ErrorCode.SEND_FAILED);
    const notConsuming = await failure(socket.unpop());
    assert.equal(notConsuming.code, ErrorCode.UNCONSUME_FAILED);
    watcher.close();
  } finally {
    client.close();
  }
});

test('a consumer gets queue items and answers with send, setContextValue, subscribe and publish', async () => {
  const client = new ConnmixClient({ url: chat.apiUrl, ...FAST });
  const seen = inbox();
  const consumer = client.consume('chat', async (event, node) => {
    seen.events.push(event);
    const { text } = event.data as { text: string };
    await node.setContextValue(event.clientId, 'uid', 42);
    await node.subscribe(event.clientId, 'room:1');
    await node.send(event.clientId, `got ${text}`);
  });
  try {
    await consumer.ready();
    const user = await TestClient.open(chat.wsUrl);
    user.send('hello');
    assert.equal((await user.next()).data, 'got hello');
    const event = await seen.next();
    assert.equal(event.topic, 'chat');
    assert.deepEqual(event.data, { text: 'hello' });
    assert.equal(event.nodeId, (await client.nodes())[0].id);
    assert.equal(await user.request('uid?'), 'uid=42');
    const socket = await client.node();
    assert.deepEqual(await socket.publish('room:1', 'to the room'), { delivered: 1, failed: 0 });
    assert.equal((await user.next()).data, 'to the room');
    await socket.unsubscribe(event.clientId, 'room:1');
    await socket.setContext(event.clientId, { uid: 7 });
    assert.equal(await user.request('uid?'), 'uid=7');
    user.close();
  } finally {
    client.close();
  }
});

test('access.users: credentials go on HTTP and on the /ws/v1 upgrade; missing ones fail with 401', async () => {
  const anonymous = new ConnmixClient({ url: guarded.apiUrl });
  const refused = await failure(anonymous.publish('video:1', 'x'));
  assert.equal(refused.status, 401);
  assert.equal(refused.code, ErrorCode.UNAUTHORIZED);

  const wrong = new ConnmixClient({ url: guarded.apiUrl, credentials: { username: 'backend', password: 'nope' }, ...FAST });
  const errors: ConnmixError[] = [];
  wrong.consume('chat', () => undefined, { onError: (error) => errors.push(error as ConnmixError) });
  await waitFor('a 401 from node discovery', () => errors.some((error) => error.status === 401), 3000);
  wrong.close();
  const badUpgrade: ConnmixError[] = [];
  const socket = new NodeSocket(`${guarded.apiUrl.replace('http', 'ws')}/ws/v1`, {
    headers: { authorization: `Basic ${Buffer.from('backend:nope').toString('base64')}` },
    onError: (error) => badUpgrade.push(error),
  });
  await waitFor('the upgrade refused with 401', () => badUpgrade[0]?.status === 401, 3000);
  socket.close();

  const client = new ConnmixClient({ url: guarded.apiUrl, credentials: { username: 'backend', password: 's3cret' }, ...FAST });
  const seen = inbox();
  const consumer = client.consume(['chat'], (event) => {
    seen.events.push(event);
  });
  try {
    assert.deepEqual(await client.publish('video:1', 'x'), { delivered: 0, failed: 0 });
    await consumer.ready();
    const user = await TestClient.open(guarded.wsUrl);
    user.send('through the guard');
    assert.deepEqual((await seen.next()).data, { text: 'through the guard' });
    user.close();
  } finally {
    client.close();
  }
});

test('a consumer reconnects with backoff after its engine restarts, and pops again', async () => {
  const node = await startNode({ lua: CHAT_ENTRY });
  const client = new ConnmixClient({ url: node.apiUrl, ...FAST });
  const seen = inbox();
  const connects: string[] = [];
  const consumer = client.consume('chat', (event) => void seen.events.push(event), { onConnect: (info) => connects.push(info.id) });
  let restarted: Engine | null = null;
  try {
    await consumer.ready();
    await node.stop();
    const { log } = memoryLogger();
    restarted = new Engine(loadConfig(path.join(node.dir, 'connmix.yaml')), { log });
    await restarted.start();
    await waitFor('the consumer pops again on the restarted engine', () => connects.length >= 2, 5000);
    const user = await TestClient.open(node.wsUrl);
    user.send('after the restart');
    assert.deepEqual((await seen.next()).data, { text: 'after the restart' });
    user.close();
  } finally {
    client.close();
    await restarted?.stop();
  }
});

test('requests wait for a connection within their timeout, then fail with NO_ANSWER', async () => {
  const node = await startNode();
  const client = new ConnmixClient({ url: node.apiUrl, backoff: { minMs: 5000 }, timeoutMs: 300 });
  try {
    const socket = await client.node();
    await node.stop();
    await waitFor('the socket notices the engine is gone', () => !socket.connected, 3000);
    const lost = await failure(socket.publish('video:1', 'x'));
    assert.equal(lost.code, ErrorCode.NO_ANSWER);
    const unreachable = await failure(client.publish('video:1', 'x'));
    assert.equal(unreachable.code, ErrorCode.NO_ANSWER);
  } finally {
    client.close();
  }
});

test('discovery: one consumer consumes on every node of a Redis mesh, and finds nodes that join', async () => {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  const meshNode = async () => {
    const node = await startNode({ lua: CHAT_ENTRY, engineYaml: meshYaml([redis.address], 'sdk:') });
    nodes.push(node);
    return node;
  };
  const [a, b] = [await meshNode(), await meshNode()];
  const client = new ConnmixClient({ url: a.apiUrl, ...FAST });
  const seen = inbox();
  const consumer = client.consume('chat', (event) => void seen.events.push(event), { refreshMs: 300 });
  try {
    await consumer.ready();
    assert.equal(consumer.nodes.length, 2);
    for (const [node, text] of [[a, 'on a'], [b, 'on b']] as const) {
      const user = await TestClient.open(node.wsUrl);
      user.send(text);
      assert.deepEqual((await seen.next()).data, { text });
      user.close();
    }
    const c = await meshNode();
    await waitFor('the consumer finds the new node', () => consumer.nodes.length === 3, 5000);
    await consumer.ready();
    const user = await TestClient.open(c.wsUrl);
    user.send('on c');
    const event = await seen.next();
    assert.deepEqual(event.data, { text: 'on c' });
    assert.ok(consumer.nodes.some((info) => info.id === event.nodeId));
    user.close();
  } finally {
    client.close();
    await withTimeout(Promise.all(nodes.map((node) => node.stop())), 10_000, 'mesh nodes did not stop');
    await redis.stop();
  }
});

test('reconnection delays start at minMs, double up to maxMs with at most 20% jitter, and reset after a success', () => {
  const backoff = new Backoff({ minMs: 100, maxMs: 1000 });
  const delays = Array.from({ length: 7 }, () => backoff.next());
  const bases = [100, 200, 400, 800, 1000, 1000, 1000];
  delays.forEach((delay, i) => assert.ok(delay >= bases[i] && delay <= bases[i] * 1.2, `delay ${i}: ${delay} for ${bases[i]}`));
  backoff.reset();
  const again = backoff.next();
  assert.ok(again >= 100 && again <= 120, `after reset: ${again}`);
});
