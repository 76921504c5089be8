import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { ConnectionContext } from '../lua/mix/context';
import type { Subscriber, Outgoing } from '../mesh/hub';
import { frame } from './frame';
import { writeBatched, type Batchable } from './write-batch';
import { CloseCode } from './close-codes';

export interface ConnectionLimits {
  /** Bytes that may wait in the send buffer; a write past it closes the connection with 1008. */
  maxBufferedBytes: number;
}

/**
 * One client connection of a business server: its identity, Lua context, channels, and the write
 * path. Frames are written straight to the socket (framed once by the caller for publishes) and
 * batched per event-loop turn; ws keeps reading, control frames and the close handshake.
 */
export class Connection implements Subscriber, Batchable {
  readonly context = new ConnectionContext();
  readonly channels = new Set<string>();
  readonly socket: Socket;
  batched = false;
  /** Registry ref of this connection's Lua userdata, -1 until a script asks for it. */
  luaRef = -1;
  /** Last time any data arrived (ms), for `readTimeout`. */
  lastReadAt = Date.now();
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

  /** Writes one pre-built frame; false if the connection is not open or its buffer is full. */
  write(bytes: Buffer): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    if (this.socket.writableLength + bytes.length > this.limits.maxBufferedBytes) {
      this.abort(CloseCode.POLICY, 'send buffer full');
      return false;
    }
    writeBatched(this, bytes);
    return true;
  }

  /** Writes a published or sent message: its frame, shared with the other WebSocket subscribers. */
  deliver(message: Outgoing): boolean {
    return this.write(message.frame());
  }

  /** Sends one message (text unless `binary`). */
  send(data: Uint8Array, binary: boolean): boolean {
    return this.write(frame(data, binary));
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
      this.ws.close(code, reason);
    }
  }
}
