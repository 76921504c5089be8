import Redis, { type Cluster, type RedisOptions } from 'ioredis';
import type { Logger } from '../log';
import { SubscriberLink, LINK_CONNECTION_OPTIONS, isUnaskedReply, type SubscriptionStats } from './subscriber-link';
import type { AuditOptions } from './subscription-audit';

/**
 * SSUBSCRIBE on a Redis Cluster: one subscriber connection per master serving subscribed channels,
 * placed by the slot map of the node's command client (`cluster`), which refreshes it periodically and
 * on MOVED. Each connection is a SubscriberLink, which (re)subscribes what it should carry; this class
 * only decides which master carries which channel. After a failover or a reshard, a channel moves to
 * its new master's link on the next refresh, and leaves the old one (unsubscribed there if it is still
 * up, never resubscribed if it is not).
 *
 * Why not ioredis's `shardedSubscribers` (5.11): while a killed master waits for its replica to be
 * promoted, its sharded subscriber ends, refreshes the slot map (which still names the dead master) and
 * reconnects at once, in a loop: about 30 connection attempts and slot-map queries per second per node
 * for the whole failover (measured in test/redis-cluster.test.ts's scenario). Here a lost connection
 * retries with backoff, and channels only move when the slot map says so.
 */
export class ShardedSubscriber {
  /** Subscriber links by node key (`host:port`). */
  private readonly links = new Map<string, SubscriberLink>();
  /** Every wanted channel with its slot and the node key it is placed on ('' = not yet placed). */
  private readonly channels = new Map<string, { slot: number; node: string }>();
  private readonly onRefresh = (): void => this.follow();

  constructor(
    private readonly cluster: Cluster,
    private readonly options: RedisOptions,
    private readonly onMessage: (channel: Buffer, message: Buffer) => void,
    /** Called for each new connection, to watch its state. */
    private readonly onConnection: (redis: Redis, node: string) => void,
    private readonly log: Logger,
    /** How the link of the master `node` is audited (null: not at all). */
    private readonly auditOf: (node: string) => AuditOptions | null = () => null,
  ) {
    cluster.on('refresh', this.onRefresh);
  }

  /**
   * SSUBSCRIBE on the channel's master; resolves once subscribed, or at once if that master is away or
   * the slot map is not known yet (the channel is subscribed when they are). Never rejects.
   */
  subscribe(channel: string): Promise<void> {
    const entry = this.channels.get(channel) ?? { slot: keySlot(channel), node: '' };
    this.channels.set(channel, entry);
    return this.place(channel, entry) ?? Promise.resolve();
  }

  unsubscribe(channel: string): Promise<void> {
    const entry = this.channels.get(channel);
    this.channels.delete(channel);
    const link = entry && this.links.get(entry.node);
    return link ? link.remove(channel) : Promise.resolve();
  }

  /** Every channel is placed and every link that carries channels is connected. */
  ready(): boolean {
    for (const entry of this.channels.values()) if (entry.node === '') return false;
    for (const link of this.links.values()) if (link.size > 0 && !link.ready()) return false;
    return true;
  }

  /** Summed over the links, with the channels not placed yet (wanted, and in no link). */
  stats(): SubscriptionStats {
    let unplaced = 0;
    for (const entry of this.channels.values()) if (entry.node === '') unplaced++;
    const sum: SubscriptionStats = { wanted: unplaced, unsynced: unplaced, queued: 0 };
    for (const link of this.links.values()) {
      const stats = link.stats();
      sum.wanted += stats.wanted;
      sum.unsynced += stats.unsynced;
      sum.queued += stats.queued;
    }
    return sum;
  }

  close(): void {
    this.cluster.off('refresh', this.onRefresh);
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }

  /** Places `channel` on the link of the master the slot map names, leaving its old one; null if it names none. */
  private place(channel: string, entry: { slot: number; node: string }): Promise<void> | null {
    const node = this.cluster.slots[entry.slot]?.[0];
    if (!node) return null;
    if (entry.node && entry.node !== node) void this.links.get(entry.node)?.remove(channel);
    entry.node = node;
    return this.link(node).add(channel);
  }

  /** After each slot-map refresh: moves channels whose slot changed master, drops unused connections. */
  private follow(): void {
    const moves = new Map<string, number>();
    for (const [channel, entry] of this.channels) {
      const from = entry.node;
      const to = this.cluster.slots[entry.slot]?.[0];
      if (!to || to === from) continue;
      void this.place(channel, entry);
      const route = `${from || '(unplaced)'} -> ${to}`;
      moves.set(route, (moves.get(route) ?? 0) + 1);
    }
    for (const [route, channels] of moves) {
      this.log.info('redis cluster: sharded channels subscribed on their new master', { route, channels });
    }
    for (const [node, link] of this.links) {
      if (link.size > 0) {
        // What a master refused (MOVED before this refresh) is tried again where the map now says.
        link.retry();
        continue;
      }
      // Quietly: this is not an outage.
      link.redis.removeAllListeners();
      link.redis.on('error', () => undefined);
      link.close();
      this.links.delete(node);
      this.log.debug('redis sharded subscriber closed: no channels on this master', { redis: node });
    }
  }

  private link(node: string): SubscriberLink {
    let link = this.links.get(node);
    if (link) return link;
    const at = node.lastIndexOf(':');
    const redis = new Redis({
      ...this.options,
      host: node.slice(0, at),
      port: Number(node.slice(at + 1)),
      ...LINK_CONNECTION_OPTIONS,
    });
    link = new SubscriberLink(redis, this.log, { slotOf: keySlot, node }, this.auditOf(node));
    redis.on('smessageBuffer', this.onMessage);
    // A channel answered MOVED, or the master dropped channels itself: the slot map is stale; the refresh moves them (see follow).
    redis.on('moved', () => this.cluster.refreshSlotsCache());
    redis.on('error', (error: Error) => {
      if (isUnaskedReply(error)) this.cluster.refreshSlotsCache();
    });
    this.links.set(node, link);
    this.onConnection(redis, node);
    return link;
  }
}

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** The Redis Cluster slot of a key or shard channel: CRC16 (XMODEM) of its hash tag or whole name, mod 16384. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff];
  return crc & 16383;
}
