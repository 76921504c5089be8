import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, EVAL, type TestNode } from '../support/helpers';

// The connection-bound mix API, exercised from real hooks on a real node.
let node: TestNode;
before(async () => {
  node = await startNode({
    lua: { 'lua/entry.websocket.lua': `outside, outside_err = mix.websocket()\n${EVAL}` },
    path: '/chat',
  });
});
after(async () => {
  await node.stop();
});

async function client(): Promise<TestClient> {
  return TestClient.open(node.wsUrl);
}

/** Runs Lua in a hook of `c` and returns its results. */
async function run(c: TestClient, lua: string): Promise<unknown[]> {
  const answer = await c.request(lua);
  try {
    return JSON.parse(answer);
  } catch {
    throw new Error(`not JSON: ${answer}`);
  }
}

/** Runs Lua that should raise; returns the error message. */
async function fails(c: TestClient, lua: string): Promise<string> {
  const [ok, message] = await run(c, `return pcall(function() ${lua} end)`);
  assert.equal(ok, false, `expected an error from: ${lua}`);
  return String(message);
}

test('client_id and remote_addr', async () => {
  const c = await client();
  const [id, addr, same, text] = await run(c, 'local conn = mix.websocket() return conn:client_id(), conn:remote_addr(), conn == mix.websocket(), tostring(conn)');
  assert.match(String(id), /^\d{15,20}$/);
  assert.match(String(addr), /^127\.0\.0\.1:\d+$/);
  assert.equal(same, true);
  assert.equal(text, `conn: ${id}`);
  assert.match(await fails(c, 'mix.websocket().client_id({})'), /bad argument #1 to 'client_id' \(connmix\.conn expected, got table\)/);
  assert.match(await fails(c, 'mix.websocket().send("hi")'), /bad argument #1 to 'send' \(connmix\.conn expected, got string\)/);
  assert.match(await fails(c, 'mix.websocket().subscribe(nil, "a")'), /bad argument #1 to 'subscribe' \(connmix\.conn expected, got nil\)/);
  c.close();
});

test('context: set_context_value, context_value, context, set_context replaces', async () => {
  const c = await client();
  await run(c, 'local conn = mix.websocket() conn:set_context_value("uid", 1001) conn:set_context_value("tags", {"a", "b"})');
  assert.deepEqual(await run(c, 'local conn = mix.websocket() return conn:context_value("uid"), conn:context_value("tags"), conn:context_value("none")'), [1001, ['a', 'b']]);
  assert.deepEqual(await run(c, 'return mix.websocket():context()'), [{ uid: 1001, tags: ['a', 'b'] }]);
  await run(c, 'mix.websocket():set_context({ room = "r1" })');
  assert.deepEqual(await run(c, 'return mix.websocket():context()'), [{ room: 'r1' }]);
  await run(c, 'mix.websocket():set_context_value("room", nil)');
  assert.deepEqual(await run(c, 'return mix.websocket():context()'), [{}]);
  assert.match(await fails(c, 'mix.websocket():set_context("x")'), /bad argument #1 to 'set_context' \(table expected, got string\)/);
  assert.match(await fails(c, 'mix.websocket():set_context_value("f", print)'), /bad argument #2 to 'set_context_value' \(cannot convert a Lua function\)/);
  assert.match(await fails(c, 'mix.websocket():set_context_value({}, 1)'), /bad argument #1 to 'set_context_value' \(string expected, got table\)/);
  assert.match(await fails(c, 'mix.websocket():set_context_value("k")'), /bad argument #2 to 'set_context_value' \(value expected\)/);
  // Contexts belong to one connection.
  const other = await client();
  assert.deepEqual(await run(other, 'return mix.websocket():context()'), [{}]);
  c.close();
  other.close();
});

test('subscribe/unsubscribe take several channels and return err', async () => {
  const c = await client();
  assert.deepEqual(await run(c, 'return tostring(mix.websocket():subscribe("a", "b", 3))'), ['nil']);
  assert.equal(node.engine.hub.channelCount >= 3, true);
  const [err] = await run(c, 'return mix.websocket():subscribe("ok", "has space")');
  assert.match(String(err), /channels cannot contain spaces/);
  assert.deepEqual(await run(c, 'return tostring(mix.websocket():unsubscribe("a", "never-subscribed"))'), ['nil']);
  assert.match(await fails(c, 'mix.websocket():subscribe({})'), /bad argument #1 to 'subscribe' \(string expected, got table\)/);
  c.close();
});

test('send text and binary; wrong arguments raise', async () => {
  const c = await client();
  c.send('local err = mix.websocket():send("\\255\\0", "binary") return tostring(err)');
  const binary = await c.next();
  assert.equal(binary.binary, true);
  assert.deepEqual(binary.raw, Buffer.from([255, 0]));
  assert.equal((await c.next()).data, '["nil"]');
  c.send('mix.websocket():send("plain") return 1');
  assert.equal((await c.next()).data, 'plain');
  assert.equal((await c.next()).data, '[1]');
  assert.match(await fails(c, 'mix.websocket():send("x", "json")'), /type must be "text" or "binary"/);
  assert.match(await fails(c, 'mix.websocket():send()'), /bad argument #1 to 'send' \(string expected, got no value\)/);
  c.close();
});

test('close closes with 1000', async () => {
  const c = await client();
  c.send('mix.websocket():close() return 1');
  assert.equal((await c.waitClosed()).code, 1000);
});

test('mix.mesh.send reaches another connection; unknown clients give err', async () => {
  const a = await client();
  const b = await client();
  const [bId] = await run(b, 'return mix.websocket():client_id()');
  assert.deepEqual(await run(a, `return tostring(mix.mesh.send("${bId}", "from a"))`), ['nil']);
  assert.equal((await b.next()).data, 'from a');
  assert.deepEqual(await run(a, `return tostring(mix.mesh.send("${bId}", "\\1", "binary"))`), ['nil']);
  assert.deepEqual((await b.next()).raw, Buffer.from([1]));
  const [err] = await run(a, 'return mix.mesh.send("1234567890123456789", "x")');
  assert.match(String(err), /send failed: client 1234567890123456789 not found/);
  assert.match(await fails(a, 'mix.mesh.send()'), /bad argument #1 to 'send'/);
  assert.match(await fails(a, `mix.mesh.send("${bId}", "x", "xml")`), /type must be "text" or "binary"/);
  a.close();
  b.close();
});

test('mix.mesh.publish returns counts; bad channels and arguments', async () => {
  const a = await client();
  assert.deepEqual(await run(a, 'return mix.mesh.publish("nobody-here", "x")'), [0, 0]);
  const [s, f, err] = await run(a, 'local s, f, err = mix.mesh.publish("bad channel", "x") return tostring(s), tostring(f), err');
  assert.deepEqual([s, f], ['nil', 'nil']);
  assert.match(String(err), /channels cannot contain spaces/);
  assert.match(await fails(a, 'mix.mesh.publish("c")'), /bad argument #2 to 'publish' \(string expected, got no value\)/);
  a.close();
});

test('mix.log levels, print, server.option, and mix.websocket outside a hook', async () => {
  const c = await client();
  assert.deepEqual(await run(c, 'return mix.DEBUG, mix.INFO, mix.WARN, mix.ERROR'), [0, 1, 2, 3]);
  assert.deepEqual(await run(c, 'return mix.log(mix.WARN, "careful", 42)'), [true]);
  assert.ok(node.logs.some((line) => /"level":"warn","msg":"careful 42","client_id":"\d+"/.test(line)));
  await run(c, 'print("printed", 1, nil, true)');
  assert.ok(node.logs.some((line) => line.includes('"msg":"printed\\t1\\tnil\\ttrue"')));
  assert.match(await fails(c, 'mix.log(9, "x")'), /level must be mix\.DEBUG/);
  assert.deepEqual(await run(c, 'return mix.server.option("path"), mix.server.option("missing")'), ['/chat']);
  assert.match(await fails(c, 'mix.server.option()'), /bad argument #1 to 'option'/);
  assert.deepEqual(await run(c, 'return tostring(outside), outside_err'), ['nil', 'no current connection: mix.websocket() works inside hooks only']);
  c.close();
});
