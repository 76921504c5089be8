import { blockedFor, type Batchable } from '../wire/write-batch';
import { CloseCode } from '../wire/close-codes';
import type { Logger } from '../log';
import type { ClientConnection } from './client-connection';
import { monotonicMs } from '../wire/clock';

/** The two timeouts, in seconds (0 = off), as a business server's config has them. */
export interface Timeouts {
  /** Nothing received for this long closes the connection; half of it without data, it is probed. */
  readTimeout: number;
  /** Writes waiting to drain for this long drop the connection, closing ones included. */
  writeTimeout: number;
}

/**
 * readTimeout and writeTimeout for one server's connections, at a cost set by what falls due rather
 * than by how many are connected. A look at every connection every second cost about 0.25 µs each
 * (bench/notes.md): 25 ms of every second, in one block, for 100,000 idle viewers.
 *
 * - Silence: each connection is filed under the second in which it could first have been silent for
 *   half its readTimeout. When that second comes, one that read since is filed again from its last
 *   read; a silent one is probed (a WebSocket ping) and filed at its timeout. An active connection is
 *   looked at once per half readTimeout, whatever its traffic.
 * - Writes: a flush that leaves bytes in the socket's buffer (the write batch calls `onBacklog`) puts
 *   the connection in a set looked at every second until its buffer is empty; only those can stall.
 */
export class TimeoutWatch {
  /** Connections by the second (epoch seconds) at which their silence is next looked at. */
  private readonly due = new Map<number, Set<ClientConnection>>();
  /** Connections whose writes wait to drain. */
  private readonly backlogged = new Set<ClientConnection>();
  /** The last second whose connections were looked at. */
  private swept: number;
  private readonly readMs: number;
  private readonly writeMs: number;
  /** Given to every watched connection, so the write batch can report its backlog without knowing the watch. */
  private readonly noteBacklog = (peer: Batchable): void => {
    this.backlogged.add(peer as ClientConnection);
  };

  constructor(
    timeouts: Timeouts,
    private readonly log: Logger,
  ) {
    this.readMs = timeouts.readTimeout * 1000;
    this.writeMs = timeouts.writeTimeout * 1000;
    this.swept = Math.floor(monotonicMs() / 1000);
  }

  /** Starts watching a connection that was just admitted. */
  add(conn: ClientConnection): void {
    if (this.writeMs > 0) conn.onBacklog = this.noteBacklog;
    if (this.readMs > 0) this.file(conn, conn.lastReadAt + this.readMs / 2 + 1);
  }

  /** Stops watching a connection that closed, so the watch holds nothing of it. */
  remove(conn: ClientConnection): void {
    conn.onBacklog = null;
    this.unfile(conn);
    this.backlogged.delete(conn);
  }

  /** Looks at the connections due by now and at the backlogged ones; runs once a second. */
  tick(): void {
    const now = monotonicMs();
    const second = Math.floor(now / 1000);
    // Set first: connections filed again below go to later seconds, which this loop passes over.
    this.swept = second;
    // The slots, not the seconds since the last tick: at most readTimeout + 2 of them, whatever the clock did.
    for (const [at, slot] of this.due) {
      if (at > second) continue;
      this.due.delete(at);
      for (const conn of slot) {
        conn.dueAt = 0;
        this.lookAtSilence(conn, now);
      }
    }
    for (const conn of this.backlogged) this.lookAtWrites(conn, now);
  }

  private lookAtSilence(conn: ClientConnection, now: number): void {
    // A closing connection is past its read timeout's business; its writes are still watched.
    if (!conn.alive || !conn.open) return;
    const silent = now - conn.lastReadAt;
    if (silent > this.readMs) {
      conn.closeWith(CloseCode.READ_TIMEOUT, 'read timeout');
      return;
    }
    if (silent > this.readMs / 2) {
      conn.probe(now);
      this.file(conn, conn.lastReadAt + this.readMs + 1);
    } else {
      this.file(conn, conn.lastReadAt + this.readMs / 2 + 1);
    }
  }

  private lookAtWrites(conn: ClientConnection, now: number): void {
    if (!conn.alive) {
      this.backlogged.delete(conn);
      return;
    }
    const blocked = blockedFor(conn, now);
    if (conn.blockedSince === 0) {
      this.backlogged.delete(conn); // drained
    } else if (blocked > this.writeMs) {
      this.backlogged.delete(conn);
      this.log.warn('write timeout, dropping the connection', { client_id: conn.clientId });
      conn.drop(CloseCode.WRITE_TIMEOUT, 'write timeout');
    }
  }

  /** Files `conn` under the second holding `atMs`, or the next one to be looked at if that has passed. */
  private file(conn: ClientConnection, atMs: number): void {
    const at = Math.max(Math.ceil(atMs / 1000), this.swept + 1);
    let slot = this.due.get(at);
    if (!slot) {
      slot = new Set();
      this.due.set(at, slot);
    }
    slot.add(conn);
    conn.dueAt = at;
  }

  private unfile(conn: ClientConnection): void {
    if (conn.dueAt === 0) return;
    const slot = this.due.get(conn.dueAt);
    if (slot?.delete(conn) && slot.size === 0) this.due.delete(conn.dueAt);
    conn.dueAt = 0;
  }
}
