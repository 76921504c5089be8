import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';

/** Who accepted a socket: a business server, or the API server (which may use part of the reserve). */
export type SocketKind = 'business' | 'api';

/** How long business listeners refuse every new connection once they reached their ceiling. */
const PAUSE_MS = 1000;
/** How often descriptors are counted while the node is past half its limit, and otherwise. */
const BUSY_COUNT_MS = 1000;
const CALM_COUNT_MS = 10_000;

/** The soft limit on open files of this process (`ulimit -n`), or 0 when it cannot be read (not Linux). */
export function openFileLimit(): number {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Counts the descriptors this process has open; null if it cannot. Linux 6.2 and later report the
 * count as the size of /proc/self/fd: one stat, about 25 µs however many are open, where listing the
 * folder took 10 ms for 10,000 sockets. Older kernels list it (not counting the listing's own
 * descriptor); a listing that cannot open for lack of descriptors means the table is full: `limit`.
 */
function countOpenFds(limit: number, done: (open: number | null) => void): void {
  fs.stat('/proc/self/fd', (statError, stats) => {
    if (!statError && stats.size > 0) return done(stats.size);
    fs.readdir('/proc/self/fd', (error, entries) => {
      if (!error) return done(entries.length - 1);
      done(error.code === 'EMFILE' || error.code === 'ENFILE' ? limit : null);
    });
  });
}

/**
 * Keeps the process from running out of file descriptors because of its clients. Every accepted
 * socket is counted; with the descriptors the node holds for itself (listeners, log file, Redis,
 * Lua files, outgoing HTTP), counted from /proc/self/fd now and then, that is how many are open.
 * Business listeners stop `reserve` descriptors short of the limit, the API server a quarter of the
 * reserve short of it (so /healthz and the publish API still answer), and the rest is the node's own:
 * hot reload, log rotation, Redis reconnects. At their ceiling the business listeners refuse every new
 * connection for a second, and the newest idle connections (nothing received yet: the flood, most
 * likely) are closed until a second reserve is free again.
 */
export class FdGuard {
  private readonly sockets = new Set<Socket>();
  /** Descriptors open besides the counted sockets, as of the last count. */
  private other = 0;
  private pausedUntil = 0;
  private lastCount = 0;
  private counting = false;
  private timer: NodeJS.Timeout | null = null;
  /** What the current spell at the limit refused and closed, logged when it ends; null when not at the limit. */
  private spell: { refused: number; shed: number } | null = null;
  readonly reserve: number;

  /**
   * @param limit descriptors the process may open (0 = unknown: the guard does nothing)
   * @param reserve descriptors the business listeners leave free (at most a quarter of the limit)
   */
  constructor(
    readonly limit: number,
    reserve: number,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {
    this.reserve = Math.min(reserve, Math.floor(limit / 4));
  }

  get enabled(): boolean {
    return this.limit > 0 && this.reserve > 0;
  }

  /** Descriptors open, as far as the guard knows. */
  get open(): number {
    return this.other + this.sockets.size;
  }

  /** Takes the first count and starts counting now and then. */
  start(): void {
    if (!this.enabled || this.timer) return;
    try {
      const size = fs.statSync('/proc/self/fd').size;
      const open = size > 0 ? size : fs.readdirSync('/proc/self/fd').length - 1;
      this.other = Math.max(0, open - this.sockets.size);
    } catch {
      // Counted again by the first check.
    }
    this.lastCount = Date.now();
    this.timer = setInterval(() => this.check(), BUSY_COUNT_MS).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Counts a socket a listener just accepted; false when it was refused (and destroyed). */
  admit(socket: Socket, kind: SocketKind): boolean {
    if (!this.enabled) return true;
    const now = Date.now();
    const ceiling = kind === 'api' ? this.limit - Math.ceil(this.reserve / 4) : this.limit - this.reserve;
    const paused = now < this.pausedUntil;
    const full = this.open + 1 > ceiling;
    if (full || (kind === 'business' && paused)) {
      socket.destroy();
      this.metrics?.refused.inc({ reason: 'fd_limit' });
      // Once per pause: shedding walks every socket.
      if (!paused) this.atLimit(now);
      if (this.spell) this.spell.refused++;
      return false;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return true;
  }

  /** The business ceiling was reached: pause accepting and close the newest idle connections. */
  private atLimit(now: number): void {
    const starting = this.spell === null;
    this.spell ??= { refused: 0, shed: 0 };
    this.pausedUntil = now + PAUSE_MS;
    const shed = this.shed(this.limit - 2 * this.reserve);
    this.spell.shed += shed;
    if (starting) {
      this.log.warn('near the file descriptor limit: new connections are refused for a while and the newest idle ones were shed', {
        open: this.open,
        limit: this.limit,
        reserve: this.reserve,
        shed,
      });
    }
  }

  /**
   * Closes the newest sockets that have received nothing (a flood of idle connections is what fills
   * the table; clients that spoke, upgraded WebSockets included, are kept) until `target` are open.
   */
  private shed(target: number): number {
    let excess = this.open - target;
    if (excess <= 0) return 0;
    const newestFirst = [...this.sockets].reverse();
    let shed = 0;
    for (const socket of newestFirst) {
      if (excess <= 0) break;
      if (socket.destroyed || socket.bytesRead > 0) continue;
      socket.destroy();
      this.sockets.delete(socket);
      shed++;
      excess--;
    }
    if (shed > 0) this.metrics?.refused.inc({ reason: 'fd_shed' }, shed);
    return shed;
  }

  /** Counts the descriptors again when it is time, and ends or extends a spell at the limit. */
  private check(): void {
    const now = Date.now();
    if (this.spell && now >= this.pausedUntil) {
      if (this.open < this.limit - this.reserve) {
        this.log.info('accepting connections again after the file descriptor limit', { open: this.open, ...this.spell });
        this.spell = null;
      } else {
        this.atLimit(now);
      }
    }
    const busy = this.open > this.limit / 2;
    if (this.counting || now - this.lastCount < (busy ? BUSY_COUNT_MS : CALM_COUNT_MS) - 50) return;
    this.counting = true;
    this.lastCount = now;
    countOpenFds(this.limit, (open) => {
      this.counting = false;
      if (open !== null) this.counted(open);
    });
  }

  /** A count came: what is open besides the counted sockets, and whether that reaches the limit. */
  private counted(open: number): void {
    this.other = Math.max(0, open - this.sockets.size);
    const at = Date.now();
    if (this.open >= this.limit - this.reserve && at >= this.pausedUntil) this.atLimit(at);
  }
}
