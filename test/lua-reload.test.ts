import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withNode, TestClient, waitFor } from './support/helpers';

// Lua hot reload (byteCodeExpires): an edit reaches the next event of every connection, existing ones
// included; a broken edit or module keeps the old code serving; 0 turns reload off. The 5.3-syntax
// refusal on reload is in lua-syntax.test.ts.

/** Asks until the reply is `expected` (the reload check runs every second); fails after 20 s. */
async function untilReplyIs(client: TestClient, expected: string): Promise<void> {
  await waitFor(`the reply ${expected}`, async () => (await client.request('x')) === expected, 20_000, 200);
}

test('Lua hot reload: edits apply to the next event of existing connections; a broken edit keeps the old code', async () => {
  const script = (reply: string) => `
function on_handshake() end
function on_close() end
function on_message(msg) mix.websocket():send("${reply}") end`;
  await withNode({ lua: { 'lua/entry.websocket.lua': script('v1') }, byteCodeExpires: 1 }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('x'), 'v1');
    const entry = path.join(node.dir, 'lua/entry.websocket.lua');
    fs.writeFileSync(entry, script('v2'));
    await untilReplyIs(client, 'v2');
    fs.writeFileSync(entry, 'function on_message(msg) this is not lua');
    await waitFor('the failed reload logged', () => node.logs.some((line) => line.includes('Lua reload failed')), 20_000);
    assert.equal(await client.request('x'), 'v2');
    assert.ok(node.logs.some((line) => line.includes('Lua reload failed')));
    client.close();
  });
});

test('Lua hot reload covers required modules; a module that stops compiling keeps the old code serving', async () => {
  const entry = 'function on_handshake() end function on_close() end function on_message(msg) mix.websocket():send(require("utils.reply").text) end';
  await withNode({ lua: { 'lua/entry.websocket.lua': entry, 'lua/utils/reply.lua': 'return { text = "m1" }' }, byteCodeExpires: 1 }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('x'), 'm1');
    const module = path.join(node.dir, 'lua/utils/reply.lua');
    fs.writeFileSync(module, 'return { text = "m2" }');
    await untilReplyIs(client, 'm2');
    fs.writeFileSync(module, 'return { text = ');
    await waitFor('the failed reload logged', () => node.logs.some((line) => line.includes('Lua reload failed') && line.includes('reply.lua')), 20_000);
    assert.equal(await client.request('x'), 'm2');
    assert.ok(node.logs.some((line) => line.includes('Lua reload failed') && line.includes('reply.lua')));
    client.close();
  });
});

test('byteCodeExpires: 0 turns Lua reload off', async () => {
  const script = (reply: string) => `function on_handshake() end function on_close() end function on_message(msg) mix.websocket():send("${reply}") end`;
  await withNode({ lua: { 'lua/entry.websocket.lua': script('v1') }, byteCodeExpires: 0 }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    fs.writeFileSync(path.join(node.dir, 'lua/entry.websocket.lua'), script('v2'));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await client.request('x'), 'v1');
    client.close();
  });
});
