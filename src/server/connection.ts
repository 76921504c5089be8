import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { Outgoing } from '../mesh/hub';
import { frame } from '../wire/frame';
import type { WriteBatch } from '../wire/write-batch';
import { CloseCode } from '../wire/close-codes';
import type { DropReason, Metrics } from '../metrics';
import { ClientConnection } from './client-connection';
import type { ByteBudget } from '../wire/byte-budget';

export interface ConnectionLimits {
  /** Bytes that may wait in the send buffer; a write past it drops the connection (1008). */
  maxBufferedBytes: number;
  /** Past this many buffered bytes, published messages are skipped until the connection catches up. */
  softBufferedBytes: number;
  /** Channels the connection may hold (0 = no limit). */
  maxChannels: number;
  /** The server's write batch, which coalesces this connection's frames into one socket write. */
  batch: WriteBatch;
  /** The node's budget for connection contexts (`engine.maxContextBytes`). */
  contexts: ByteBudget | null;
  metrics?: Metrics;
}

/**
 * One client connection of a `protocol: websocket` server. Frames (framed once by the caller for
 * publishes) go to the socket through the server's write batch; ws keeps reading, control frames and
 * the close handshake.
 */
export class Connection extends ClientConnection {
  readonly protocol = 'websocket' as const;
  /** When the server last pinged this connection (ms), so a silent one is pinged once per silence. */
  pingedAt = 0;
  /** Why the engine dropped the connection without a close handshake, if it did. */
  abortedWith: { code: number; reason: string } | null = null;

  /** @param socket the upgraded request's socket, which `ws` writes to */
  constructor(
    readonly ws: WebSocket,
    socket: Socket,
    clientId: string,
    remoteAddr: string,
    private readonly limits: ConnectionLimits,
  ) {
    super(socket, clientId, remoteAddr, limits.maxChannels, limits.contexts);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get alive(): boolean {
    return this.open;
  }

  /** Frames still in the write batch are dropped once a close began (they would follow the close frame). */
  get flushable(): boolean {
    return this.open;
  }

  /**
   * Writes one pre-built frame; false if the connection is not open or its buffer is full. A
   * `delivery` (a published message) is skipped while the buffer is past the soft limit, so a slow
   * consumer loses messages instead of growing memory, and may wait for the write window; anything else
   * is an answer, which leaves at the end of the turn. Past the hard limit the connection is dropped.
   */
  write(bytes: Buffer, delivery = false): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return this.dropped('closed');
    const buffered = this.socket.writableLength + this.queuedBytes;
    if (buffered + bytes.length > this.limits.maxBufferedBytes) {
      this.drop(CloseCode.POLICY, 'send buffer full');
      return this.dropped('buffer_full');
    }
    if (delivery && buffered > this.limits.softBufferedBytes) return this.dropped('slow_consumer');
    this.limits.batch.write(this, bytes, !delivery);
    return true;
  }

  /** Writes a published or sent message: its frame, shared with the other WebSocket subscribers. */
  deliver(message: Outgoing): boolean {
    return this.write(message.frame(), true);
  }

  private dropped(reason: DropReason): false {
    this.limits.metrics?.drop(reason);
    return false;
  }

  /** `conn:send` from Lua: one message (text unless `binary`), never skipped for a slow consumer. */
  send(data: Uint8Array, binary: boolean): boolean {
    const sent = this.write(frame(data, binary));
    this.limits.metrics?.countSends(sent ? 1 : 0, sent ? 0 : 1, 0, 0);
    return sent;
  }

  /**
   * Drops the connection at once: a peer that does not read would never see a close frame queued
   * behind its full buffer. `code` and `reason` are what on_close and the logs report.
   */
  drop(code: number, reason: string): void {
    if (this.abortedWith) return;
    this.abortedWith = { code, reason };
    this.ws.terminate();
  }

  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.limits.batch.flushNow(this);
      this.ws.close(code, reason);
    }
  }

  closeWith(code: number, reason: string): void {
    this.close(code, reason);
  }

  shutDown(code: number): void {
    this.close(code, 'server shutting down');
  }

  terminate(): void {
    this.ws.terminate();
  }

  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  /** Pings once per silence: a live client's pong counts as data (browsers cannot ping but always answer). */
  probe(now: number): void {
    // `<=`: on loopback a pong can arrive in the very millisecond of its ping.
    if (this.pingedAt <= this.lastReadAt) {
      this.pingedAt = now;
      this.ws.ping();
    }
  }
}
