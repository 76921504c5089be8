import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withNode, TestClient, waitFor } from './support/helpers';

// CONNMIX runs Lua 5.1 (gopher-lua), which refuses the 5.3 operators; so does this engine, at load and
// at hot reload, while strings and comments that merely contain those characters load as before.
// (A 5.3 entry at start: see cli.test.ts, which runs the real process.)

const HOOKS = 'function on_handshake() end\nfunction on_close() end\n';

test('strings, long strings and comments holding // & | ~ << >> load and run', async () => {
  const entry = `${HOOKS}-- comment: a // b & c | d ~ e << f >> g
--[==[ a long comment: x // y
   ]] still inside & | ~ ]==]
local texts = { "a // b", 'c & d | e', [[ ~x << y >> z ]], [=[ ]] // ]=], "esc\\" // & " }
function on_message(msg)
    if msg.data ~= "x" then return end
    mix.websocket():send(table.concat(texts, ";") .. ";" .. 7 % 3 .. ";" .. string.format("%d", 6 / 3 * 2))
end
`;
  await withNode({ lua: { 'lua/entry.websocket.lua': entry } }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('x'), 'a // b;c & d | e; ~x << y >> z ; ]] // ;esc" // & ;1;4');
    client.close();
  });
});

test('hot reload: an entry or module edited to use a 5.3 operator is refused, logged with file and line, and the old code keeps serving', async () => {
  const entry = (body: string) => `${HOOKS}local reply = require("utils.reply")\nfunction on_message(msg) mix.websocket():send(${body}) end\n`;
  await withNode({
    lua: { 'lua/entry.websocket.lua': entry('reply.text'), 'lua/utils/reply.lua': 'return { text = "v1" }\n' },
    byteCodeExpires: 1,
  }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('x'), 'v1');
    fs.writeFileSync(path.join(node.dir, 'lua/entry.websocket.lua'), entry('reply.text .. (7 // 2)'));
    await waitFor('entry refusal logged', () => node.logs.some((line) => line.includes('Lua reload failed') && /entry\.websocket\.lua:4: '\/\/'/.test(line)));
    assert.equal(await client.request('x'), 'v1');
    fs.writeFileSync(path.join(node.dir, 'lua/entry.websocket.lua'), entry('reply.text'));
    fs.writeFileSync(path.join(node.dir, 'lua/utils/reply.lua'), 'return { text = "v2" .. (1 | 2) }\n');
    await waitFor('module refusal logged', () => node.logs.some((line) => line.includes('Lua reload failed') && /reply\.lua:1: '\|'/.test(line)));
    assert.equal(await client.request('x'), 'v1');
    // A 5.1 edit is taken again.
    fs.writeFileSync(path.join(node.dir, 'lua/utils/reply.lua'), 'return { text = "v3" }\n');
    await waitFor('the 5.1 edit serves', async () => (await client.request('x')) === 'v3');
    client.close();
  });
});
