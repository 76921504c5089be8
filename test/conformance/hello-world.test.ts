import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient } from '../support/helpers';
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
