import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EVAL, ROOT, TestClient, post, startNode, type TestNode } from '../support/helpers';
import { ApiClient } from '../support/api-client';
import { parseConfig } from '../../src/config';

// Reference section 10: the documentation's inconsistencies, and what connmix-ts does about each.
// Pinned elsewhere: 10.1 (barrage, message-center and exchange tests), 10.2 (message-center and
// exchange tests), 10.5 (queue-round-trip test), 10.6 (protocols test). The rest are here, on one node
// running the test EVAL entry (each text message runs as Lua; the results come back as a JSON array).

let node: TestNode;

before(async () => {
  node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, path: '/chat' });
});

after(async () => {
  await node?.stop();
});

async function evalClient(query = ''): Promise<{ client: TestClient; id: string }> {
  const client = await TestClient.open(`${node.wsUrl}${query}`);
  const [id] = JSON.parse(await client.request('return mix.websocket():client_id()'));
  return { client, id };
}

test('10.3 the URL parser answers to all three documented names, parse_str, parse_url and url_parse', async () => {
  // The FAQ's query-string recipe, with each name.
  const { client } = await evalClient('?foo=bar&n=1');
  assert.deepEqual(JSON.parse(await client.request('return handshake.server.RequestUri')), ['/chat?foo=bar&n=1']);
  const parsed = JSON.parse(await client.request(`
    local uri = handshake.server.RequestUri
    return mix.parse_str(uri).query.foo, mix.parse_url(uri).query.foo, mix.url_parse(uri).query.n,
      mix.url_parse(uri).path, mix.parse_str == mix.parse_url and mix.url_parse == mix.parse_url`));
  assert.deepEqual(parsed, ['bar', 'bar', '1', '/chat', true]);
  client.close();
});

test('10.4 /ws/v1 takes "id" for "i" (the docs\' mesh.send example) and always answers with "i"', async () => {
  const { client, id } = await evalClient();
  const api = await ApiClient.open(node.apiUrl);
  const raw = await new Promise<string>((resolve) => {
    api.ws.once('message', (data: Buffer) => resolve(data.toString()));
    api.ws.send(JSON.stringify({ m: 'mesh.send', p: { c: id, d: 'hello' }, id: 12345 }));
  });
  assert.equal(raw, '{"E":null,"r":{"s":true},"i":12345}');
  assert.equal((await client.next()).data, 'hello');
  // "i" wins when a request has both; events carry "i": null (never "id"), see the queue tests.
  assert.deepEqual(await api.raw({ m: 'mesh.publish', p: { c: 'none', d: 'x' }, i: 7, id: 8 }, 7), { E: null, r: { s: 0, f: 0 }, i: 7 });
  api.close();
  client.close();
});

test('10.7 params wrapped in a one-element array (May 2022 docs) are accepted, and queue.pop takes a bare list (PHP SDK)', async () => {
  const { client, id } = await evalClient();
  const api = await ApiClient.open(node.apiUrl);
  assert.deepEqual((await api.call('conn.call', [{ c: id, f: 'subscribe', a: ['wrapped'] }])).r, { s: true });
  assert.deepEqual((await api.call('mesh.publish', [{ c: 'wrapped', d: 'via publish' }])).r, { s: 1, f: 0 });
  assert.equal((await client.next()).data, 'via publish');
  assert.deepEqual((await api.call('mesh.send', [{ c: id, d: 'via send' }])).r, { s: true });
  assert.equal((await client.next()).data, 'via send');
  assert.deepEqual((await api.call('conn.call', [{ c: id, f: 'set_context_value', a: ['k', 'v'] }])).r, { s: true });
  assert.deepEqual(JSON.parse(await client.request('return mix.websocket():context_value("k")')), ['v']);
  assert.deepEqual((await api.call('queue.pop', ['topic-a', 'topic-b'])).r, { s: true });
  assert.equal((await api.call('queue.pop', { t: ['topic-a'] })).E?.c, 202, 'the bare list popped topic-a');
  api.close();
  client.close();
});

test('10.8 mesh.send is never guessed to be a publish (the PHP SyncNode::meshPublish bug): a channel as "c" is 101', async () => {
  const { client } = await evalClient();
  assert.deepEqual(JSON.parse(await client.request('return tostring(mix.websocket():subscribe("room:1"))')), ['nil']);
  const api = await ApiClient.open(node.apiUrl);
  const answer = await api.call('mesh.send', { c: 'room:1', d: 'meant for the room' });
  assert.equal(answer.E?.c, 101);
  assert.equal('r' in answer, false);
  assert.equal((await post(`${node.apiUrl}/v1/mesh/send`, { c: 'room:1', d: 'meant for the room' })).json.E.c, 101);
  assert.ok(await client.silentFor(100));
  api.close();
  client.close();
});

test('10.9 engine.apiServer.readBufferSize and writeBufferSize default to the shipped literal 40096', () => {
  const config = parseConfig('engine:\n  apiServer:\n    port: 6789\n', '/tmp/connmix.yaml', { warn: () => undefined });
  assert.equal(config.engine.apiServer.readBufferSize, 40096);
  assert.equal(config.engine.apiServer.writeBufferSize, 40096);
  // The shipped connmix.yaml spells it out the same way.
  const shipped = fs.readFileSync(path.join(ROOT, 'connmix.yaml'), 'utf8');
  assert.match(shipped, /apiServer:[\s\S]*?readBufferSize: 40096/);
});
