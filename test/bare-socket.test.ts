import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import * as crypto from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { BareSocket } from '../bench/load/bare-socket';
import { encodeFrame } from './support/raw-ws';
import { withTimeout, waitFor } from './support/helpers';

/**
 * The subscribe storm's load client (bench/load/bare-socket.ts) speaks WebSocket on a bare TCP socket.
 * A mistake there would skew every storm figure or hang the bench, so it is tested as a client: against
 * ws's server for what goes both ways, and against a hand-written server that splits, joins and
 * fragments frames, sends what a client must refuse, or never answers.
 */

const WAIT_MS = 20_000;

/** Starts ws's server on 127.0.0.1; `onConnection` gets each server-side socket. */
async function wsServer(onConnection: (ws: WebSocket) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/echo', maxPayload: 1 << 24 });
  server.on('connection', onConnection);
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/echo`,
    close: () => new Promise((resolve) => {
      for (const client of server.clients) client.terminate();
      server.close(() => resolve());
    }),
  };
}

/**
 * A TCP server that answers the upgrade with `answer(key)` (the 101 head, or anything else) followed by
 * `then`, written in the given chunks, each in its own write with a pause between.
 */
async function handServer(answer: (key: string) => string, then: Buffer[] = [], onSocket?: (socket: net.Socket) => void): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onSocket?.(socket);
    let head = '';
    const onData = async (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      const key = /^sec-websocket-key: *(\S+)/im.exec(head)?.[1] ?? '';
      socket.write(answer(key), 'latin1');
      for (const chunk of then) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        socket.write(chunk);
      }
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/hand?x=1`,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

function accepted(key: string): string {
  const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

const serverFrame = (opcode: number, payload: string | Buffer, fin = true): Buffer =>
  encodeFrame({ fin, rsv: 0, opcode, payload: Buffer.from(payload), masked: false, lengthForm: 'minimal' });

/** Opens a client that collects its messages as strings. */
async function collecting(url: string): Promise<{ socket: BareSocket; messages: string[]; closed: Promise<string> }> {
  const messages: string[] = [];
  const socket = await BareSocket.open({ url, timeoutMs: WAIT_MS, onMessage: (data) => messages.push(data.toString()) });
  const closed = new Promise<string>((resolve) => (socket.onClose = resolve));
  return { socket, messages, closed };
}

test('text of every length class goes both ways unchanged through ws\'s server (7-, 16- and 64-bit lengths, zero mask)', async () => {
  const server = await wsServer((ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  try {
    const { socket, messages } = await collecting(server.url);
    const sizes = [0, 1, 125, 126, 65535, 65536, 300_000];
    const texts = sizes.map((size, i) => 'é'.repeat(i) + 'x'.repeat(Math.max(0, size - 2 * i)));
    for (const text of texts) socket.send(text);
    await waitFor('every echo', () => messages.length === texts.length, WAIT_MS);
    assert.deepEqual(messages.map((m) => m.length), texts.map((t) => t.length));
    assert.deepEqual(messages, texts);
    socket.terminate();
  } finally {
    await server.close();
  }
});

test('frames split byte by byte, joined in one chunk, fragmented around a ping: every message whole and in order, the ping answered', async () => {
  const fromClient: Buffer[] = [];
  const frames = Buffer.concat([
    serverFrame(0x1, 'one'),
    serverFrame(0x1, 'two'),
    serverFrame(0x1, 'x'.repeat(70_000)),
    serverFrame(0x1, 'fr', false),
    serverFrame(0x9, 'are you there'),
    serverFrame(0x0, 'ag', false),
    serverFrame(0x0, 'ments', true),
    serverFrame(0x2, Buffer.from([0, 1, 2])),
  ]);
  // The first 40 bytes one per write, then the rest in uneven chunks.
  const chunks: Buffer[] = [];
  for (let at = 0; at < 40; at++) chunks.push(frames.subarray(at, at + 1));
  for (let at = 40; at < frames.length; at += 7_001) chunks.push(frames.subarray(at, at + 7_001));
  const server = await handServer(accepted, chunks, (socket) => socket.on('data', (data) => fromClient.push(data)));
  try {
    const { socket, messages } = await collecting(server.url);
    await waitFor('five messages', () => messages.length === 5, WAIT_MS);
    assert.deepEqual(messages, ['one', 'two', 'x'.repeat(70_000), 'fragments', '\u0000\u0001\u0002']);
    const sent = Buffer.concat(fromClient);
    const pong = sent.subarray(sent.indexOf('\r\n\r\n') + 4);
    // A masked pong (zero key) that echoes the ping's payload.
    assert.equal(pong[0], 0x8a);
    assert.equal(pong[1], 0x80 | 'are you there'.length);
    assert.equal(pong.subarray(6).toString(), 'are you there');
    socket.terminate();
  } finally {
    await server.close();
  }
});

test('messages that arrive with the 101 answer reach onMessage, so a Socket.IO open packet is not lost', async () => {
  const server = await handServer((key) => accepted(key) + serverFrame(0x1, '0{"sid":"a"}').toString('latin1'));
  try {
    const { socket, messages } = await collecting(server.url);
    assert.deepEqual(messages, ['0{"sid":"a"}']);
    socket.terminate();
  } finally {
    await server.close();
  }
});

test('a refused upgrade, a wrong accept value, a silent server and a closed port each reject open()', async () => {
  const open = (url: string, timeoutMs = WAIT_MS) => BareSocket.open({ url, timeoutMs, onMessage: () => undefined });
  const ws = await wsServer(() => undefined);
  const refused = await handServer(() => 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
  const wrongAccept = await handServer(() => accepted('another key'));
  const silent = await handServer(() => '');
  try {
    await assert.rejects(open(ws.url.replace('/echo', '/elsewhere')), /upgrade refused: HTTP\/1\.1 400/);
    await assert.rejects(open(refused.url), /upgrade refused: HTTP\/1\.1 403 Forbidden/);
    await assert.rejects(open(wrongAccept.url), /wrong Sec-WebSocket-Accept/);
    await assert.rejects(open(silent.url, 300), /no handshake after 300 ms/);
    const port = new URL(ws.url).port;
    await ws.close();
    await assert.rejects(open(`ws://127.0.0.1:${port}/echo`), /ECONNREFUSED/);
  } finally {
    await Promise.all([refused.close(), wrongAccept.close(), silent.close()]);
  }
});

test('a masked server frame, reserved bits and an unexpected continuation close the socket with a protocol error', async () => {
  const bad = [
    encodeFrame({ fin: true, rsv: 0, opcode: 0x1, payload: Buffer.from('hi'), masked: true, lengthForm: 'minimal' }),
    encodeFrame({ fin: true, rsv: 0b100, opcode: 0x1, payload: Buffer.from('hi'), masked: false, lengthForm: 'minimal' }),
    serverFrame(0x0, 'orphan'),
  ];
  for (const [i, frame] of bad.entries()) {
    const server = await handServer(accepted, [serverFrame(0x1, 'before'), frame, serverFrame(0x1, 'after')]);
    try {
      const { messages, closed } = await collecting(server.url);
      assert.match(await withTimeout(closed, WAIT_MS, `case ${i} closed`), /^protocol error: /, `case ${i}`);
      assert.deepEqual(messages, ['before'], `case ${i}: nothing after the bad frame`);
    } finally {
      await server.close();
    }
  }
});

test('a close frame from the server closes with its code; terminate() ends the TCP connection and whenClosed() resolves', async () => {
  const code = Buffer.alloc(2);
  code.writeUInt16BE(4001);
  const closing = await handServer(accepted, [serverFrame(0x8, code)]);
  let serverClosed: (code: number) => void = () => undefined;
  const closedCode = new Promise<number>((resolve) => (serverClosed = resolve));
  const echo = await wsServer((ws) => ws.on('close', serverClosed));
  try {
    const { closed } = await collecting(closing.url);
    assert.equal(await withTimeout(closed, WAIT_MS, 'closed by the server'), 'closed by the server (4001)');
    const { socket } = await collecting(echo.url);
    assert.equal(socket.isOpen, true);
    socket.terminate();
    assert.equal(socket.isOpen, false);
    await withTimeout(socket.whenClosed(), WAIT_MS, 'whenClosed');
    // 1006: the server saw the TCP connection end with no closing handshake.
    assert.equal(await withTimeout(closedCode, WAIT_MS, 'the server saw the close'), 1006);
    socket.send('ignored once closed');
  } finally {
    await closing.close();
    await echo.close();
  }
});
