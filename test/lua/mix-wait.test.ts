import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { startNode, TestClient, EVAL, withTimeout, type TestNode } from '../support/helpers';
import type { Connection } from '../../src/server/connection';

// conn:wait_context_value on a real node: the wait is released from JS, as the backend's
// `conn.call set_context_value` does, while the node keeps serving everyone else.
let node: TestNode;
before(async () => {
  node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, path: '/wait' });
});
after(async () => {
  await node.stop();
});

async function run(c: TestClient, lua: string): Promise<unknown[]> {
  return JSON.parse(await c.request(lua));
}

/** Opens a client and finds its server-side connection. */
async function connect(): Promise<{ client: TestClient; conn: Connection }> {
  const client = await TestClient.open(node.wsUrl);
  const [id] = await run(client, 'return mix.websocket():client_id()');
  const conn = node.engine.hub.connection(String(id)) as Connection | undefined;
  assert.ok(conn, 'connection registered in the hub');
  return { client, conn };
}

async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('a value already set is returned at once', async () => {
  const { client } = await connect();
  assert.deepEqual(await run(client, 'local c = mix.websocket() c:set_context_value("uid", 7) return c:wait_context_value("uid")'), [7]);
  client.close();
});

test('a wait is released by a later set; others are served meanwhile; later messages keep their order', async () => {
  const a = await connect();
  const b = await connect();
  a.client.send('return "waited", mix.websocket():wait_context_value("uid")');
  await until('A waits', () => a.conn.context.waiting === 1);
  a.client.send('return "second"');
  // B is served while A waits; A's second message queues behind its waiting hook.
  assert.deepEqual(await run(b.client, 'return "b served"'), ['b served']);
  assert.equal(await a.client.silentFor(100), true);
  a.conn.context.set('other', 1);
  assert.equal(await a.client.silentFor(50), true, 'another key does not release the wait');
  a.conn.context.set('uid', { id: 1001, name: 'ann' });
  assert.deepEqual(JSON.parse((await a.client.next()).data), ['waited', { id: 1001, name: 'ann' }]);
  assert.deepEqual(JSON.parse((await a.client.next()).data), ['second']);
  assert.equal(a.conn.context.waiting, 0);
  a.client.close();
  b.client.close();
});

test('set_context (replace) releases a wait too; setting nil does not', async () => {
  const a = await connect();
  a.client.send('return mix.websocket():wait_context_value("uid")');
  await until('A waits', () => a.conn.context.waiting === 1);
  a.conn.context.set('uid', null);
  assert.equal(await a.client.silentFor(50), true);
  a.conn.context.clear();
  a.conn.context.set('uid', 0);
  assert.deepEqual(JSON.parse((await a.client.next()).data), [0]);
  a.client.close();
});

test('closing a connection while it waits ends the wait with "connection closed" and leaves nothing behind', async () => {
  const server = node.engine.servers[0];
  await until('earlier clients are gone', () => server.connectionCount === 0);
  const a = await connect();
  const b = await connect();
  a.client.send('local v, err = mix.websocket():wait_context_value("uid") waited = tostring(v) .. " " .. tostring(err)');
  a.client.send('never = true');
  await until('A waits', () => a.conn.context.waiting === 1);
  a.client.close();
  await withTimeout(a.client.closed, 3000, 'A did not close');
  await until('A is gone', () => server.connectionCount === 1);
  assert.equal(a.conn.context.waiting, 0);
  assert.deepEqual(await run(b.client, 'return waited, tostring(never)'), ['nil connection closed', 'nil']);
  // A later wait on the closed context ends at once.
  const pending = new Promise((resolve) => setTimeout(() => resolve('pending'), 50));
  const late = await Promise.race([a.conn.context.waitFor('uid').then(() => 'resolved', (e: Error) => e.message), pending]);
  assert.equal(late, 'connection closed');
  b.client.close();
});

test('waiting is refused where a hook cannot yield; wrong arguments raise', async () => {
  const { client } = await connect();
  const [ok, message] = await run(client, 'return pcall(coroutine.wrap(function() return mix.websocket():wait_context_value("k") end))');
  assert.equal(ok, false);
  assert.match(String(message), /cannot wait here/);
  const [ok2, message2] = await run(client, 'return pcall(function() return mix.websocket():wait_context_value({}) end)');
  assert.equal(ok2, false);
  assert.match(String(message2), /bad argument #1 to 'wait_context_value' \(string expected, got table\)/);
  client.close();
});
