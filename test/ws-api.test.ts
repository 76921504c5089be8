import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, withNode, withTimeout, metric, TestClient, EVAL, type TestNode } from './support/helpers';
import { ApiClient } from './support/api-client';

let node: TestNode;
before(async () => {
  node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, path: '/chat' });
});
after(async () => {
  await node.stop();
});

async function clientWithId(): Promise<{ client: TestClient; id: string }> {
  const client = await TestClient.open(node.wsUrl);
  const [id] = JSON.parse(await client.request('return mix.websocket():client_id()'));
  return { client, id };
}

test('mesh.publish and mesh.send answer {E, r, i}', async () => {
  const api = await ApiClient.open(node.apiUrl);
  const { client, id } = await clientWithId();
  assert.equal(await client.request('return tostring(mix.websocket():subscribe("ws-news"))'), '["nil"]');
  const published = await api.call('mesh.publish', { c: 'ws-news', d: 'headline' });
  assert.deepEqual(published, { E: null, r: { s: 1, f: 0 }, i: published.i });
  assert.equal((await client.next()).data, 'headline');
  assert.deepEqual((await api.call('mesh.send', { c: id, d: 'direct' })).r, { s: true });
  assert.equal((await client.next()).data, 'direct');
  assert.deepEqual((await api.call('mesh.send', { c: id, d: Buffer.from([9]).toString('base64'), t: 'binary' })).r, { s: true });
  assert.deepEqual((await client.next()).raw, Buffer.from([9]));
  const gone = await api.call('mesh.send', { c: '1234567890123456789', d: 'x' });
  assert.equal(gone.E?.c, 401);
  client.close();
  api.close();
});

test('answers keep the request order and echo `i`, or `id` as the docs sometimes write', async () => {
  const api = await ApiClient.open(node.apiUrl);
  const answers: unknown[] = [];
  api.ws.on('message', (data: Buffer) => answers.push(JSON.parse(data.toString()).i));
  for (let i = 1; i <= 20; i++) api.ws.send(JSON.stringify({ m: 'mesh.publish', p: { c: 'order', d: String(i) }, i }));
  const viaId = await api.raw({ m: 'mesh.publish', p: { c: 'order', d: 'x' }, id: 12345 }, 12345);
  assert.deepEqual(viaId.r, { s: 0, f: 0 });
  assert.deepEqual(answers.slice(0, 20), Array.from({ length: 20 }, (_, k) => k + 1));
  // May 2022 docs wrapped params in an array.
  assert.deepEqual((await api.call('mesh.publish', [{ c: 'order', d: 'x' }])).r, { s: 0, f: 0 });
  api.close();
});

test('invalid requests answer 101 and the connection stays usable', async () => {
  const api = await ApiClient.open(node.apiUrl);
  const bad = await api.raw('{not json', null);
  assert.equal(bad.E?.c, 101);
  for (const [m, p] of [
    ['nope', {}],
    ['mesh.publish', { c: 'a b', d: 'x' }],
    ['mesh.publish', { c: 'x' }],
    ['mesh.send', { c: 'abc', d: 'x' }],
    ['mesh.send', { c: '1', d: '%%%', t: 'binary' }],
    ['queue.pop', { t: [] }],
    ['queue.pop', { t: 'topic' }],
    ['conn.call', { c: '1', f: 'close', a: [] }],
    ['conn.call', { c: '1', f: 'subscribe', a: 'x' }],
    ['conn.call', { c: '1', f: 'set_context_value', a: ['only-key'] }],
    ['conn.call', { c: 'x', f: 'subscribe', a: ['a'] }],
    ['mesh.publish', 'string params'],
  ] as const) {
    const answer = await api.call(m, p);
    assert.equal(answer.E?.c, 101, `${m} ${JSON.stringify(p)} → ${JSON.stringify(answer)}`);
    // CONNMIX's error shape: {"E": {...}, "i": ...}, no "r" at all.
    assert.deepEqual(Object.keys(answer).sort(), ['E', 'i']);
  }
  assert.deepEqual((await api.call('mesh.publish', { c: 'still', d: 'ok' })).r, { s: 0, f: 0 });
  api.close();
});

test('conn.call sets context and subscriptions of a connection; unknown clients answer 301', async () => {
  const api = await ApiClient.open(node.apiUrl);
  const { client, id } = await clientWithId();
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context_value', a: ['uid', 1001] })).r, { s: true });
  assert.equal(await client.request('return mix.websocket():context_value("uid")'), '[1001]');
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context', a: [{ room: 'r9', vip: true }] })).r, { s: true });
  assert.deepEqual(JSON.parse(await client.request('return mix.websocket():context()')), [{ room: 'r9', vip: true }]);
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'subscribe', a: ['room:r9', 'room:all'] })).r, { s: true });
  assert.deepEqual((await api.call('mesh.publish', { c: 'room:r9', d: 'to r9' })).r, { s: 1, f: 0 });
  assert.equal((await client.next()).data, 'to r9');
  assert.deepEqual((await api.call('conn.call', { c: id, f: 'unsubscribe', a: ['room:r9'] })).r, { s: true });
  assert.deepEqual((await api.call('mesh.publish', { c: 'room:r9', d: 'x' })).r, { s: 0, f: 0 });
  const bad = await api.call('conn.call', { c: id, f: 'subscribe', a: ['has space'] });
  assert.equal(bad.E?.c, 301);
  const missing = await api.call('conn.call', { c: '1234567890123456789', f: 'subscribe', a: ['a'] });
  assert.equal(missing.E?.c, 301);
  assert.match(missing.E?.m ?? '', /not found/);
  client.close();
  api.close();
});

test('queue round trip: Lua pushes, a backend pops, replies with mesh.send (the v1.0.1 start-debug flow of CONNMIX)', async () => {
  await withNode({
    lua: {
      'lua/entry.websocket.lua': `
function on_handshake() end
function on_close() end
function on_message(msg)
  local n, err = mix.queue.push("foo", { frame = msg })
  if err then mix.websocket():send("push failed: " .. err) end
end`,
    },
  }, async (local) => {
    const consumer = await ApiClient.open(local.apiUrl);
    assert.deepEqual((await consumer.call('queue.pop', { t: ['foo'] })).r, { s: true });
    const viewer = await TestClient.open(local.wsUrl);
    viewer.send('test');
    const event = await consumer.nextEvent();
    assert.equal(event.e, 'queue.pop');
    assert.equal(event.i, null);
    assert.equal(event.p.n, local.engine.broker.nodeId);
    assert.equal(event.p.t, 'foo');
    assert.deepEqual(event.p.d, { frame: { type: 'text', data: 'test', finish: true } });
    assert.deepEqual((await consumer.call('mesh.send', { c: event.p.c, d: 'received: test' })).r, { s: true });
    assert.equal((await viewer.next()).data, 'received: test');
    viewer.close();
    consumer.close();
  });
});

const QUEUE_ENTRY = `
function on_handshake() end
function on_close() end
function on_message(msg)
  local conn = mix.websocket()
  local f = load(msg.data)
  conn:send(mix.json_encode({ f() }))
end`;

test('queue: items wait for a consumer, are shared round robin, and survive a consumer leaving', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': QUEUE_ENTRY }, engineYaml: '    queue:\n      topicSize: 3\n      maxTopics: 2' }, async (local) => {
    const pusher = await TestClient.open(local.wsUrl);
    const push = async (topic: string, data: string) => JSON.parse(await pusher.request(`return mix.queue.push("${topic}", "${data}")`));
    assert.deepEqual(await push('jobs', 'a'), [1]);
    assert.deepEqual(await push('jobs', 'b'), [2]);
    assert.deepEqual(await push('jobs', 'c'), [3]);
    const full = await push('jobs', 'd');
    assert.match(full[1] ?? full['2'], /topic "jobs" is full \(topicSize is 3\)/);
    assert.deepEqual(await push('other', 'x'), [1]);
    const tooMany = await push('third', 'x');
    assert.match(tooMany['2'], /too many topics \(maxTopics is 2\)/);
    const longName = JSON.parse(await pusher.request('return mix.queue.push(string.rep("t", 1025), "x")'));
    assert.match(longName['2'], /topic name of 1025 characters, longer than 1024/);
    const first = await ApiClient.open(local.apiUrl);
    assert.deepEqual((await first.call('queue.pop', { t: ['jobs'] })).r, { s: true });
    assert.equal((await first.call('queue.pop', { t: ['jobs'] })).E?.c, 202);
    assert.deepEqual([(await first.nextEvent()).p.d, (await first.nextEvent()).p.d, (await first.nextEvent()).p.d], ['a', 'b', 'c']);
    const second = await ApiClient.open(local.apiUrl);
    assert.deepEqual((await second.call('queue.pop', ['jobs'])).r, { s: true });
    for (const data of ['1', '2', '3', '4']) assert.deepEqual(await push('jobs', data), [0]);
    const got = [(await first.nextEvent()).p.d, (await second.nextEvent()).p.d, (await first.nextEvent()).p.d, (await second.nextEvent()).p.d];
    assert.deepEqual(got.sort(), ['1', '2', '3', '4']);
    assert.equal(first.events.length + second.events.length, 0);
    assert.deepEqual((await first.call('queue.unpop', {})).r, { s: true });
    assert.equal((await first.call('queue.unpop', {})).E?.c, 203);
    second.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await push('jobs', 'kept'), [1]);
    const third = await ApiClient.open(local.apiUrl);
    await third.call('queue.pop', { t: ['jobs'] });
    assert.equal((await third.nextEvent()).p.d, 'kept');
    first.close();
    third.close();
    pusher.close();
  });
});

test('queue: topicBytes caps a topic and maxBytes the node; a refused push answers nil, err, is counted, and room comes back when items are taken', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': QUEUE_ENTRY }, engineYaml: '    queue:\n      topicBytes: 2500\n      maxBytes: 4000' }, async (local) => {
    const pusher = await TestClient.open(local.wsUrl);
    const data = 'x'.repeat(1000);
    const push = async (topic: string) => JSON.parse(await pusher.request(`return mix.queue.push("${topic}", string.rep("x", 1000))`));
    assert.deepEqual(await push('a'), [1]);
    assert.deepEqual(await push('a'), [2]);
    const topicFull = await push('a');
    assert.equal(topicFull['1'], undefined);
    assert.match(topicFull['2'], /^queue: topic "a" is full \(topicBytes is 2500, it holds \d+, the item has \d+\)$/);
    assert.deepEqual(await push('b'), [1]);
    const nodeFull = await push('b');
    assert.match(nodeFull['2'], /^queue: the node's queue is full \(maxBytes is 4000, it holds \d+, the item has \d+\)$/);
    assert.equal(local.engine.queue.waitingItems, 3);
    assert.ok(local.engine.queue.waitingBytes > 3000 && local.engine.queue.waitingBytes <= 4000);
    assert.equal(await metric(local.apiUrl, /^connmix_queue_refused_total\{.*reason="topic_bytes"/), 1);
    assert.equal(await metric(local.apiUrl, /^connmix_queue_refused_total\{.*reason="node_bytes"/), 1);
    assert.equal(await metric(local.apiUrl, /^connmix_queue_waiting_bytes\b/), local.engine.queue.waitingBytes);
    // A consumer takes topic a: its bytes are free again for b.
    const consumer = await ApiClient.open(local.apiUrl);
    await consumer.call('queue.pop', { t: ['a'] });
    assert.deepEqual([(await consumer.nextEvent()).p.d, (await consumer.nextEvent()).p.d], [data, data]);
    assert.deepEqual(await push('b'), [2]);
    consumer.close();
    pusher.close();
  });
});

test('ping frames are answered; an idle API connection is closed after readTimeout', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, engineYaml: '' , apiReadTimeout: 1 }, async (local) => {
    const api = await ApiClient.open(local.apiUrl);
    const pong = new Promise<void>((resolve) => api.ws.once('pong', () => resolve()));
    api.ws.ping();
    await pong;
    const code = await new Promise<number>((resolve) => api.ws.once('close', (c) => resolve(c)));
    assert.equal(code, 4001);
  });
});

test('mix.queue.push with wrong arguments raises or answers nil, err, and queues nothing', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    const answer = await client.request(`
      local function err(f) local ok, e = pcall(f) return ok and "no error" or e end
      local cyclic = {} cyclic.self = cyclic
      local n, fnErr = mix.queue.push("t", { f = print })
      local m, cycleErr = mix.queue.push("t", cyclic)
      return err(function() return mix.queue.push(nil, "x") end), err(function() return mix.queue.push("", "x") end),
        err(function() return mix.queue.push("t") end), tostring(n), fnErr, tostring(m), cycleErr`);
    const [noTopic, emptyTopic, noData, n, fnErr, m, cycleErr] = JSON.parse(answer);
    assert.match(noTopic, /bad argument #1 .*string expected, got nil/);
    assert.match(emptyTopic, /bad argument #1 .*topic must not be empty/);
    assert.match(noData, /bad argument #2 .*string expected, got no value/);
    assert.equal(n, 'nil');
    assert.match(fnErr, /^queue.push: /);
    assert.equal(m, 'nil');
    assert.match(cycleErr, /^queue.push: /);
    assert.equal(node.engine.queue.waitingItems, 0);
    client.close();
  });
});

test('queue.pop past maxTopics or of a name over 1024 characters answers 201 and the consumer keeps its other topics', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, engineYaml: '    queue:\n      topicSize: 3\n      maxTopics: 2' }, async (node) => {
    const api = await ApiClient.open(node.apiUrl);
    assert.deepEqual((await api.call('queue.pop', { t: ['a', 'b'] })).r, { s: true });
    const refused = await api.call('queue.pop', { t: ['c'] });
    assert.equal(refused.E?.c, 201);
    assert.match(refused.E?.m ?? '', /too many topics \(maxTopics is 2\)/);
    const longName = await api.call('queue.pop', { t: ['t'.repeat(1025)] });
    assert.equal(longName.E?.c, 201);
    assert.match(longName.E?.m ?? '', /topic name of 1025 characters, longer than 1024/);
    const pusher = await TestClient.open(node.wsUrl);
    assert.equal(await pusher.request('return mix.queue.push("a", "still")'), '[0]');
    assert.equal((await api.nextEvent()).p.d, 'still');
    pusher.close();
    api.close();
  });
});

test('queue items a slow consumer could not take wait for the next consumer when it drops', async () => {
  // 1,500 pushes of 4 KB in one hook take longer than the default 100 ms budget here.
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, callBudget: 2000 }, async (node) => {
    const slow = await ApiClient.open(node.apiUrl);
    assert.deepEqual((await slow.call('queue.pop', { t: ['jobs'] })).r, { s: true });
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const pusher = await TestClient.open(node.wsUrl);
    const count = 1500;
    assert.equal(await pusher.request(`for i = 1, ${count} do mix.queue.push("jobs", string.rep("x", 4000) .. "#" .. i) end return 1`), '[1]');
    // Past its buffer limit the slow consumer is offered nothing more: the rest waits in the queue.
    const waiting = node.engine.queue.waitingItems;
    assert.ok(waiting > 0 && waiting < count, `${waiting} waiting`);
    slow.ws.terminate();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = await ApiClient.open(node.apiUrl);
    assert.deepEqual((await next.call('queue.pop', { t: ['jobs'] })).r, { s: true });
    const received: string[] = [];
    while (!received.at(-1)?.endsWith(`#${count}`)) received.push(String((await next.nextEvent(5000)).p.d));
    assert.equal(received.length, waiting);
    assert.equal(node.engine.queue.waitingItems, 0);
    pusher.close();
    next.close();
  });
});

test('stopping a node does not wait for a /ws/v1 client that stopped reading', async () => {
  const node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL } });
  const stalled = await ApiClient.open(node.apiUrl);
  (stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  // Without a cut-off the close handshake would wait for ws's 30 s close timeout.
  await withTimeout(node.stop(), 10_000, 'the node did not stop');
  stalled.ws.terminate();
});

test('a stopping node hands what its closing clients\' on_close hooks push to the queue consumers still connected', async () => {
  const node = await startNode({
    lua: {
      'lua/entry.websocket.lua': `
function on_handshake() end
function on_message() end
function on_close(client_id) mix.queue.push("left", client_id) end`,
    },
  });
  const consumer = await ApiClient.open(node.apiUrl);
  assert.deepEqual((await consumer.call('queue.pop', { t: ['left'] })).r, { s: true });
  const viewers = [await TestClient.open(node.wsUrl), await TestClient.open(node.wsUrl)];
  const stopped = node.stop();
  const left = [(await consumer.nextEvent()).p.d, (await consumer.nextEvent()).p.d];
  await stopped;
  assert.equal(new Set(left).size, 2);
  for (const id of left) assert.match(id, /^\d+$/);
  for (const viewer of viewers) assert.equal((await viewer.waitClosed()).code, 1001);
});
