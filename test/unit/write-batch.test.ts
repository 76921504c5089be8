import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { WriteBatch, type Batchable } from '../../src/wire/write-batch';
import { waitFor } from '../support/helpers';

// The write batch over a real loopback TCP connection: what the peer reads, and when the batch has
// handed bytes to the socket (its bytesWritten), one event-loop turn at a time.

async function socketPair(): Promise<{ target: Batchable; received: () => string; close: () => void }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [socket] = (await once(server, 'connection')) as [net.Socket];
  let text = '';
  client.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const target: Batchable = { socket, queued: null, queuedBytes: 0, hurried: false, flushable: true, onBacklog: null };
  return {
    target,
    received: () => text,
    close: () => {
      client.destroy();
      socket.destroy();
      server.close();
    },
  };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test('WriteBatch: a delivery waits for the window; an answer takes what was queued before it at the end of the turn', async () => {
  const { target, received, close } = await socketPair();
  try {
    // A window far longer than a turn, even a turn on a busy machine: the delivery must still be waiting.
    const batch = new WriteBatch(2000);
    batch.write(target, Buffer.from('A'));
    await nextTurn();
    assert.equal(target.socket.bytesWritten, 0, 'a delivery alone waits for the window');
    batch.write(target, Buffer.from('B'), true);
    batch.write(target, Buffer.from('C'), true);
    await nextTurn();
    assert.equal(target.socket.bytesWritten, 3, 'the answers and the delivery before them left together');
    batch.write(target, Buffer.from('D'));
    await waitFor('the later delivery', () => received().length >= 4, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(received(), 'ABCD', 'each frame once, in order');
  } finally {
    close();
  }
});

test('WriteBatch: with no window, deliveries and answers alike leave at the end of the turn', async () => {
  const { target, received, close } = await socketPair();
  try {
    const batch = new WriteBatch(0);
    batch.write(target, Buffer.from('A'));
    batch.write(target, Buffer.from('B'), true);
    assert.equal(target.socket.bytesWritten, 0, 'nothing is written inside the turn');
    await nextTurn();
    assert.equal(target.socket.bytesWritten, 2);
    await waitFor('both frames', () => received().length >= 2, 10_000);
    assert.equal(received(), 'AB');
  } finally {
    close();
  }
});
