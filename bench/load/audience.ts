import type { WebSocket } from 'ws';
import { Histogram, type HistogramData } from './histogram';
import { keepAlive, closeAll, forEachLimit } from './connect';
import type { DialectName } from './dialects';

/** What every audience reports of a step: its deliveries, the late ones, their latency, clients still open. */
export interface AudienceStats {
  delivered: number;
  /** Messages of an earlier step that arrived in this one (not counted as delivered). */
  late: number;
  latency: HistogramData;
  open: number;
}

/** What every audience's open command takes: this load process's share of the clients. */
export interface OpenClients {
  /**
   * Endpoints of the target's nodes. Client i uses urls[floor(i / groups) % urls.length], `groups` being
   * the videos or rooms: each group's clients alternate between the nodes, so its traffic crosses the mesh.
   */
  urls: string[];
  dialect: DialectName;
  /** Global index of this process's first client, so groups and nodes spread the same over all processes. */
  firstIndex: number;
  count: number;
  addresses: string[];
  /** Clients opening at once. */
  concurrency: number;
  timeoutMs: number;
}

/** What an open command answers: clients that opened and were answered, per group (video, room). */
export interface OpenedClients {
  opened: number;
  failed: number;
  /** The first few failures. */
  errors: string[];
  perGroup: Record<number, number>;
  ms: number;
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

  /**
   * Opens the clients of `params`, `concurrency` at a time: `openOne` connects client `index` to `url`
   * from `localAddress`, greets the target and waits for its answer, and says which group it is in.
   */
  protected async openAll(params: OpenClients, groups: number,
    openOne: (index: number, url: string, localAddress: string) => Promise<{ client: C; group: number }>): Promise<OpenedClients> {
    const started = Date.now();
    const result: OpenedClients = { opened: 0, failed: 0, errors: [], perGroup: {}, ms: 0 };
    await forEachLimit(params.count, params.concurrency, async (i) => {
      const index = params.firstIndex + i;
      try {
        const { client, group } = await openOne(index, params.urls[Math.floor(index / groups) % params.urls.length], params.addresses[index % params.addresses.length]);
        this.clients.push(client);
        result.perGroup[group] = (result.perGroup[group] ?? 0) + 1;
        result.opened++;
      } catch (error) {
        result.failed++;
        if (result.errors.length < 5) result.errors.push((error as Error).message);
      }
    });
    if (params.dialect === 'seed') this.startKeepalive();
    result.ms = Date.now() - started;
    return result;
  }

  /** Seed clients ping as real ones do (see keepAlive); Socket.IO pings from the server. */
  protected startKeepalive(): void {
    this.keepalive ??= keepAlive(this.clients);
  }
}
