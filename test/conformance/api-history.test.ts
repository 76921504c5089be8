import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startNode, withNode, get, TestClient, EVAL, withTimeout, type TestNode, type Json } from '../support/helpers';
import { Waker } from '../support/waker';

// The /ws/v1 requests that CONNMIX's material showed at some point of its history and that no other
// test makes: the keep-alives of the API page (a `server.ping` request in May 2022, a text `ping` since
// August 2022), and requests of the PHP SDK (connmix/connmix-php) that other tests make in another
// form. Each test sends the request as the page or the SDK writes it and checks the answer it shows or
// parses.

let node: TestNode;
before(async () => {
  node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, path: '/chat' });
});
after(async () => {
  await node.stop();
});

/** A bare /ws/v1 connection that keeps every text frame it receives, in order. */
class RawApi {
  readonly frames: string[] = [];
  private readonly waker = new Waker();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.frames.push(data.toString('utf8'));
      this.waker.wake();
    });
  }

  static async open(apiUrl: string): Promise<RawApi> {
    const ws = new WebSocket(`${apiUrl.replace(/^http/, 'ws')}/ws/v1`);
    await withTimeout(new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }), 10_000, 'connect to /ws/v1');
    return new RawApi(ws);
  }

  /** Sends `text` and resolves with the next `count` frames. */
  async exchange(text: string, count = 1): Promise<string[]> {
    const start = this.frames.length;
    this.ws.send(text);
    await this.waker.until(() => this.frames.length >= start + count, 10_000, () => `no answer to ${text}`);
    return this.frames.slice(start, start + count);
  }

  /** The first frame received from `start` on that `match` accepts, waiting for it. */
  async frame(start: number, match: (frame: string) => boolean): Promise<string> {
    await this.waker.until(() => this.frames.slice(start).some(match), 10_000, () => 'no matching frame');
    return this.frames.slice(start).find(match) as string;
  }

  close(): void {
    this.ws.close();
  }
}

test('a text ping on /ws/v1 answers a text pong, in order with the answers around it (API page since August 2022)', async () => {
  const api = await RawApi.open(node.apiUrl);
  try {
    assert.deepEqual(await api.exchange('ping'), ['pong']);
    // Between two requests, the pong keeps its place.
    api.ws.send('{"m":"mesh.publish","p":{"c":"quiet","d":"x"},"i":1}');
    const answers = await api.exchange('ping', 2);
    assert.deepEqual(answers.map((frame) => (frame === 'pong' ? frame : (JSON.parse(frame) as Json).i)), [1, 'pong']);
    // Anything else that is not JSON is still a 101.
    const [bad] = await api.exchange('ping ');
    assert.equal((JSON.parse(bad) as Json).E.c, 101);
  } finally {
    api.close();
  }
});

test('server.ping answers server.pong under s (API page of May 2022) and under m (August 2022)', async () => {
  const api = await RawApi.open(node.apiUrl);
  try {
    const [may] = await api.exchange('{"m":"server.ping","p":[],"i":12345}');
    assert.equal((JSON.parse(may) as Json).r.s, 'server.pong');
    const [august] = await api.exchange('{"m":"server.ping","p":{},"i":12346}');
    assert.deepEqual(JSON.parse(august), { E: null, r: { s: 'server.pong', m: 'server.pong' }, i: 12346 });
  } finally {
    api.close();
  }
});

test('the PHP SDK setContext with an empty PHP array, sent as a = [[]], empties the context', async () => {
  const client = await TestClient.open(node.wsUrl);
  const api = await RawApi.open(node.apiUrl);
  try {
    const [id] = JSON.parse(await client.request('return mix.websocket():client_id()')) as string[];
    client.send('mix.websocket():set_context_value("uid", 1001) return mix.websocket():context_value("uid")');
    assert.equal((await client.next()).data, '[1001]');
    // json_encode(['m' => 'conn.call', 'p' => ['c' => $id, 'f' => 'set_context', 'a' => [[]]], 'i' => 7]):
    // the SDK types client ids as int, and an empty PHP array is the JSON list [].
    const [answer] = await api.exchange(`{"m":"conn.call","p":{"c":${id},"f":"set_context","a":[[]]},"i":7}`);
    assert.deepEqual(JSON.parse(answer), { E: null, r: { s: true }, i: 7 });
    assert.equal(await client.request('return mix.websocket():context_value("uid") == nil'), '[true]');
    assert.equal(await client.request('return mix.json_encode(mix.websocket():context())'), '["{}"]');
    // A list that is not empty is no context: still 101.
    const [list] = await api.exchange(`{"m":"conn.call","p":{"c":${id},"f":"set_context","a":[[1,2]]},"i":8}`);
    assert.equal((JSON.parse(list) as Json).E.c, 101);
  } finally {
    api.close();
    client.close();
  }
});

// A business script for the long-form consumer: pushes what a client says to topic "foo", and answers
// "ctx" with its context value "uid".
const PUSH_TO_FOO = `
function on_handshake(client_id, headers, server) end
function on_close(client_id, err) end
function on_message(msg)
  local conn = mix.websocket()
  if msg.data == "ctx" then conn:send(tostring(conn:context_value("uid"))) return end
  mix.queue.push("foo", { msg = msg.data })
end
`;

test('PHP SDK v1.0.1 to v1.0.4 and the API page of March to May 2022: the long form {method, params, id}, as laravel-chat locks it', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': PUSH_TO_FOO }, path: '/chat' }, async (push) => {
    // Discovery: these SDK versions read each node's address as `host`.
    const { json } = await get(`${push.apiUrl}/v1/nodes`);
    const api = await RawApi.open(`http://${json.nodes[0].host}`);
    const client = await TestClient.open(push.wsUrl);
    const ask = async (request: string): Promise<Json> => JSON.parse((await api.exchange(request))[0]);
    try {
      // Consume: the request of the page's debugging steps and of the SDK's Consumer.
      assert.deepEqual(await ask('{"method":"queue.consume","params":["foo"],"id":12345}'), { error: null, result: { success: true }, id: 12345 });
      const start = api.frames.length;
      client.send('test');
      const parsed = JSON.parse(await api.frame(start, (frame) => frame.includes('"event"'))) as Json;
      assert.deepEqual(parsed, { event: 'queue.consume', result: { client_id: parsed.result.client_id, queue: 'foo', data: { msg: 'test' } }, id: null });
      assert.match(parsed.result.client_id, /^\d{15,20}$/);
      // The SDK reads client_id as an int and writes it back as a JSON number.
      const id = parsed.result.client_id as string;

      // conn.call, as v1.0.3 and v1.0.4 (func, args) and as v1.0.1 (method, and params [$key => $value]).
      assert.deepEqual(await ask(`{"method":"conn.call","params":{"client_id":${id},"func":"set_context_value","args":["uid",1001]},"id":2}`),
        { error: null, result: { success: true }, id: 2 });
      assert.equal(await client.request('ctx'), '1001');
      assert.deepEqual(await ask(`{"method":"conn.call","params":{"client_id":${id},"method":"set_context_value","params":{"uid":7}},"id":3}`),
        { error: null, result: { success: true }, id: 3 });
      assert.equal(await client.request('ctx'), '7');
      // The page's form: params in a one-element list, client_id a string.
      assert.deepEqual(await ask(`{"method":"conn.call","params":[{"client_id":"${id}","func":"subscribe","args":["room1"]}],"id":4}`),
        { error: null, result: { success: true }, id: 4 });

      // mesh.publish {channel, data}; and meshPublish of these SDK versions, sent as mesh.send with a channel.
      assert.deepEqual(await ask('{"method":"mesh.publish","params":{"channel":"room1","data":"to the room"},"id":5}'),
        { error: null, result: { fail: 0, success: true, total: 1 }, id: 5 });
      assert.equal((await client.next()).data, 'to the room');
      assert.deepEqual(await ask('{"method":"mesh.send","params":{"channel":"room1","data":"again"},"id":6}'),
        { error: null, result: { fail: 0, success: true, total: 1 }, id: 6 });
      assert.equal((await client.next()).data, 'again');

      // mesh.send {client_id, data}: the reply of the page's debugging steps.
      assert.deepEqual(await ask(`{"method":"mesh.send","params":[{"client_id":${id},"data":"hello, world!"}],"id":7}`),
        { error: null, result: { fail: 0, success: true, total: 1 }, id: 7 });
      assert.equal((await client.next()).data, 'hello, world!');
      assert.deepEqual(await ask('{"method":"mesh.send","params":{"client_id":1234567890123456789,"data":"x"},"id":8}'),
        { error: { code: 401, message: 'send failed: client 1234567890123456789 not found or gone' }, id: 8 });

      // Unconsume, then again: 203, in the long form.
      assert.deepEqual(await ask('{"method":"queue.unconsume","params":[],"id":9}'), { error: null, result: { success: true }, id: 9 });
      const again = await ask('{"method":"queue.unconsume","params":[],"id":10}');
      assert.equal(again.error.code, 203);
      assert.equal(again.id, 10);
      assert.deepEqual(await ask('{"method":"server.ping","params":[],"id":1}'), { error: null, result: { status: 'server.pong' }, id: 1 });
      // A bad request still answers in the long form.
      assert.equal((await ask('{"method":"conn.call","params":{"client_id":"x","func":"subscribe","args":[]},"id":11}')).error.code, 101);
    } finally {
      client.close();
      api.close();
    }
  });
});

test('PHP SDK v1.0.5: each method\'s request as json_encode writes it, and the answer its Message parses, the sync node reading the next frame', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': PUSH_TO_FOO }, path: '/chat' }, async (push) => {
    const consumer = await RawApi.open(push.apiUrl);
    const sync = await RawApi.open(push.apiUrl);
    const client = await TestClient.open(push.wsUrl);
    /** SyncNode::send: the next frame is the answer; it must carry the request's i. */
    const call = async (request: string, i: number): Promise<Json> => {
      const [frame] = await sync.exchange(request);
      const answer = JSON.parse(frame) as Json;
      assert.equal(answer.i, i, frame);
      return answer;
    };
    try {
      // AsyncNode::pop('foo'): a bare topic list.
      assert.deepEqual(JSON.parse((await consumer.exchange('{"m":"queue.pop","p":["foo"],"i":1}'))[0]), { E: null, r: { s: true }, i: 1 });
      const start = consumer.frames.length;
      client.send('hello');
      // Message: type() "event" (e set), nodeID() p.n, clientID() p.c, topic() p.t, data() p.d (an array), id() null.
      const event = JSON.parse(await consumer.frame(start, (frame) => frame.includes('"e"'))) as Json;
      assert.equal(event.e, 'queue.pop');
      assert.equal(event.i, null);
      assert.equal(event.p.n, push.engine.broker.nodeId);
      assert.equal(event.p.t, 'foo');
      assert.deepEqual(event.p.d, { msg: 'hello' });
      const id = event.p.c as string;
      assert.match(id, /^\d{15,20}$/);
      assert.ok(BigInt(id) < 2n ** 63n, 'fits the SDK\'s PHP int');

      // setContextValue, setContext (json_encode escapes non-ASCII), subscribe: {"s": true}, read by success().
      assert.deepEqual(await call(`{"m":"conn.call","p":{"c":${id},"f":"set_context_value","a":["uid",1001]},"i":2}`, 2), { E: null, r: { s: true }, i: 2 });
      assert.equal(await client.request('ctx'), '1001');
      assert.deepEqual((await call(`{"m":"conn.call","p":{"c":${id},"f":"set_context","a":[{"uid":2002,"name":"\\u4e2d"}]},"i":3}`, 3)).r, { s: true });
      assert.equal(await client.request('ctx'), '2002');
      assert.deepEqual((await call(`{"m":"conn.call","p":{"c":${id},"f":"subscribe","a":["room:1","room:2"]},"i":4}`, 4)).r, { s: true });
      // SyncNode::meshPublish sends mesh.send with the channel: 101 (compatibility.md, 10.8).
      assert.equal((await call('{"m":"mesh.send","p":{"c":"room:1","d":"x"},"i":5}', 5)).E.c, 101);
      // AsyncNode::meshPublish, and send('mesh.publish', [...]) from a sync node: {"s": delivered, "f": failed}.
      assert.deepEqual((await call('{"m":"mesh.publish","p":{"c":"room:1","d":"{\\"broadcast\\":\\"ok\\"}"},"i":6}', 6)).r, { s: 1, f: 0 });
      assert.equal((await client.next()).data, '{"broadcast":"ok"}');
      assert.deepEqual((await call(`{"m":"conn.call","p":{"c":${id},"f":"unsubscribe","a":["room:1"]},"i":7}`, 7)).r, { s: true });
      assert.deepEqual((await call('{"m":"mesh.publish","p":{"c":"room:1","d":"x"},"i":8}', 8)).r, { s: 0, f: 0 });
      // meshSend, as the quick start answers an event.
      assert.deepEqual((await call(`{"m":"mesh.send","p":{"c":${id},"d":"received: hello"},"i":9}`, 9)).r, { s: true });
      assert.equal((await client.next()).data, 'received: hello');
      // A send to a client that is gone: error() {"c": 401, "m"}, no r.
      const gone = await call('{"m":"mesh.send","p":{"c":1234567890123456789,"d":"x"},"i":10}', 10);
      assert.equal(gone.E.c, 401);
      assert.equal('r' in gone, false);
      // send('queue.unpop'): params default to [], json_encode's empty list.
      assert.deepEqual(JSON.parse((await consumer.exchange('{"m":"queue.unpop","p":[],"i":11}'))[0]), { E: null, r: { s: true }, i: 11 });
    } finally {
      client.close();
      sync.close();
      consumer.close();
    }
  });
});
