import type { Socket } from 'node:net';

/** A socket whose writes can be held back until the end of the event-loop turn. */
export interface Batchable {
  readonly socket: Socket;
  /** Set while the socket is corked by the batch; owned by this module. */
  batched: boolean;
}

const pending: Batchable[] = [];
let scheduled = false;

/**
 * Writes `chunk` to the socket, corking it on its first write of this turn and uncorking it once
 * after the turn's I/O (setImmediate): every message a socket gets in one turn leaves in one writev,
 * which is where most of the fan-out cost goes (stack-notes 2.4).
 */
export function writeBatched(target: Batchable, chunk: Buffer): void {
  if (!target.batched) {
    target.batched = true;
    target.socket.cork();
    pending.push(target);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }
  target.socket.write(chunk);
}

/**
 * How long (ms) the target's writes have been waiting to drain, for `writeTimeout`; 0 once its buffer is
 * empty. Call it on every sweep: it remembers when the wait began in `blockedSince`.
 */
export function blockedFor(target: Batchable & { blockedSince: number }, now: number): number {
  if (target.socket.writableLength === 0) {
    target.blockedSince = 0;
    return 0;
  }
  if (target.blockedSince === 0) target.blockedSince = now;
  return now - target.blockedSince;
}

function flush(): void {
  scheduled = false;
  const targets = pending.splice(0);
  for (const target of targets) {
    target.batched = false;
    target.socket.uncork();
  }
}
