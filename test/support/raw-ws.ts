import * as net from 'node:net';
import * as crypto from 'node:crypto';
import type { TestNode } from './helpers';

/** A WebSocket connection on a bare TCP socket: the test writes raw frames and reads raw bytes. */
export interface RawPeer {
  socket: net.Socket;
  /** Bytes received after the 101 response. */
  after: () => Buffer;
  closed: Promise<void>;
}

/** Performs a real WebSocket upgrade on `node`'s viewer endpoint; rejects if it is refused or unanswered within `ms`. */
export async function rawUpgrade(node: TestNode, ms = 20_000): Promise<RawPeer> {
  const url = new URL(node.wsUrl);
  const socket = net.connect(Number(url.port), '127.0.0.1');
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let received = Buffer.alloc(0);
  let headerEnd = -1;
  const upgraded = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no upgrade response')), ms);
    socket.once('error', reject);
    void closed.then(() => reject(new Error('closed before the upgrade response')));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (headerEnd >= 0 || received.indexOf('\r\n\r\n') < 0) return;
      headerEnd = received.indexOf('\r\n\r\n') + 4;
      clearTimeout(timer);
      const status = received.subarray(0, headerEnd).toString('latin1');
      if (status.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`upgrade refused: ${status.split('\r\n')[0]}`));
    });
  });
  socket.write(upgradeRequest(url));
  await upgraded;
  return { socket, after: () => received.subarray(headerEnd), closed };
}

/** A complete WebSocket upgrade request for `url`, with a fresh random key. */
export function upgradeRequest(url: URL): string {
  return `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}
