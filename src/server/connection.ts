import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { ConnectionContext } from '../session/context';
import type { Subscriber, Outgoing } from '../mesh/hub';
import { frame } from '../wire/frame';
import type { Batchable, WriteBatch } from '../wire/write-batch';
import { CloseCode } from '../wire/close-codes';
import type { DropReason, Metrics } from '../metrics';

export interface ConnectionLimits {
  /** Bytes that may wait in the send buffer; a write past it drops the connection (1008). */
  maxBufferedBytes: number;
  /** Past this many buffered bytes, published messages are skipped until the connection catches up. */
  softBufferedBytes: number;
  /** Channels the connection may hold (0 = no limit). */
  maxChannels: number;
  /** The server's write batch, which coalesces this connection's frames into one socket write. */
  batch: WriteBatch;
  metrics?: Metrics;
}

/**
 * One client connection of a business server: its identity, Lua context, channels, and the write
 * path. Frames (framed once by the caller for publishes) go to the socket through the server's write
 * batch; ws keeps reading, control frames and the close handshake.
 */
export class Connection implements Subscriber, Batchable {
  readonly protocol = 'websocket' as const;
  readonly context = new ConnectionContext();
  readonly channels = new Set<string>();
  readonly socket: Socket;
  queued: Buffer | Buffer[] | null = null;
  queuedBytes = 0;
  /** Registry ref of this connection's Lua userdata, -1 until a script asks for it. */
  luaRef = -1;
  /** Last time any data arrived (ms), for `readTimeout`. */
  lastReadAt = Date.now();
  /** When the server last pinged this connection (ms), so a silent one is pinged once per silence. */
  pingedAt = 0;
  /** Since when (ms) writes have been waiting to drain, 0 when the buffer is empty. */
  blockedSince = 0;
  /** Why the engine dropped the connection without a close handshake, if it did. */
  abortedWith: { code: number; reason: string } | null = null;

  constructor(
    readonly ws: WebSocket,
    readonly clientId: string,
    readonly remoteAddr: string,
    private readonly limits: ConnectionLimits,
  ) {
    this.socket = (ws as unknown as { _socket: Socket })._socket;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Frames still in the write batch are dropped once a close began (they would follow the close frame). */
  get flushable(): boolean {
    return this.open;
  }

  get maxChannels(): number {
    return this.limits.maxChannels;
  }

  /**
   * Writes one pre-built frame; false if the connection is not open or its buffer is full. A
   * `skippable` message (a delivery) is skipped while the buffer is past the soft limit, so a slow
   * consumer loses messages instead of growing memory; past the hard limit the connection is dropped.
   */
  write(bytes: Buffer, skippable = false): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return this.dropped('closed');
    const buffered = this.socket.writableLength + this.queuedBytes;
    if (buffered + bytes.length > this.limits.maxBufferedBytes) {
      this.abort(CloseCode.POLICY, 'send buffer full');
      return this.dropped('buffer_full');
    }
    if (skippable && buffered > this.limits.softBufferedBytes) return this.dropped('slow_consumer');
    this.limits.batch.write(this, bytes);
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
  abort(code: number, reason: string): void {
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
}
