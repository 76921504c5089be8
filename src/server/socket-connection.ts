import type { Socket } from 'node:net';
import type { Outgoing } from '../mesh/hub';
import type { WriteBatch } from '../wire/write-batch';
import { ClientConnection } from './client-connection';
import type { ByteBudget } from '../wire/byte-budget';

const EMPTY = Buffer.alloc(0);

export interface SocketConnectionOptions {
  /** Bytes that may wait in the send buffer; a write past it drops the connection. */
  maxBufferedBytes: number;
  /** Channels the connection may hold (0 = no limit). */
  maxChannels: number;
  /** The server's write batch, which coalesces this connection's writes into one socket write. */
  batch: WriteBatch;
  /** The node's budget for connection contexts (`engine.maxContextBytes`). */
  contexts: ByteBudget | null;
  /** Turns a published or sent payload into the bytes to write (`protocol_encode`); null if it cannot. */
  encode(conn: SocketConnection, payload: Buffer): Buffer | null;
}

/**
 * One client of a `protocol: socket` server: a raw TCP connection whose framing the Lua entry defines.
 * It keeps the input not yet taken as packets; `conn:send` writes raw bytes, while deliveries from the
 * mesh go through `protocol_encode` first. Writes go through the server's write batch like WebSocket
 * frames. A socket has no close codes: on_close gets the reason only.
 */
export class SocketConnection extends ClientConnection {
  readonly protocol = 'socket' as const;
  /** Input received and not yet taken as packets. Never written into: appending makes a new Buffer. */
  pending: Buffer = EMPTY;
  /** Why the connection ended, for on_close: null for a clean end (either side closed it normally). */
  closeError: string | null = null;
  private closing = false;

  constructor(
    socket: Socket,
    clientId: string,
    remoteAddr: string,
    private readonly options: SocketConnectionOptions,
  ) {
    super(socket, clientId, remoteAddr, options.maxChannels, options.contexts);
  }

  /** Open until either side starts closing it. */
  get open(): boolean {
    return !this.closing && this.socket.writable;
  }

  get flushable(): boolean {
    return this.socket.writable;
  }

  get alive(): boolean {
    return !this.socket.destroyed;
  }

  /** Appends received bytes to the pending input. */
  append(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
  }

  /** Removes and returns the first `length` pending bytes. */
  take(length: number): Buffer {
    const packet = this.pending.subarray(0, length);
    this.pending = this.pending.subarray(length);
    return packet;
  }

  /** `conn:clear_buffer()`: drops the pending input. */
  clearBuffer(): void {
    this.pending = EMPTY;
  }

  /**
   * Writes raw bytes; false if the connection is not open or its send buffer is full. A `delivery` (a
   * published message) may wait for the write window; anything else leaves at the end of the turn.
   */
  write(bytes: Buffer, delivery = false): boolean {
    if (!this.open) return false;
    if (this.socket.writableLength + this.queuedBytes + bytes.length > this.options.maxBufferedBytes) {
      this.abort('send buffer full');
      return false;
    }
    this.options.batch.write(this, bytes, !delivery);
    return true;
  }

  /** `conn:send(data)`: raw bytes, no `protocol_encode`; a socket has no message types. */
  send(data: Uint8Array): boolean {
    return this.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  /** Writes a published or sent message, encoded by the entry's `protocol_encode`. */
  deliver(message: Outgoing): boolean {
    if (!this.open) return false;
    const bytes = this.options.encode(this, message.payload);
    return bytes !== null && this.write(bytes, true);
  }

  /** Ends the connection once its pending writes are flushed; `error` is what on_close receives. */
  close(error: string | null = null): void {
    if (this.closing) return;
    this.closing = true;
    this.closeError = error;
    this.options.batch.flushNow(this);
    this.socket.destroySoon();
  }

  /** Drops the connection at once, pending writes included (a peer that does not read). */
  abort(error: string): void {
    if (!this.closing) this.closeError = error;
    this.closing = true;
    this.socket.destroy();
  }

  /** The socket failed (reset by the peer, for instance); on_close reports it unless we were closing. */
  failed(error: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.closeError = error.message;
  }

  closeWith(_code: number, reason: string): void {
    this.close(reason);
  }

  drop(_code: number, reason: string): void {
    this.abort(reason);
  }

  shutDown(): void {
    this.close();
  }

  terminate(): void {
    this.abort('server shutting down');
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** A raw socket has nothing to probe with: only its data counts against readTimeout. */
  probe(): void {}
}
