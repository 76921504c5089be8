import type { Socket } from 'node:net';

/** What a WriteBatch needs of a connection. Its `queued*` fields are owned by the batch. */
export interface Batchable {
  readonly socket: Socket;
  /** Frames waiting for the batch's next flush: none, one, or several in order. */
  queued: Buffer | Buffer[] | null;
  /** Bytes in `queued`, counted with the socket's own buffer against the connection's limits. */
  queuedBytes: number;
  /** Its queue leaves at the end of this event-loop turn (see WriteBatch.write's `soon`); reset once written. */
  hurried: boolean;
  /** False once the connection started closing: what is still queued then is dropped. */
  readonly flushable: boolean;
  /** Called when a flush leaves bytes in the socket's buffer (the peer is not keeping up), if set. */
  readonly onBacklog: ((target: Batchable) => void) | null;
}

/** Several frames up to this size are copied into one Buffer; larger ones go out as one writev. */
const CONCAT_LIMIT = 64 * 1024;

/**
 * Holds the frames written to a server's connections and writes each connection's frames with one
 * socket write at the end of the event-loop turn (`windowMs` 0) or `windowMs` milliseconds after the
 * first one. The write syscall is most of the fan-out cost (bench/RESULTS.md, the hot-video profiles): a socket that gets
 * several messages in a window makes one syscall for all of them, and one that gets a single message
 * skips the stream's cork/uncork bookkeeping. Each message stays its own WebSocket frame.
 *
 * An answer (a script's `conn:send`) does not wait for the window: it leaves at the end of the turn, with
 * whatever its connection has queued before it, so a request and its answer cost no added millisecond.
 */
export class WriteBatch {
  private pending: Batchable[] = [];
  private hurried: Batchable[] = [];
  private readonly flushAll = (): void => {
    const targets = this.pending;
    this.pending = [];
    writeEach(targets);
  };
  private readonly flushHurried = (): void => {
    const targets = this.hurried;
    this.hurried = [];
    writeEach(targets);
  };

  /** @param windowMs how long the first frame of a batch may wait for others (0 = until the turn's I/O is done) */
  constructor(readonly windowMs: number) {}

  /**
   * Queues `chunk` for `target`; the batch writes it with whatever else the target gets meanwhile.
   * With `soon`, the target's queue leaves at the end of this turn even if the window is longer.
   */
  write(target: Batchable, chunk: Buffer, soon = false): void {
    const queued = target.queued;
    if (queued === null) {
      target.queued = chunk;
    } else if (Array.isArray(queued)) {
      queued.push(chunk);
    } else {
      target.queued = [queued, chunk];
    }
    target.queuedBytes += chunk.length;
    if (soon && this.windowMs > 0) {
      if (target.hurried) return;
      target.hurried = true;
      if (this.hurried.push(target) === 1) setImmediate(this.flushHurried);
    } else if (queued === null && this.pending.push(target) === 1) {
      if (this.windowMs > 0) setTimeout(this.flushAll, this.windowMs);
      else setImmediate(this.flushAll);
    }
  }

  /** Writes what `target` has queued now: a close frame or a socket end must come after it. */
  flushNow(target: Batchable): void {
    if (target.queued !== null) writeQueued(target);
  }
}

/** Writes the queue of each target that still has one (a target may be listed twice, or written since). */
function writeEach(targets: Batchable[]): void {
  for (const target of targets) if (target.queued !== null) writeQueued(target);
}

function writeQueued(target: Batchable): void {
  const queued = target.queued as Buffer | Buffer[];
  const bytes = target.queuedBytes;
  target.queued = null;
  target.queuedBytes = 0;
  target.hurried = false;
  if (!target.flushable) return;
  const socket = target.socket;
  if (!Array.isArray(queued)) {
    socket.write(queued);
  } else if (bytes <= CONCAT_LIMIT) {
    socket.write(Buffer.concat(queued, bytes));
  } else {
    socket.cork();
    for (const chunk of queued) socket.write(chunk);
    socket.uncork();
  }
  if (target.onBacklog !== null && socket.writableLength > 0) target.onBacklog(target);
}

/**
 * How long (ms) the target's writes have been waiting to drain, for `writeTimeout`; 0 once its buffer is
 * empty. Call it at least once a second while the target is backlogged: it remembers when the wait
 * began in `blockedSince`.
 */
export function blockedFor(target: Batchable & { blockedSince: number }, now: number): number {
  if (target.socket.writableLength === 0) {
    target.blockedSince = 0;
    return 0;
  }
  if (target.blockedSince === 0) target.blockedSince = now;
  return now - target.blockedSince;
}
