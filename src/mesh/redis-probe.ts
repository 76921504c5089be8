import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import type { Logger } from '../log';
import { bounded } from './redis-connections';

/** A TIME answer slower than this says little about the clock: its offset is not taken. */
const MAX_CLOCK_RTT_MS = 200;

/**
 * Asks Redis for its TIME every `every` ms, off the publish path, for two things:
 * - whether Redis answers: a node whose Redis is connected but frozen (overloaded, stopped, a network
 *   that drops packets) is not ready, so `/readyz` answers 503 while it lasts;
 * - the mesh clock: Redis's clock as this node reads it, so that every node of the mesh measures
 *   request deadlines against one clock, whatever their own clocks say.
 * Until Redis has answered quickly once, the mesh clock is this node's clock.
 */
export class RedisProbe {
  private ok = true;
  private offset = 0;
  private inFlight = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly every: number,
    private readonly timeout: number,
    private readonly log: Logger,
  ) {}

  /** Whether Redis answered the last probe in time (true before the first one). */
  get answering(): boolean {
    return this.ok;
  }

  /** Milliseconds since the epoch by Redis's clock (by this node's until Redis has answered). */
  now(): number {
    return Date.now() + this.offset;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.probe(), this.every);
    this.timer.unref();
    void this.probe();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async probe(): Promise<void> {
    // A probe still waiting is an answer already: Redis is slow. It will time out by itself.
    if (this.inFlight || this.redis.status !== 'ready') return;
    this.inFlight = true;
    const sent = Date.now();
    try {
      const [seconds, micros] = await bounded(this.redis.time(), this.timeout, 'TIME');
      const rtt = Date.now() - sent;
      if (rtt <= MAX_CLOCK_RTT_MS) this.offset = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - (sent + rtt / 2);
      if (!this.ok) this.log.info('mesh: redis answers again', { after_ms: rtt });
      this.ok = true;
    } catch (error) {
      if (this.ok) this.log.warn('mesh: redis does not answer; the node is not ready until it does', { error: (error as Error).message });
      this.ok = false;
    } finally {
      this.inFlight = false;
    }
  }
}
