/**
 * The close code a client's protocol error is reported with (on_close, connmix_closes_total), read from
 * ws's documented error codes: bad UTF-8 is 1007, other broken frames 1002, too large 1009 (server.test.ts).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { withNode, metric, TestClient, EVAL, type TestNode, waitFor } from './support/helpers';
import { rawUpgrade } from './support/raw-ws';

/** Upgrades a raw TCP connection, writes one client frame (masked with a zero key) and waits for the close. */
async function sendRawFrame(node: TestNode, firstByte: number, payload: Buffer): Promise<void> {
  const peer = await rawUpgrade(node);
  peer.socket.write(Buffer.concat([Buffer.from([firstByte, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
  await peer.closed;
}

test('a client protocol error is reported with the close code ws sent: 1007 for bad UTF-8, 1002 for a reserved opcode', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    await sendRawFrame(node, 0x81, Buffer.from([0xff, 0xfe]));
    await waitFor('the bad UTF-8 close counted as 1007', async () => (await metric(node.apiUrl, /^connmix_closes_total\{code="1007"/)) === 1, 20_000);
    await sendRawFrame(node, 0x83, Buffer.from('x'));
    await waitFor('the reserved opcode close counted as 1002', async () => (await metric(node.apiUrl, /^connmix_closes_total\{code="1002"/)) === 1, 20_000);
    assert.equal(await metric(node.apiUrl, /^connmix_closes_total\{code="1006"/), 0, 'no protocol error was left as 1006');
  });
});

test('close codes a client picks outside the documented ones count as "other" in connmix_closes_total', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    for (const code of [3456, 4999, 3000, 1000]) {
      const client = await TestClient.open(node.wsUrl);
      client.ws.close(code);
      await client.waitClosed();
    }
    await waitFor('the closes are counted', async () => (await metric(node.apiUrl, /^connmix_closes_total\{code="other"/)) === 3);
    assert.equal(await metric(node.apiUrl, /^connmix_closes_total\{code="1000"/), 1);
    const text = await (await fetch(`${node.apiUrl}/metrics`)).text();
    assert.ok(!/connmix_closes_total\{code="(3456|4999|3000)"/.test(text), 'a client-chosen code became a series');
  });
});
