import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { EVAL, TestClient, post, sleep, waitFor, withNode, type TestNode } from './support/helpers';
import { clientFrame, rawUpgrade, serverFrames } from './support/raw-ws';

// engine.servers[].writeWindow: frames to one connection within the window leave in one socket write,
// each still its own WebSocket message; a close frame never overtakes frames still in the window.

/** A subscriber of `channel` that also counts the TCP reads its socket gets. */
async function countingSubscriber(node: TestNode, channel: string): Promise<{ client: TestClient; reads: () => number }> {
  const client = await TestClient.open(node.wsUrl);
  assert.equal(await client.request(`mix.websocket():subscribe("${channel}") return 1`), '[1]');
  let reads = 0;
  (client.ws as unknown as { _socket: Socket })._socket.on('data', () => reads++);
  return { client, reads: () => reads };
}

test('publishes within the write window reach a subscriber in one write, as separate messages in order', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      writeWindow: 100' }, async (node) => {
    const { client, reads } = await countingSubscriber(node, 'room');
    // One after the other: each publish is answered (so handled in its own turn) before the next is sent.
    // The three must all be sent within the 100 ms window, which a busy machine may miss: a few rounds
    // are allowed, every one of them delivered in order, and one must leave in a single TCP read.
    const readsPerRound: number[] = [];
    for (let round = 0; round < 10 && readsPerRound.at(-1) !== 1; round++) {
      const before = reads();
      const sent = ['one', 'two', 'three'].map((d) => `${d} ${round}`);
      for (const d of sent) {
        assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room', d })).json, { E: null, r: { s: 1, f: 0 } });
      }
      assert.deepEqual([(await client.next()).data, (await client.next()).data, (await client.next()).data], sent);
      readsPerRound.push(reads() - before);
    }
    assert.equal(readsPerRound.at(-1), 1, `three frames in one TCP read (reads per round: ${readsPerRound.join(', ')})`);
    client.close();
  });
});

test('with writeWindow 0, publishes in separate turns are separate writes', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      writeWindow: 0' }, async (node) => {
    const { client, reads } = await countingSubscriber(node, 'room');
    for (const d of ['one', 'two', 'three']) {
      await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room', d });
      assert.equal((await client.next()).data, d);
    }
    assert.equal(reads(), 3);
    client.close();
  });
});

test('a close from Lua comes after the frames still waiting in the window', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      writeWindow: 100' }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    client.send('local c = mix.websocket() c:send("first") c:send("last") c:close() return 1');
    assert.equal((await client.next()).data, 'first');
    assert.equal((await client.next()).data, 'last');
    assert.equal((await client.waitClosed()).code, 1000);
  });
});

test("a client's close frame drops what waits in the window: no frame follows the node's close frame, and later deliveries fail", async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      writeWindow: 100' }, async (node) => {
    const publisher = await TestClient.open(node.wsUrl);
    const kinds = (bytes: Buffer) => serverFrames(bytes).map((f) => (f.opcode === 0x8 ? 'close' : f.payload.toString()));
    // The client closes as soon as the publish is answered, well within the window its delivery waits
    // in; a machine too busy for that in one round gets a few.
    let dropped = false;
    for (let round = 0; round < 5 && !dropped; round++) {
      const peer = await rawUpgrade(node, 20_000, true);
      peer.socket.write(clientFrame(0x1, Buffer.from(`mix.websocket():subscribe("r${round}") return 1`)));
      await waitFor('the subscribe answer', () => kinds(peer.after()).length === 1);
      assert.equal(await publisher.request(`mix.mesh.publish("r${round}", "queued") return 1`), '[1]');
      peer.socket.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
      await waitFor("the node's close frame", () => kinds(peer.after()).includes('close'));
      // The connection is closing: a delivery now fails, and its socket stays (the client keeps its side open).
      assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: `r${round}`, d: 'late' })).json, { E: null, r: { s: 0, f: 1 } });
      await sleep(300);
      const seen = kinds(peer.after());
      assert.equal(seen.at(-1), 'close', `frames after the close frame: ${seen.join(', ')}`);
      dropped = !seen.includes('queued');
      peer.socket.destroy();
    }
    assert.ok(dropped, 'the frame waiting in the window was never dropped by a close frame');
    publisher.close();
  });
});

test('conn:send answers within the window are counted against maxBufferedBytes', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      writeWindow: 100\n      maxBufferedBytes: 65536' }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    // 40 KiB twice in one window exceeds 64 KiB before anything reached the socket.
    client.send('local c = mix.websocket() local x = string.rep("x", 40960) return c:send(x), c:send(x)');
    assert.equal((await client.waitClosed()).code, 1006);
  });
});
