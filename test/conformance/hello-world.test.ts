import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, withNode } from '../support/helpers';
import { exampleEntry, startTwoNodes } from '../support/two-nodes';

// Reference 9.1: CONNMIX's default entry (lua/examples/hello-world.lua) on the default path /chat.
// Its socket variant (entry.socket.lua over lua/protocols/websocket.lua) is websocket-protocol.test.ts.

test('9.1 hello world: every message on /chat, text or binary, is answered with the text Hello,World!, on both nodes of a mesh', async () => {
  const mesh = await startTwoNodes(exampleEntry('hello-world.lua', '/chat'));
  try {
    for (const node of [mesh.a, mesh.b]) {
      assert.match(node.wsUrl, /\/chat$/);
      const client = await TestClient.open(node.wsUrl);
      assert.equal(await client.request('anything'), 'Hello,World!');
      assert.equal(await client.request('{"op":"join"}'), 'Hello,World!');
      client.send(Buffer.from([0, 1, 2]), true);
      const answer = await client.next();
      assert.equal(answer.data, 'Hello,World!');
      assert.equal(answer.binary, false);
      // One answer per message, in order, and nothing else.
      for (let i = 0; i < 5; i++) client.send(`m${i}`);
      for (let i = 0; i < 5; i++) assert.equal((await client.next()).data, 'Hello,World!');
      assert.ok(await client.silentFor(100));
      client.close();
    }
  } finally {
    await mesh.stop();
  }
});

// Our own entry in the shape the hello world page had from August 5 to September 8, 2022: the first
// hook of a websocket entry was on_connect(client_id, headers), before it was named on_handshake.
const ON_CONNECT_ENTRY = `
local seen = {}
function on_connect(client_id, headers)
  seen[client_id] = headers["X-Page"] or "-"
end
function on_close(client_id, err)
  seen[client_id] = nil
end
function on_message(msg)
  local conn = mix.websocket()
  conn:send("Hello,World! " .. seen[conn:client_id()])
end
`;

test('9.1 hello world of August 2022: a websocket entry with on_connect(client_id, headers) and no on_handshake runs, on_connect in its place', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': ON_CONNECT_ENTRY }, path: '/chat' }, async (node) => {
    const client = await TestClient.open(node.wsUrl, { headers: { 'X-Page': 'aug-2022' } });
    assert.equal(await client.request('hi'), 'Hello,World! aug-2022');
    client.close();
  });
});
