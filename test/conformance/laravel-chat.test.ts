import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, withNode, get, type Json, type TestNodeOptions } from '../support/helpers';
import { ApiClient } from '../support/api-client';
import { RedisServer, redisCli } from '../support/redis';
import { shippedLua, startTwoNodes, type TwoNodes } from '../support/two-nodes';
import { PhpStyleConsumer, type ConsumerNode, type SdkMessage } from '../support/php-consumer';

// Reference 9.6 as CONNMIX users run it: connmix/examples laravel-chat's entry.lua and connmix/protocols'
// websocket.lua, unchanged (lua/examples/laravel-chat/, provenance in its README.md), on a
// `protocol: socket` server of each of two nodes, in CONNMIX v1.0.1's hook model (the connection is
// the hooks' last argument; no yaml switch: the entry's protocol_input(buf, conn) selects it). The
// backend follows laravel-chat's ChatMem.php (its `php artisan command:chat:mem`) through a consumer
// that speaks the PHP SDK's wire format: pop `chat` on every node, dispatch on d.event, and answer
// through the node the event came from.

const FOLDER = 'lua/examples/laravel-chat';

/**
 * The example folder as shipped, plus the printer its prettyprint.lua points at, and a websocket.lua in
 * the scripts folder that must not be the one loaded: `require` looks in the entry's folder first.
 */
function laravelChatFiles(): Record<string, string> {
  const files: Record<string, string> = {
    'lua/utils/prettyprint.lua': shippedLua('utils/prettyprint.lua'),
    'lua/protocols/websocket.lua': 'error("lua/protocols/websocket.lua was loaded instead of the example\'s own")',
  };
  for (const file of ['entry.lua', 'entry.2022-05-24.lua', 'prettyprint.lua', 'protocols/websocket.lua']) {
    files[`${FOLDER}/${file}`] = shippedLua(`examples/laravel-chat/${file}`);
  }
  return files;
}

/** Node options serving `lua/examples/laravel-chat/<entry>` on a socket server with no `hooks` key. */
function laravelChat(entry: string): TestNodeOptions {
  return { lua: laravelChatFiles(), socketEntry: `${FOLDER}/${entry}` };
}

/** users.sql, as the transcript logs in: name → id and password. */
const USERS: Record<string, { id: number; password: string }> = {
  user1: { id: 1, password: '123456' },
  user2: { id: 2, password: '123456' },
  user3: { id: 3, password: '123456' },
  user4: { id: 4, password: '123456' },
};

/**
 * ChatMem.php's handlers: handleEvent dispatches on d.event; handleQueueChat on the op of the frame's
 * JSON text. Every reply goes through the node the event came from, in the PHP's order.
 */
class ChatMemBackend {
  /** `users.online`, which auth sets and close clears. */
  readonly online = new Set<number>();
  readonly handshakes: string[] = [];
  private replies: Promise<SdkMessage>[] = [];

  /** Chat.php before 2022-05-26 (entry.2022-05-24.lua): topics `chat` and `conn`, dispatched on the topic. */
  handleConsume(node: ConsumerNode, event: Json): void {
    if (event.p.t === 'chat') this.handleQueueChat(node, event);
    else if (event.p.t === 'conn') this.handleQueueConn(event);
  }

  handleEvent(node: ConsumerNode, event: Json): void {
    const data = event.p.d;
    switch (data.event ?? '') {
      case 'close':
      case 'handshake':
        this.handleQueueConn(event);
        break;
      case 'message':
        this.handleQueueChat(node, event);
        break;
    }
  }

  private handleQueueChat(node: ConsumerNode, event: Json): void {
    const clientId: string = event.p.c;
    const data = event.p.d;
    const uid: number = data.uid ?? 0;
    let json: Json = null;
    try {
      json = JSON.parse(data.frame.data);
    } catch {
      // json_decode gives null
    }
    if (!json || typeof json !== 'object' || Object.keys(json).length === 0) {
      this.reply(node.meshSend(clientId, '{"error":"Json format error"}'));
      return;
    }
    const op: string = json.op ?? '';
    const args: Json[] = json.args ?? [];
    switch (op) {
      case 'ping':
        this.reply(node.meshSend(clientId, '{"op":"pong"}'));
        break;
      case 'auth':
        this.auth(node, clientId, args);
        break;
      case 'subscribe':
      case 'unsubscribe':
        if (!uid) return this.noAccess(node, clientId, op);
        this.reply(op === 'subscribe' ? node.subscribe(clientId, ...args) : node.connCall(clientId, 'unsubscribe', args));
        this.reply(node.meshSend(clientId, `{"op":"${op}","success":true}`));
        break;
      case 'sendtoroom':
      case 'sendtouser': {
        if (!uid) return this.noAccess(node, clientId, op);
        const [channel, message] = args;
        this.publish(node, channel, uid, message);
        this.reply(node.meshSend(clientId, `{"op":"${op}","success":true}`));
        break;
      }
      case 'sendbroadcast': {
        if (!uid) return this.noAccess(node, clientId, op);
        const [message] = args;
        this.publish(node, 'broadcast', uid, message);
        this.reply(node.meshSend(clientId, '{"op":"sendbroadcast","success":true}'));
        break;
      }
    }
  }

  private handleQueueConn(event: Json): void {
    const { event: name, uid = 0 } = event.p.d;
    if (name === 'handshake') this.handshakes.push(event.p.c);
    if (name === 'close' && uid) this.online.delete(uid);
  }

  /** The DB check; setContextValue releases the Lua waiting in wait_context_value (0 on failure). */
  private auth(node: ConsumerNode, clientId: string, [name, password]: string[]): void {
    const row = USERS[name];
    if (!row || row.password !== password) {
      this.reply(node.setContextValue(clientId, 'uid', 0));
      this.reply(node.meshSend(clientId, '{"op":"auth","error":"Invalid name or password"}'));
      return;
    }
    this.online.add(row.id);
    this.reply(node.setContextValue(clientId, 'uid', row.id));
    this.reply(node.meshSend(clientId, '{"op":"auth","success":true}'));
  }

  private publish(node: ConsumerNode, channel: string, uid: number, message: string): void {
    this.reply(node.meshPublish(channel, `{"event":"subscribe","channel":"${channel}","data":"uid:${uid},message:${message}"}`));
  }

  private noAccess(node: ConsumerNode, clientId: string, op: string): void {
    this.reply(node.meshSend(clientId, `{"op":"${op}","error":"No access"}`));
  }

  private reply(answer: Promise<SdkMessage>): void {
    this.replies.push(answer);
  }

  /** Waits for the requests sent so far; the engine must have answered each with a result. */
  async settled(): Promise<void> {
    const answers = await Promise.all(this.replies.splice(0));
    for (const answer of answers) assert.equal(answer.type, 'result', JSON.stringify(answer.frame));
  }
}

let mesh: TwoNodes;
let sdk: PhpStyleConsumer;
const chat = new ChatMemBackend();

before(async () => {
  mesh = await startTwoNodes(laravelChat('entry.lua'));
  sdk = await PhpStyleConsumer.start({
    host: mesh.a.apiUrl,
    topics: ['chat'],
    onMessage: (node, message) => {
      if (message.type === 'event') chat.handleEvent(node, message.frame);
    },
  });
});

after(async () => {
  sdk?.close();
  await mesh?.stop();
});

function chatUrl(node: { socketPort: number }): string {
  return `ws://127.0.0.1:${node.socketPort}/chat`;
}

async function login(url: string, name: string): Promise<TestClient> {
  const client = await TestClient.open(url);
  assert.equal(await client.request(JSON.stringify({ op: 'auth', args: [name, '123456'] })), '{"op":"auth","success":true}');
  return client;
}

function roomEvent(channel: string, uid: number, message: string): string {
  return `{"event":"subscribe","channel":"${channel}","data":"uid:${uid},message:${message}"}`;
}

test('9.6 laravel-chat, unchanged entry.lua + websocket.lua on socket servers: ping, auth, join a room, send to it, broadcast', async () => {
  const one = await TestClient.open(chatUrl(mesh.a));
  assert.equal(await one.request('{"op":"ping"}'), '{"op":"pong"}');
  assert.equal(await one.request('{"op":"auth","args":["user1","123456"]}'), '{"op":"auth","success":true}');
  const two = await login(chatUrl(mesh.b), 'user2');
  const three = await login(chatUrl(mesh.b), 'user3');
  assert.deepEqual([...chat.online].sort(), [1, 2, 3]);

  for (const client of [one, two]) {
    assert.equal(await client.request('{"op":"subscribe","args":["room_101"]}'), '{"op":"subscribe","success":true}');
  }
  for (const client of [one, two, three]) {
    assert.equal(await client.request('{"op":"subscribe","args":["broadcast"]}'), '{"op":"subscribe","success":true}');
  }

  // As in the README: the sender gets the room event, then the answer; the other member (on the other
  // node) gets the event; user3, not in the room, gets nothing.
  one.send('{"op":"sendtoroom","args":["room_101","hello,world!"]}');
  assert.equal((await one.next()).data, roomEvent('room_101', 1, 'hello,world!'));
  assert.equal((await one.next()).data, '{"op":"sendtoroom","success":true}');
  assert.equal((await two.next()).data, roomEvent('room_101', 1, 'hello,world!'));

  two.send('{"op":"sendbroadcast","args":["hi all"]}');
  assert.equal((await two.next()).data, roomEvent('broadcast', 2, 'hi all'));
  assert.equal((await two.next()).data, '{"op":"sendbroadcast","success":true}');
  for (const client of [one, three]) assert.equal((await client.next()).data, roomEvent('broadcast', 2, 'hi all'));
  assert.ok(await three.silentFor(200), 'user3 got only the broadcast');

  // The handshake events carried the client ids the engine gave.
  assert.equal(chat.handshakes.length >= 3, true);
  await chat.settled();
  for (const client of [one, two, three]) client.close();
});

test('9.6 laravel-chat: before auth, ops get "No access"; bad JSON is answered by the backend; a wrong password sets uid 0', async () => {
  const client = await TestClient.open(chatUrl(mesh.a));
  assert.equal(await client.request('{"op":"subscribe","args":["room_101"]}'), '{"op":"subscribe","error":"No access"}');
  assert.equal(await client.request('[]'), '{"error":"Json format error"}');
  assert.equal(await client.request('{"op":"auth","args":["user1","wrong"]}'), '{"op":"auth","error":"Invalid name or password"}');
  assert.equal(await client.request('{"op":"sendtoroom","args":["room_101","x"]}'), '{"op":"sendtoroom","error":"No access"}');
  await chat.settled();
  client.close();
});

test('9.6 laravel-chat: closing the WebSocket runs on_close(err, conn), which pushes the uid; the backend marks the user offline', async () => {
  const client = await login(chatUrl(mesh.b), 'user4');
  assert.ok(chat.online.has(4));
  client.close();
  await client.waitClosed();
  const closed = await sdk.nextEvent(10_000, ({ frame }) => frame.p.d.event === 'close' && frame.p.d.uid === 4);
  assert.equal(closed.node.id, mesh.b.engine.broker.nodeId);
  assert.ok(!chat.online.has(4));
  await chat.settled();
});

test('9.6 laravel-chat of 2022-05-24 (init() creating its queues with mix.queue.new, topics chat and conn): the transcript with Chat.php', async () => {
  const old = new ChatMemBackend();
  await withNode(laravelChat('entry.2022-05-24.lua'), async (node) => {
    // init() ran as the server started: both topics hold at most 100 waiting items. (The fillers carry
    // an op that Chat.php has no case for, so the backend lets them pass.)
    const filler = JSON.stringify({ event: 'filler', frame: { type: 'text', data: '{"op":"filler"}' } });
    for (const topic of ['chat', 'conn']) {
      for (let i = 0; i < 100; i++) node.engine.queue.push({ clientId: '0', topic, dataJson: filler });
      assert.throws(() => node.engine.queue.push({ clientId: '0', topic, dataJson: '{}' }), /topic "\w+" is full \(mix.queue.new gave it 100 items\)/);
    }
    const consumer = await PhpStyleConsumer.start({
      host: node.apiUrl,
      topics: ['chat', 'conn'],
      onMessage: (from, message) => {
        if (message.type === 'event') old.handleConsume(from, message.frame);
      },
    });
    try {
      const one = await login(chatUrl(node), 'user1');
      const two = await login(chatUrl(node), 'user2');
      for (const client of [one, two]) {
        assert.equal(await client.request('{"op":"subscribe","args":["room_101"]}'), '{"op":"subscribe","success":true}');
      }
      one.send('{"op":"sendtoroom","args":["room_101","hello,world!"]}');
      assert.equal((await one.next()).data, roomEvent('room_101', 1, 'hello,world!'));
      assert.equal((await one.next()).data, '{"op":"sendtoroom","success":true}');
      assert.equal((await two.next()).data, roomEvent('room_101', 1, 'hello,world!'));
      assert.equal(old.handshakes.length, 2, 'the handshake events came through topic conn');
      one.close();
      await consumer.nextEvent(10_000, ({ frame }) => frame.p.t === 'conn' && frame.p.d.event === 'close' && frame.p.d.uid === 1);
      assert.ok(!old.online.has(1));
      await old.settled();
      two.close();
    } finally {
      consumer.close();
    }
  });
});

test('9.6 laravel-chat on the Redis queue, as its README switches it: entry.lua on mix.redis.push, a ChatRds-style backend BRPOPs chat', async () => {
  const redis = await RedisServer.start();
  try {
    const files = laravelChatFiles();
    const shipped = files[`${FOLDER}/entry.lua`];
    // The README's step: use mix.redis.push instead of mix.queue.push (the line the entry has commented out).
    const switched = shipped.replace('local mix_push = mix.queue.push\n--local mix_push = mix.redis.push', '--local mix_push = mix.queue.push\nlocal mix_push = mix.redis.push');
    assert.notEqual(switched, shipped);
    // And connmix.yaml's redis, written as v1.0.1 did: one mapping.
    const options = { ...laravelChat('entry.lua'), lua: { ...files, [`${FOLDER}/entry.lua`]: switched }, luavmYaml: `    redis:\n      addr: ${redis.address}\n` };
    await withNode(options, async (node) => {
      // ChatRds: BRPOP chat 10, then $client->parse($item), which reads {"p": item}.
      const pop = async (): Promise<Json> => {
        const [, item] = (await redisCli(redis.port, 'BRPOP', 'chat', '10')).split('\n');
        assert.ok(item, 'an item within 10 s');
        return (JSON.parse(`{"p":${item}}`) as Json).p;
      };
      const client = await TestClient.open(chatUrl(node));
      const handshake = await pop();
      assert.equal(handshake.n, node.engine.broker.nodeId);
      assert.equal(handshake.t, 'chat');
      assert.equal(handshake.d.event, 'handshake');
      assert.match(handshake.c, /^\d{15,20}$/);
      client.send('{"op":"ping"}');
      const message = await pop();
      assert.equal(message.c, handshake.c);
      assert.equal(message.d.event, 'message');
      assert.equal(message.d.frame.data, '{"op":"ping"}');
      // ChatRds answers through $client->node($nodeID): the node the item names, found in GET /v1/nodes.
      const listed = (await get(`${node.apiUrl}/v1/nodes`)).json.nodes as Array<{ id: string; api_server: string }>;
      const target = listed.find((candidate) => candidate.id === message.n);
      assert.ok(target);
      const api = await ApiClient.open(`http://${target.api_server}`);
      const answer = await api.raw(`{"m":"mesh.send","p":{"c":${message.c},"d":"{\\"op\\":\\"pong\\"}"},"i":1}`, 1);
      assert.deepEqual(answer.r, { s: true });
      assert.equal((await client.next()).data, '{"op":"pong"}');
      api.close();
      client.close();
      // on_close(err, conn) pushes the close through Redis too.
      assert.equal((await pop()).d.event, 'close');
    });
  } finally {
    await redis.stop();
  }
});
