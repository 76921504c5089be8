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

/**
 * Performs a real WebSocket upgrade on `node`'s viewer endpoint; rejects if it is refused or unanswered
 * within `ms`. With `allowHalfOpen`, the socket does not end its side when the node ends its own.
 */
export async function rawUpgrade(node: TestNode, ms = 20_000, allowHalfOpen = false): Promise<RawPeer> {
  const url = new URL(node.wsUrl);
  const socket = net.connect({ port: Number(url.port), host: '127.0.0.1', allowHalfOpen });
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

/** A WebSocket frame as a test writes it, legal or not. */
export interface FrameSpec {
  fin: boolean;
  /** RSV1..3 as the top bits 0b100 (RSV1), 0b010, 0b001. */
  rsv: number;
  opcode: number;
  payload: Buffer;
  masked: boolean;
  /** How the length is written: 7-bit when it fits, or forced 16/64-bit (not minimal, still legal for ws). */
  lengthForm: 'minimal' | '16' | '64';
  /** A length to declare instead of the payload's (a lie), if any. */
  declared?: number;
}

/** The bytes of `spec` on the wire (masked with a random key when `masked`). */
export function encodeFrame(spec: FrameSpec): Buffer {
  const length = spec.declared ?? spec.payload.length;
  const head = [(spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f)];
  const maskBit = spec.masked ? 0x80 : 0;
  let extended = Buffer.alloc(0);
  if (spec.lengthForm === 'minimal' && length < 126) {
    head.push(maskBit | length);
  } else if (spec.lengthForm !== '64' && length < 65536) {
    head.push(maskBit | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(length);
  } else {
    head.push(maskBit | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(BigInt(length));
  }
  if (!spec.masked) return Buffer.concat([Buffer.from(head), extended, spec.payload]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(spec.payload.map((byte, i) => byte ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), extended, key, masked]);
}

/** One masked client frame, as a browser would send it: `fin` false for all but a message's last fragment. */
export function clientFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  return encodeFrame({ fin, rsv: 0, opcode, payload, masked: true, lengthForm: 'minimal' });
}

/** The frames in `bytes` as a server sends them (unmasked, whole), in order. */
export function serverFrames(bytes: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const frames: Array<{ opcode: number; payload: Buffer }> = [];
  for (let at = 0; at + 2 <= bytes.length;) {
    const short = bytes[at + 1] & 0x7f;
    const [head, length] = short === 126 ? [4, bytes.readUInt16BE(at + 2)] : short === 127 ? [10, Number(bytes.readBigUInt64BE(at + 2))] : [2, short];
    if (at + head + length > bytes.length) break;
    frames.push({ opcode: bytes[at] & 0x0f, payload: bytes.subarray(at + head, at + head + length) });
    at += head + length;
  }
  return frames;
}
