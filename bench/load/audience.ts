import type { WebSocket } from 'ws';
import { Histogram, type HistogramData } from './histogram';
import { keepAlive, closeAll } from './connect';

/** What every audience reports of a step: its deliveries, the late ones, their latency, clients still open. */
export interface AudienceStats {
  delivered: number;
  /** Messages of an earlier step that arrived in this one (not counted as delivered). */
  late: number;
  latency: HistogramData;
  open: number;
}

/** Every load process's AudienceStats as one: counts added, latency histograms merged. */
export function mergeAudiences(all: readonly AudienceStats[]): { delivered: number; late: number; open: number; latency: Histogram } {
  const out = { delivered: 0, late: 0, open: 0, latency: new Histogram() };
  for (const stats of all) {
    out.delivered += stats.delivered;
    out.late += stats.late;
    out.open += stats.open;
    out.latency.add(stats.latency);
  }
  return out;
}

/**
 * The clients of one load process that receive and count messages (the barrage's viewers, the chat's
 * members): their step counters, latency, keepalive and close. Subclasses open the clients and say
 * what counts as a delivery.
 */
export abstract class Audience<C extends { ws: WebSocket }> {
  protected readonly clients: C[] = [];
  protected readonly latency = new Histogram();
  protected delivered = 0;
  protected late = 0;
  /** Messages due before this time (ms, monotonic) belong to an earlier step. */
  protected minT = 0;
  private keepalive: NodeJS.Timeout | null = null;

  /** Starts a step: counters to zero; messages due before `minT` are late from now on. */
  reset(minT: number): void {
    this.minT = minT;
    this.delivered = 0;
    this.late = 0;
    this.latency.reset();
  }

  count(): number {
    return this.delivered;
  }

  /** The step's figures: commonStats and what the subclass counts. */
  abstract stats(): AudienceStats;

  async close(): Promise<void> {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    await closeAll(this.clients.map((client) => client.ws));
    this.clients.length = 0;
  }

  /** The step's common figures, for the subclass's stats(). */
  protected commonStats(): AudienceStats {
    let open = 0;
    for (const client of this.clients) if (client.ws.readyState === 1) open++;
    return { delivered: this.delivered, late: this.late, latency: this.latency.toData(), open };
  }

  /** Seed clients ping as real ones do (see keepAlive); Socket.IO pings from the server. */
  protected startKeepalive(): void {
    this.keepalive ??= keepAlive(this.clients);
  }
}
