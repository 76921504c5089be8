import type { Socket } from 'node:net';
import type { Batchable } from './write-batch';
import { monotonicMs } from './clock';

/**
 * What every connection the engine serves has, business clients and `/ws/v1` backends alike: its
 * socket, its place in a write batch, and the times its timeouts are measured from.
 */
export abstract class Peer implements Batchable {
  queued: Buffer | Buffer[] | null = null;
  queuedBytes = 0;
  hurried = false;
  /** Last time any data arrived (ms), for `readTimeout`. */
  lastReadAt = monotonicMs();
  /** Since when (ms) writes have been waiting to drain, 0 when the buffer is empty (for `writeTimeout`). */
  blockedSince = 0;
  /** Told when a flush leaves bytes in the socket's buffer, by whoever enforces `writeTimeout`. */
  onBacklog: ((peer: Batchable) => void) | null = null;

  /** @param socket the connection's socket; for a WebSocket, the upgraded request's */
  constructor(readonly socket: Socket) {}

  abstract get flushable(): boolean;
}
