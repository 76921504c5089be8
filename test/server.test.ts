import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { withNode, startNode, TestClient, post, freePort, metric, waitFor, sleep, EVAL, type TestNode } from './support/helpers';
import { Engine } from '../src/engine';
import { parseConfig } from '../src/config';
import { memoryLogger } from './support/lua-harness';

test('requests to other paths are refused before the upgrade', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const port = new URL(node.wsUrl).port;
    for (const other of ['/', '/chat', '/barrage-videos/x', '/barrage-videosx']) {
      await assert.rejects(TestClient.open(`ws://127.0.0.1:${port}${other}`), /HTTP 404/, other);
    }
    const withQuery = await TestClient.open(`${node.wsUrl}?token=abc`);
    assert.deepEqual(JSON.parse(await withQuery.request('return handshake.server.RequestUri')), ['/barrage-videos?token=abc']);
    withQuery.close();
    const plain = await new Promise<number>((resolve) => http.get(node.wsUrl.replace('ws:', 'http:'), (res) => resolve(res.statusCode ?? 0)));
    assert.equal(plain, 426);
  });
});

test('on_handshake receives client_id, Go-style headers and the server table', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const client = await TestClient.open(node.wsUrl, { headers: { 'user-agent': 'test-agent', 'x-custom': 'v' } });
    const [info] = JSON.parse(await client.request(`
      return { id = handshake.id == mix.websocket():client_id(), ua = handshake.headers["User-Agent"],
        custom = handshake.headers["X-Custom"], version = handshake.headers["Sec-Websocket-Version"],
        method = handshake.server.Method, proto = handshake.server.ServerProtocol,
        host = handshake.server.Host, remote = handshake.server.RemoteAddr, addr = mix.websocket():remote_addr() }`));
    assert.equal(info.id, true);
    assert.equal(info.ua, 'test-agent');
    assert.equal(info.custom, 'v');
    assert.equal(info.version, '13');
    assert.equal(info.method, 'GET');
    assert.equal(info.proto, 'HTTP/1.1');
    assert.match(info.host, /^127\.0\.0\.1:\d+$/);
    assert.match(info.remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(info.addr, info.remote);
    client.close();
  });
});

test('a failing on_handshake closes that connection with 1011, and on_close still runs', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const watcher = await TestClient.open(node.wsUrl);
    assert.equal(await watcher.request('mix.websocket():subscribe("closes") return 1'), '[1]');
    const failing = new TestClient(node.wsUrl, { headers: { 'x-fail': 'handshake' } });
    const { code, reason } = await failing.waitClosed();
    assert.equal(code, 1011);
    assert.equal(reason, 'script error');
    assert.match((await watcher.next()).data, /^\d+ close 1011: script error$/);
    assert.ok(node.logs.some((line) => line.includes('handshake refused by script') && /"client_id":"\d+"/.test(line)));
    watcher.close();
  });
});

/** Waits until a /metrics sample reaches `value` (close events are counted once the socket has closed on our side too). */
async function waitForMetric(node: TestNode, pattern: RegExp, value: number): Promise<void> {
  await waitFor(`${pattern} to reach ${value}`, async () => (await metric(node.apiUrl, pattern)) === value, 20_000);
}

test('a message larger than maxMessageSize closes that connection with 1009', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      maxMessageSize: 1000' }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request(`return "${'a'.repeat(900)}" ~= nil`), '[true]');
    client.send('x'.repeat(1001));
    assert.equal((await client.waitClosed()).code, 1009);
    await waitForMetric(node, /^connmix_closes_total\{code="1009"/, 1);
  });
});

test('readTimeout: a silent client that answers pings stays; one that does not is closed with 4001', async () => {
  // 4 s: the ping goes out after 2 s of silence and its pong has a second or more to come back, even on
  // a busy machine (with 2 s, one slow second closed the client that does answer).
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      readTimeout: 4' }, async (node) => {
    // ws clients answer pings as browsers do.
    const quiet = await TestClient.open(node.wsUrl);
    const deaf = await TestClient.open(node.wsUrl, { autoPong: false });
    const { code, reason } = await deaf.waitClosed(20_000);
    assert.equal(code, 4001);
    assert.equal(reason, 'read timeout');
    await sleep(1500);
    assert.equal(await quiet.request('return "still here"'), '["still here"]');
    quiet.close();
  });
});

test('readTimeout counts from the last message: a client that talks for several timeouts stays; one that stops talking and does not answer pings is closed with 4001', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      readTimeout: 4' }, async (node) => {
    const talker = await TestClient.open(node.wsUrl);
    const deafLater = await TestClient.open(node.wsUrl, { autoPong: false });
    // Both talk every 500 ms for 6 s, past one whole readTimeout, so each is looked at while active.
    for (let i = 0; i < 12; i++) {
      assert.equal(await deafLater.request(`return ${i}`), `[${i}]`);
      assert.equal(await talker.request(`return ${i}`), `[${i}]`);
      await sleep(500);
    }
    // deafLater goes quiet: it is pinged, does not answer, and is closed; talker keeps talking meanwhile.
    const closed = deafLater.waitClosed(30_000);
    let sent = 0;
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    while (!isClosed && sent < 60) {
      assert.equal(await talker.request(`return "still ${sent}"`), `["still ${sent}"]`);
      sent++;
      await sleep(500);
    }
    const { code, reason } = await closed;
    assert.equal(code, 4001);
    assert.equal(reason, 'read timeout');
    assert.equal(await talker.request('return "after"'), '["after"]');
    talker.close();
  });
});

test('a wall-clock step does not time connections out: timeouts run on a monotonic clock', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      readTimeout: 4' }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('return 1'), '[1]');
    // The wall clock jumps an hour ahead (an NTP step, a resumed VM) while the client sits quiet: every
    // connection would look an hour silent to a watch that read Date.now().
    const realNow = Date.now;
    Date.now = () => realNow() + 3_600_000;
    try {
      // Two sweeps of the timeout watch (one a second), well within the 4 s timeout on the monotonic clock.
      await sleep(2500);
      assert.equal(await client.request('return "still here"'), '["still here"]');
    } finally {
      Date.now = realNow;
    }
    client.close();
  });
});

test('a runaway hook is stopped within its budget while other connections keep being answered', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, callBudget: 100 }, async (node) => {
    const busy = await TestClient.open(node.wsUrl);
    const sneaky = await TestClient.open(node.wsUrl);
    const bystander = await TestClient.open(node.wsUrl);
    busy.send('while true do end');
    sneaky.send('while true do pcall(function() while true do end end) end');
    assert.equal(await bystander.request('return 40 + 2'), '[42]');
    for (const client of [busy, sneaky]) {
      const { code, reason } = await client.waitClosed();
      assert.equal(code, 1011);
      assert.equal(reason, 'script timeout');
    }
    assert.equal(await bystander.request('return "still here"'), '["still here"]');
    assert.ok(node.logs.some((line) => line.includes('budget exceeded')));
    bystander.close();
  });
});

test('a connection\'s events run in order, one at a time', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    for (let i = 0; i < 50; i++) client.send(`local c = mix.websocket() local n = (c:context_value("n") or 0) + 1 c:set_context_value("n", n) return n`);
    for (let i = 1; i <= 50; i++) assert.equal((await client.next()).data, `[${i}]`);
    client.close();
  });
});

test('on_close gets the client_id; a normal close has no error', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const watcher = await TestClient.open(node.wsUrl);
    assert.equal(await watcher.request('mix.websocket():subscribe("closes") return 1'), '[1]');
    const leaving = await TestClient.open(node.wsUrl);
    const [id] = JSON.parse(await leaving.request('return mix.websocket():client_id()'));
    leaving.close();
    assert.equal((await watcher.next()).data, `${id} nil`);
    const dropped = await TestClient.open(node.wsUrl);
    const [droppedId] = JSON.parse(await dropped.request('return mix.websocket():client_id()'));
    dropped.ws.terminate();
    assert.equal((await watcher.next()).data, `${droppedId} close 1006`);
    watcher.close();
  });
});

test('a truncated handshake and garbage bytes do not disturb the node', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const port = Number(new URL(node.wsUrl).port);
    for (const junk of ['GET /barrage-videos HTTP/1.1\r\nUpgrade: websocket\r\n', '\x00\x01\x02 not http\r\n\r\n']) {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(junk);
      socket.end();
      await new Promise((resolve) => socket.once('close', resolve));
    }
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('return 1'), '[1]');
    client.close();
  });
});

test('publish reaches subscribers from Lua too, with counts', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const a = await TestClient.open(node.wsUrl);
    const b = await TestClient.open(node.wsUrl);
    assert.equal(await a.request('return tostring(mix.websocket():subscribe("room:1", "room:2"))'), '["nil"]');
    assert.equal(await b.request('return tostring(mix.websocket():subscribe("room:1"))'), '["nil"]');
    // b is a subscriber too: the publish reaches it before the hook's own answer.
    b.send('return mix.mesh.publish("room:1", "hi")');
    assert.deepEqual([(await b.next()).data, (await b.next()).data], ['hi', '[2,0]']);
    assert.equal((await a.next()).data, 'hi');
    assert.equal(await b.request('return mix.mesh.publish("room:2", "\\0\\1", "binary")'), '[1,0]');
    assert.deepEqual((await a.next()).raw, Buffer.from([0, 1]));
    const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room:2', d: 'api' });
    assert.deepEqual(answer.json.r, { s: 1, f: 0 });
    assert.equal((await a.next()).data, 'api');
    a.close();
    b.close();
  });
});

test('invalid UTF-8 in a text frame closes that connection with 1007', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    client.send(Buffer.from([0x72, 0x65, 0xff, 0xfe]), false);
    assert.equal((await client.waitClosed()).code, 1007);
  });
});

test('permessage-deflate is never negotiated', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const client = await TestClient.open(node.wsUrl, { perMessageDeflate: true });
    assert.equal(client.ws.extensions, '');
    assert.equal(await client.request('return "plain"'), '["plain"]');
    client.close();
  });
});

test('a hook error is logged with its traceback and client_id; on_handshake past its budget closes with 1011 script timeout', async () => {
  const entry = `
function on_handshake(client_id, headers)
  if headers["X-Spin"] then while true do end end
end
function on_message(msg) local function inner() error("boom in a helper") end inner() end
function on_close() end`;
  await withNode({ lua: { 'lua/entry.websocket.lua': entry } }, async (node) => {
    const failing = await TestClient.open(node.wsUrl);
    failing.send('x');
    assert.equal((await failing.waitClosed()).code, 1011);
    const logged = node.logs.find((line) => line.includes('boom in a helper'));
    assert.ok(logged && /stack traceback/.test(logged) && /in (local|upvalue|function) '?inner/.test(logged), logged);
    assert.match(logged ?? '', /"client_id":"\d+"/);
    const spinning = new TestClient(node.wsUrl, { headers: { 'x-spin': '1' } });
    const closed = await spinning.waitClosed(5000);
    assert.deepEqual(closed, { code: 1011, reason: 'script timeout' });
  });
});

test('numbers from the host reach Lua as floats, as in Lua 5.1', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    const answer = await client.request(`local c = mix.websocket() c:subscribe("f")
      local s, f = mix.mesh.publish("f", "x")
      c:set_context_value("n", 7)
      return math.type(s), math.type(f), math.type(c:context_value("n")), s`);
    // the publish reached this client too, before the hook's answer
    assert.equal(answer, 'x');
    assert.equal((await client.next()).data, '["float","float","float",1]');
    client.close();
  });
});

test('each engine.servers[] entry is its own listener with its own path and Lua entry', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-two-servers-'));
  fs.mkdirSync(path.join(dir, 'lua'));
  const entry = (name: string) => `function on_handshake() end function on_close() end
function on_message(msg) mix.websocket():send("${name}:" .. msg.data .. ":" .. mix.server.option("path")) end`;
  fs.writeFileSync(path.join(dir, 'lua/first.lua'), entry('first'));
  fs.writeFileSync(path.join(dir, 'lua/second.lua'), entry('second'));
  const [first, second, api] = [await freePort(), await freePort(), await freePort()];
  const server = (port: number, name: string) => `    - port: ${port}
      bind: 127.0.0.1
      options: [{ name: path, value: /${name} }]
      entry: lua/${name}.lua
      byteCodeExpires: 0`;
  const yaml = `logging: { filename: "" }
engine:
  apiServer: { port: ${api}, bind: 127.0.0.1 }
  servers:
${server(first, 'first')}
${server(second, 'second')}
`;
  const file = path.join(dir, 'connmix.yaml');
  fs.writeFileSync(file, yaml);
  const engine = new Engine(parseConfig(yaml, file, { warn: () => undefined }), { log: memoryLogger().log });
  await engine.start();
  try {
    const a = await TestClient.open(`ws://127.0.0.1:${first}/first`);
    const b = await TestClient.open(`ws://127.0.0.1:${second}/second`);
    assert.equal(await a.request('x'), 'first:x:/first');
    assert.equal(await b.request('y'), 'second:y:/second');
    await assert.rejects(TestClient.open(`ws://127.0.0.1:${first}/second`), /HTTP 404/);
    a.close();
    b.close();
  } finally {
    await engine.stop();
  }
});

test('a node that is draining answers an upgrade that completes meanwhile with 503, and counts it', async () => {
  const node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL } });
  const url = new URL(node.wsUrl);
  const rawSocket = (handshake: string) => new Promise<{ socket: net.Socket; received: () => string }>((resolve, reject) => {
    const socket = net.connect(Number(url.port), '127.0.0.1', () => {
      socket.write(handshake);
      resolve({ socket, received: () => text });
    });
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('error', reject);
  });
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  // A client that upgraded but never answers the close frame keeps the drain going (up to 2 s).
  const stubborn = await rawSocket(`GET ${url.pathname} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  // A second client has sent half of its upgrade request.
  const late = await rawSocket(`GET ${url.pathname} HTTP/1.1\r\nHost: x\r\n`);
  await waitFor('the 101 of the first client', () => /^HTTP\/1\.1 101/.test(stubborn.received()), 10_000);
  const stopped = node.stop();
  await sleep(200);
  late.socket.write(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await waitFor('an answer to the late upgrade', () => late.received().includes('\r\n'), 10_000);
  assert.match(late.received(), /^HTTP\/1\.1 503/);
  const refused = await node.engine.metrics.registry.getSingleMetricAsString('connmix_connections_refused_total');
  assert.match(refused, /reason="shutting_down"[^\n]* 1/);
  stubborn.socket.destroy();
  late.socket.destroy();
  await stopped;
});
