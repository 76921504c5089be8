import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startNode, TestClient, EVAL, withTimeout, type TestNode, type Json } from '../support/helpers';
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

test('server.ping answers {"s":"server.pong"} (API page of May 2022)', async () => {
  const api = await RawApi.open(node.apiUrl);
  try {
    const [answer] = await api.exchange('{"m":"server.ping","p":[],"i":12345}');
    assert.deepEqual(JSON.parse(answer), { E: null, r: { s: 'server.pong' }, i: 12345 });
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
