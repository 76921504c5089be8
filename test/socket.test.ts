import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { withNode, startNode, TestClient, post, metric, sleep, EVAL, ROOT, type TestNode, type TestNodeOptions } from './support/helpers';
import { LuaLoadError } from '../src/lua/vm';
import { LineClient } from './support/line-client';
import { Waker } from './support/waker';
import { PACE_SMALL_BYTES } from '../src/server/input-pacer';

const TEXT = fs.readFileSync(path.join(ROOT, 'lua/protocols/text.lua'), 'utf8');
const JSONRPC = fs.readFileSync(path.join(ROOT, 'lua/protocols/jsonrpc.lua'), 'utf8');

/**
 * A socket entry framed by protocols.text that runs each line as Lua and answers with the returned
 * values as a JSON line (nothing if none). It greets with "welcome <client_id>" and publishes
 * "<client_id> <err>" to `closes` from on_close. Context keys switch protocol_input ("input") and
 * protocol_encode ("encode") to misbehave on purpose.
 */
const SOCKET_EVAL = `
local text = require("protocols.text")

function on_connect(client_id)
  mix.socket.tcp():send(text.encode("welcome " .. client_id))
end

function on_close(client_id, err)
  mix.mesh.publish("closes", client_id .. " " .. tostring(err))
end

function protocol_input(buf)
  local conn = mix.socket.tcp()
  local mode = conn:context_value("input")
  if mode == "reject" and string.find(buf:tostring(), "bad", 1, true) then return -1 end
  if mode == "hold" then return 0 end
  if mode == "string" then return "3" end
  if mode == "handshake" then
    -- As the Lua websocket library does: answer raw, then drop whatever input is pending.
    conn:set_context_value("input", nil)
    conn:send("HANDSHAKE OK\\r\\n")
    conn:clear_buffer()
    return 0
  end
  return text.input(buf)
end

function protocol_decode(str)
  return text.decode(str)
end

function protocol_encode(str)
  local mode = mix.socket.tcp():context_value("encode")
  if mode == "table" then return {} end
  if mode == "empty" then return "" end
  if mode == "error" then error("encode refused") end
  return text.encode(str)
end

function on_message(line)
  local conn = mix.socket.tcp()
  local f, err = load(line, "=cmd")
  if not f then conn:send(text.encode("compile error: " .. err)) return end
  local results = { f() }
  if #results > 0 then conn:send(text.encode(mix.json_encode(results))) end
end
`;

const ENTRY = 'lua/entry.socket.lua';

function socketNode(entry: string, extra: TestNodeOptions = {}): TestNodeOptions {
  return {
    ...extra,
    lua: { 'lua/entry.websocket.lua': EVAL, 'lua/protocols/text.lua': TEXT, 'lua/protocols/jsonrpc.lua': JSONRPC, [ENTRY]: entry, ...extra.lua },
    socketEntry: ENTRY,
  };
}

/** Connects and takes the "welcome <client_id>" line of the test entry. */
async function welcomed(node: TestNode): Promise<LineClient & { id: string }> {
  const client = new LineClient(node.socketPort);
  const welcome = await client.line();
  assert.match(welcome, /^welcome \d+$/);
  return Object.assign(client, { id: welcome.slice('welcome '.length) });
}


/** Whether the node logged a line about `clientId` whose message or error contains `text`. */
function logged(node: TestNode, clientId: string, text: string): boolean {
  return node.logs.some((line) => {
    const entry = JSON.parse(line);
    return entry.client_id === clientId && `${entry.msg} ${entry.error ?? ''}`.includes(text);
  });
}

/** A socket client subscribed to `closes`, where on_close reports "<client_id> <err>". */
async function closeWatcher(node: TestNode) {
  const watcher = await welcomed(node);
  assert.equal(await watcher.eval('return mix.socket.tcp():subscribe("closes") == nil'), '[true]');
  return watcher;
}

test('text protocol: one on_message per line, whatever the TCP segments', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const client = await welcomed(node);
    for (const part of ['ret', 'urn 40 ', '+ 2\n']) {
      client.write(part);
      await sleep(30);
    }
    assert.equal(await client.line(), '[42]');
    const count = 'local c = mix.socket.tcp() local n = (c:context_value("n") or 0) + 1 c:set_context_value("n", n) return n';
    client.write(`${count}\n${count}\n${count}\nreturn "tail"\n`);
    for (const expected of ['[1]', '[2]', '[3]', '["tail"]']) assert.equal(await client.line(), expected);
    client.write(Array.from({ length: 2000 }, (_, i) => `return ${i}\n`).join(''));
    for (let i = 0; i < 2000; i++) assert.equal(await client.line(), `[${i}]`);
    client.close();
  });
});

test('conn:send writes raw bytes, without protocol_encode', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const client = await welcomed(node);
    client.write('mix.socket.tcp():send("raw|") return "x"\n');
    assert.equal(await client.take('raw|["x"]\n'.length), 'raw|["x"]\n');
    client.close();
  });
});

test('on_connect and on_close get the client_id; a client that ends cleanly gives on_close no error', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const watcher = await closeWatcher(node);
    const client = await welcomed(node);
    assert.equal(await client.eval('return mix.socket.tcp():client_id()'), JSON.stringify([client.id]));
    const [addr] = JSON.parse(await client.eval('return mix.socket.tcp():remote_addr()'));
    assert.equal(addr, `127.0.0.1:${client.socket.localPort}`);
    client.close();
    assert.equal(await watcher.line(), `${client.id} nil`);
    watcher.close();
  });
});

test('mix.socket.tcp() is the socket getter: mix.websocket() answers nil, err there', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const client = await welcomed(node);
    assert.equal(await client.eval('local c, err = mix.websocket() return c == nil, err'), '[true,"mix.websocket() is for protocol: websocket servers"]');
    const ws = await TestClient.open(node.wsUrl);
    assert.equal(await ws.request('local c, err = mix.socket.tcp() return c == nil, err'), '[true,"mix.socket.tcp() is for protocol: socket servers"]');
    assert.match(await ws.request('return pcall(function() mix.websocket():clear_buffer() end)'), /clear_buffer\(\) is for protocol: socket connections/);
    ws.close();
    client.close();
  });
});

test('a publish reaches socket subscribers through protocol_encode and WebSocket ones as frames', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const socketClient = await welcomed(node);
    assert.equal(await socketClient.eval('return mix.socket.tcp():subscribe("news") == nil'), '[true]');
    const ws = await TestClient.open(node.wsUrl);
    assert.equal(await ws.request('return mix.websocket():subscribe("news") == nil'), '[true]');
    const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'news', d: 'hello world' });
    assert.deepEqual(answer.json, { E: null, r: { s: 2, f: 0 } });
    assert.equal(await socketClient.take('hello world\n'.length), 'hello world\n');
    assert.equal((await ws.next()).data, 'hello world');
    // From Lua too: the publishing connection is a subscriber and gets its line before the answer.
    assert.equal(await socketClient.eval('return mix.mesh.publish("news", "from lua")'), 'from lua');
    assert.equal(await socketClient.line(), '[2,0]');
    assert.equal((await ws.next()).data, 'from lua');
    ws.close();
    socketClient.close();
  });
});

test('protocol_encode that answers no string, an empty one or an error fails that delivery only', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const good = await welcomed(node);
    const bad = await welcomed(node);
    for (const client of [good, bad]) assert.equal(await client.eval('return mix.socket.tcp():subscribe("feed") == nil'), '[true]');
    for (const mode of ['table', 'empty']) {
      assert.equal(await bad.eval(`mix.socket.tcp():set_context_value("encode", "${mode}") return 1`), '[1]');
      const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'feed', d: mode });
      assert.deepEqual(answer.json, { E: null, r: { s: 1, f: 1 } });
      assert.equal(await good.line(), mode);
    }
    assert.ok(await bad.silentFor(50));
    assert.ok(logged(node, bad.id, 'protocol_encode must return a non-empty string'));
    assert.equal(await bad.eval('mix.socket.tcp():set_context_value("encode", "error") return 1'), '[1]');
    const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'feed', d: 'last' });
    assert.deepEqual(answer.json, { E: null, r: { s: 1, f: 1 } });
    assert.equal(await good.line(), 'last');
    await bad.waitClosed();
    assert.ok(logged(node, bad.id, 'encode refused'));
    good.close();
  });
});

test('mesh send to a socket client goes through protocol_encode', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const client = await welcomed(node);
    const answer = await post(`${node.apiUrl}/v1/mesh/send`, { c: client.id, d: 'direct' });
    assert.deepEqual(answer.json, { E: null, r: { s: true } });
    assert.equal(await client.line(), 'direct');
    const ws = await TestClient.open(node.wsUrl);
    assert.equal(await ws.request(`return mix.mesh.send("${client.id}", "from a websocket") == nil`), '[true]');
    assert.equal(await client.line(), 'from a websocket');
    ws.close();
    client.close();
  });
});

test('protocol_input returning -1 closes the connection, and a non-integer answer is an error', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const watcher = await closeWatcher(node);
    const rejected = await welcomed(node);
    assert.equal(await rejected.eval('mix.socket.tcp():set_context_value("input", "reject") return 1'), '[1]');
    rejected.write('this is bad\n');
    await rejected.waitClosed();
    assert.equal(await watcher.line(), `${rejected.id} protocol_input returned -1`);
    const confused = await welcomed(node);
    assert.equal(await confused.eval('mix.socket.tcp():set_context_value("input", "string") return 1'), '[1]');
    confused.write('x\n');
    await confused.waitClosed();
    assert.equal(await watcher.line(), `${confused.id} protocol_input must return an integer, got string`);
    watcher.close();
  });
});

test('pending input past maxMessageSize closes the connection; so does a text line over 65535 bytes', async () => {
  await withNode(socketNode(SOCKET_EVAL, { socketYaml: '      maxMessageSize: 100000' }), async (node) => {
    const watcher = await closeWatcher(node);
    const holding = await welcomed(node);
    assert.equal(await holding.eval('mix.socket.tcp():set_context_value("input", "hold") return 1'), '[1]');
    holding.write('a'.repeat(60000));
    assert.ok(await holding.silentFor(50));
    holding.write('a'.repeat(40001));
    await holding.waitClosed();
    assert.equal(await watcher.line(), `${holding.id} pending input over maxMessageSize (100000 bytes)`);
    const long = await welcomed(node);
    assert.equal(await long.eval(`return #"${'b'.repeat(65000)}"`), '[65000]');
    long.write('c'.repeat(65536));
    await long.waitClosed();
    assert.equal(await watcher.line(), `${long.id} protocol_input returned -1`);
    watcher.close();
  });
});

test('conn:clear_buffer drops the pending input', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const client = await welcomed(node);
    assert.equal(await client.eval('mix.socket.tcp():set_context_value("input", "handshake") return 1'), '[1]');
    client.write('GET / HTTP/1.1\r\nreturn "dropped"\n');
    assert.equal(await client.take('HANDSHAKE OK\r\n'.length), 'HANDSHAKE OK\r\n');
    assert.ok(await client.silentFor(50));
    assert.equal(await client.eval('return "after"'), '["after"]');
    client.close();
  });
});

test('a Lua error in on_message closes only that connection, logged with traceback and client_id', async () => {
  await withNode(socketNode(SOCKET_EVAL, { callBudget: 100 }), async (node) => {
    const watcher = await closeWatcher(node);
    const failing = await welcomed(node);
    const looping = await welcomed(node);
    const bystander = await welcomed(node);
    failing.write('error("boom")\n');
    looping.write('while true do end\n');
    await failing.waitClosed();
    await looping.waitClosed();
    const reports = [await watcher.line(), await watcher.line()].sort();
    assert.deepEqual(reports, [`${failing.id} script error`, `${looping.id} script timeout`].sort());
    assert.ok(logged(node, failing.id, 'boom') && logged(node, failing.id, 'stack traceback'));
    assert.equal(await bystander.eval('return "still here"'), '["still here"]');
    bystander.close();
    watcher.close();
  });
});

test('readTimeout closes a socket connection that sends nothing', async () => {
  await withNode(socketNode(SOCKET_EVAL, { socketYaml: '      readTimeout: 1' }), async (node) => {
    const ws = await TestClient.open(node.wsUrl);
    assert.equal(await ws.request('return mix.websocket():subscribe("closes") == nil'), '[true]');
    const idle = await welcomed(node);
    await idle.waitClosed(4000);
    assert.equal((await ws.next()).data, `${idle.id} read timeout`);
    ws.close();
  });
});

test('a socket entry without a required hook does not start, and the error names the hook', async () => {
  const entry = SOCKET_EVAL.replace('function protocol_encode(str)', 'function not_the_encoder(str)');
  await assert.rejects(startNode(socketNode(entry)), (error: Error) => {
    assert.ok(error instanceof LuaLoadError);
    assert.match(error.message, /hook 'protocol_encode' is not defined/);
    return true;
  });
});

test('jsonrpc example: calls are answered, subscribers are notified, bad JSON closes only that connection', async () => {
  const entry = fs.readFileSync(path.join(ROOT, 'lua/examples/entry.socket.jsonrpc.lua'), 'utf8');
  await withNode(socketNode(entry), async (node) => {
    const alice = new LineClient(node.socketPort);
    const bob = new LineClient(node.socketPort);
    const call = async (client: LineClient, request: object) => {
      client.write(`${JSON.stringify(request)}\n`);
      return JSON.parse(await client.line());
    };
    assert.deepEqual(await call(alice, { id: 1, method: 'hello', params: ['Ann'] }), { id: 1, result: 'Hello, Ann!' });
    assert.deepEqual(await call(bob, { id: 1, method: 'subscribe', params: ['room:1'] }), { id: 1, result: true });
    assert.deepEqual(await call(alice, { id: 2, method: 'publish', params: ['room:1', 'hi'] }), { id: 2, result: { s: 1, f: 0 } });
    assert.deepEqual(JSON.parse(await bob.line()), { method: 'message', params: ['room:1', 'hi'] });
    assert.deepEqual(await call(alice, { id: 3, method: 'nope', params: [] }), { id: 3, error: { code: -32601, message: 'method not found' } });
    alice.write('{"id": 4, "method": "hello"\n');
    await alice.waitClosed();
    const carol = new LineClient(node.socketPort);
    carol.write('{"id": 5, "params": []}\n');
    await carol.waitClosed();
    assert.deepEqual(await call(bob, { id: 6, method: 'hello', params: ['Bob'] }), { id: 6, result: 'Hello, Bob!' });
    bob.close();
  });
});

test('text example: greets, echoes, and delivers what is published to a subscribed channel as lines', async () => {
  const entry = fs.readFileSync(path.join(ROOT, 'lua/examples/entry.socket.text.lua'), 'utf8');
  await withNode(socketNode(entry), async (node) => {
    const client = new LineClient(node.socketPort);
    assert.match(await client.line(), /^hello \d+$/);
    client.write('hi there\n');
    assert.equal(await client.line(), 'echo: hi there');
    client.write('subscribe room:1\n');
    assert.equal(await client.line(), 'subscribed room:1');
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room:1', d: 'news' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal(await client.line(), 'news');
    client.write('quit\n');
    await client.waitClosed();
  });
});

test('the input buffer: read(n) answers nil, err on a short read and keeps the cursor; protocol_decode returning nil skips on_message', async () => {
  const entry = `
function on_connect() end
function on_close() end
function protocol_input(buf)
  local head, err = buf:read(2)
  if not head then
    mix.socket.tcp():send("short: " .. err .. " at " .. buf:position() .. " of " .. buf:length() .. "\\n")
    return 0
  end
  local body = buf:read(tonumber(head))
  if not body then return 0 end
  return buf:position()
end
function protocol_decode(packet)
  local body = packet:sub(3)
  if body == "skip" then return nil end
  return body
end
function protocol_encode(s) return s end
function on_message(body) mix.socket.tcp():send("got:" .. body .. "\\n") end`;
  await withNode(socketNode(entry), async (node) => {
    const client = new LineClient(node.socketPort);
    client.write('0');
    assert.equal(await client.line(), 'short: not enough data: 2 bytes wanted, 1 left at 0 of 1');
    client.write('5hello04skip02ok');
    assert.equal(await client.line(), 'got:hello');
    assert.equal(await client.line(), 'got:ok');
    client.close();
  });
});

test('the input buffer is a snapshot: a buf kept by the script does not change as more input arrives', async () => {
  const entry = `
function on_connect() end
function on_close() end
function protocol_input(buf)
  if not first then first = buf end
  local line = buf:tostring():find("\\n", 1, true)
  return line or 0
end
function protocol_decode(packet) return packet end
function protocol_encode(s) return s end
function on_message(packet) mix.socket.tcp():send("first saw [" .. first:tostring():gsub("\\n", "|") .. "] now [" .. packet:gsub("\\n", "|") .. "]\\n") end`;
  await withNode(socketNode(entry), async (node) => {
    const client = new LineClient(node.socketPort);
    client.write('ab');
    await sleep(100);
    client.write('c\n');
    assert.equal(await client.line(), 'first saw [ab] now [abc|]');
    client.close();
  });
});

test('connection limits hold for socket servers too, and engine.maxConnections counts every server of the node', async () => {
  await withNode(socketNode(SOCKET_EVAL, { engineYaml: '  maxConnections: 2', socketYaml: '      maxConnectionsPerIp: 1' }), async (node) => {
    const refusals = (reason: string) => metric(node.apiUrl, new RegExp(`^connmix_connections_refused_total\\{reason="${reason}"`));
    const first = await welcomed(node);
    // A second connection from the same IP is closed before any hook runs: no welcome line.
    const sameIp = new LineClient(node.socketPort);
    await sameIp.waitClosed();
    assert.equal(await sameIp.silentFor(0), true);
    assert.equal(await refusals('max_connections_per_ip'), 1);
    const ws = await TestClient.open(node.wsUrl);
    // The node holds 2 (one socket, one websocket): a third is refused on either server.
    const otherIp = new LineClient(node.socketPort, '127.0.0.2');
    await otherIp.waitClosed();
    await assert.rejects(TestClient.open(node.wsUrl), /HTTP 503/);
    assert.equal(await refusals('node_max_connections'), 2);
    ws.close();
    await ws.waitClosed();
    await sleep(50);
    const welcome = new LineClient(node.socketPort, '127.0.0.2');
    assert.match(await welcome.line(), /^welcome \d+$/);
    for (const client of [first, welcome]) client.close();
  });
});

/** SOCKET_EVAL counting its protocol_input calls in the global `input_calls`. */
const COUNTING_EVAL = SOCKET_EVAL.replace('function protocol_input(buf)\n', 'input_calls = 0\nfunction protocol_input(buf)\n  input_calls = input_calls + 1\n');

/** Writes `data` one byte per write, letting the node read each before the next: one read per byte. */
async function trickle(client: LineClient, data: string): Promise<void> {
  for (const byte of data) {
    client.write(byte);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('a long line trickled one byte per segment arrives whole, without a protocol_input call per read', async () => {
  await withNode(socketNode(COUNTING_EVAL), async (node) => {
    const client = await welcomed(node);
    const calls = async () => Number(JSON.parse(await client.eval('return input_calls'))[0]);
    const payload = Array.from({ length: 3300 }, (_, i) => `${i % 10}abcdefgh`).join('');
    const line = `return "${payload}"\n`;
    const before = await calls();
    await trickle(client, line);
    assert.equal(await client.line(10_000), JSON.stringify([payload]));
    // One call per read was about line.length (30,000); pending input up to 4 KiB still runs it on every read.
    const made = (await calls()) - before;
    assert.ok(made < PACE_SMALL_BYTES + 2000, `${made} protocol_input calls for a ${line.length}-byte line`);
    client.write('return 1\nreturn 2\n');
    assert.equal(await client.line(), '[1]');
    assert.equal(await client.line(), '[2]');
    client.close();
  });
});

test('long lines split over a few segments, a small last one included, are answered in order, and short lines behind them too', async () => {
  await withNode(socketNode(SOCKET_EVAL), async (node) => {
    const client = await welcomed(node);
    const watcher = await closeWatcher(node);
    const long = (n: number) => `return "${String(n).repeat(12_000)}"\n`;
    for (let n = 1; n <= 3; n++) {
      const line = long(n);
      // The last part adds far less than a quarter to what is pending: it waits for the pacing timer.
      for (const part of [line.slice(0, 6000), line.slice(6000, -10), line.slice(-10)]) {
        client.write(part);
        await sleep(30);
      }
      client.write(Array.from({ length: 50 }, (_, i) => `return ${i}\n`).join(''));
    }
    for (let n = 1; n <= 3; n++) {
      assert.equal(await client.line(), JSON.stringify([String(n).repeat(12_000)]));
      for (let i = 0; i < 50; i++) assert.equal(await client.line(), `[${i}]`);
    }
    // A connection that closes with input waiting for the timer ends as any other.
    const line = long(4);
    client.write(line.slice(0, 8000));
    await sleep(30);
    client.write(line.slice(8000, 8010));
    client.close();
    assert.equal(await watcher.line(), `${client.id} nil`);
    watcher.close();
  });
});

test('input that arrives while protocol_input waits is read once it answers, also when it is too small to run it at once', async () => {
  const held: http.ServerResponse[] = [];
  const asked = new Waker();
  const backend = http.createServer((_request, response) => {
    held.push(response);
    asked.wake();
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/`;
  // The first time more than 4 KiB is pending, protocol_input waits on an HTTP request before scanning.
  const entry = `
local text = require("protocols.text")
function on_connect() end
function on_close() end
function protocol_input(buf)
  local conn = mix.socket.tcp()
  if buf:length() > 4096 and not conn:context_value("waited") then
    conn:set_context_value("waited", "yes")
    mix.http.request("GET", "${url}")
  end
  return text.input(buf)
end
function protocol_decode(str) return text.decode(str) end
function protocol_encode(str) return text.encode(str) end
function on_message(line) mix.socket.tcp():send(text.encode(#line .. " " .. line:sub(1, 3))) end`;
  try {
    await withNode(socketNode(entry), async (node) => {
      const client = new LineClient(node.socketPort);
      client.write('a'.repeat(6000));
      await asked.until(() => held.length === 1, 3000, () => 'protocol_input made no request');
      // 10 bytes on 6,000 pending: not enough growth to run protocol_input at once once it answers 0.
      client.write('bcdefghij\nbbb\n');
      await sleep(30);
      held[0].end('ok');
      assert.equal(await client.line(), '6009 aaa');
      assert.equal(await client.line(), '3 bbb');
      client.close();
    });
  } finally {
    backend.close();
  }
});
