import type { Socket } from 'node:net';
import { ConnectionContext } from '../session/context';
import type { Subscriber, Outgoing } from '../mesh/hub';
import type { Batchable, WriteBatch } from '../wire/write-batch';

const EMPTY = Buffer.alloc(0);

export interface SocketConnectionOptions {
  /** Bytes that may wait in the send buffer; a write past it drops the connection. */
  maxBufferedBytes: number;
  /** Channels the connection may hold (0 = no limit). */
  maxChannels: number;
  /** The server's write batch, which coalesces this connection's writes into one socket write. */
  batch: WriteBatch;
  /** Turns a published or sent payload into the bytes to write (`protocol_encode`); null if it cannot. */
  encode(conn: SocketConnection, payload: Buffer): Buffer | null;
}

/**
 * One client of a `protocol: socket` server: a raw TCP connection whose framing the Lua entry defines.
 * It keeps the input not yet taken as packets; `conn:send` writes raw bytes, while deliveries from the
 * mesh go through `protocol_encode` first. Writes go through the server's write batch like WebSocket frames.
 */
export class SocketConnection implements Subscriber, Batchable {
  readonly protocol = 'socket' as const;
  readonly context = new ConnectionContext();
  readonly channels = new Set<string>();
  queued: Buffer | Buffer[] | null = null;
  queuedBytes = 0;
  /** Registry ref of this connection's Lua userdata, -1 until a script asks for it. */
  luaRef = -1;
  /** Last time any data arrived (ms), for `readTimeout`. */
  lastReadAt = Date.now();
  /** Since when (ms) writes have been waiting to drain, 0 when the buffer is empty. */
  blockedSince = 0;
  /** Input received and not yet taken as packets. Never written into: appending makes a new Buffer. */
  pending: Buffer = EMPTY;
  /** Why the connection ended, for on_close: null for a clean end (either side closed it normally). */
  closeError: string | null = null;
  private closing = false;

  constructor(
    readonly socket: Socket,
    readonly clientId: string,
    readonly remoteAddr: string,
    private readonly options: SocketConnectionOptions,
  ) {}

  get maxChannels(): number {
    return this.options.maxChannels;
  }

  /** Open until either side starts closing it. */
  get open(): boolean {
    return !this.closing && this.socket.writable;
  }

  get flushable(): boolean {
    return this.socket.writable;
  }

  /** Whether the socket still holds resources (it may be flushing its last writes after a close). */
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

  /** Writes raw bytes; false if the connection is not open or its send buffer is full. */
  write(bytes: Buffer): boolean {
    if (!this.open) return false;
    if (this.socket.writableLength + this.queuedBytes + bytes.length > this.options.maxBufferedBytes) {
      this.abort('send buffer full');
      return false;
    }
    this.options.batch.write(this, bytes);
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
    return bytes !== null && this.write(bytes);
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
}
