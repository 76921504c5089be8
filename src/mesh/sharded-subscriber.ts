import Redis, { type Cluster, type RedisOptions } from 'ioredis';
import type { Logger } from '../log';

/**
 * SSUBSCRIBE on a Redis Cluster: one subscriber connection per master serving subscribed channels,
 * placed by the slot map of the node's command client (`cluster`), which refreshes it periodically and
 * on MOVED. After a failover or a reshard, channels move to their new master's connection on the next
 * refresh; a master that merely restarts gets its channels back through ioredis's autoResubscribe.
 *
 * Why not ioredis's `shardedSubscribers` (5.11): while a killed master waits for its replica to be
 * promoted, its sharded subscriber ends, refreshes the slot map (which still names the dead master) and
 * reconnects at once, in a loop: about 30 connection attempts and slot-map queries per second per node
 * for the whole failover (measured in test/redis-cluster.test.ts's scenario). Here a lost connection
 * retries with backoff, and channels only move when the slot map says so.
 */
export class ShardedSubscriber {
  /** Subscriber connections by node key (`host:port`). */
  private readonly connections = new Map<string, Redis>();
  /** Every subscribed channel with its slot and the node key it is subscribed on ('' = not yet placed). */
  private readonly channels = new Map<string, { slot: number; node: string }>();
  private readonly onRefresh = (): void => this.follow();

  constructor(
    private readonly cluster: Cluster,
    private readonly options: RedisOptions,
    private readonly onMessage: (channel: Buffer, message: Buffer) => void,
    /** Called for each new connection, to watch its state. */
    private readonly onConnection: (redis: Redis, node: string) => void,
    private readonly log: Logger,
  ) {
    cluster.on('refresh', this.onRefresh);
  }

  /** SSUBSCRIBE on the channel's master; rejects (the channel stays wanted) if the slot map is not known yet. */
  subscribe(channel: string): Promise<unknown> {
    const entry = this.channels.get(channel) ?? { slot: keySlot(channel), node: '' };
    this.channels.set(channel, entry);
    return this.place(channel, entry) ?? Promise.reject(new Error('no slot map yet: subscribes once the cluster answers'));
  }

  unsubscribe(channel: string): Promise<unknown> {
    const entry = this.channels.get(channel);
    this.channels.delete(channel);
    const redis = entry && this.connections.get(entry.node);
    return redis ? redis.sunsubscribe(channel) : Promise.resolve();
  }

  /** Every connection that carries channels is connected. */
  ready(): boolean {
    const used = this.usedNodes();
    if (used.size === 0) return this.channels.size === 0;
    for (const node of used) if (this.connections.get(node)?.status !== 'ready') return false;
    for (const entry of this.channels.values()) if (entry.node === '') return false;
    return true;
  }

  close(): void {
    this.cluster.off('refresh', this.onRefresh);
    for (const redis of this.connections.values()) redis.disconnect();
    this.connections.clear();
  }

  /** Subscribes `channel` where the slot map says, leaving its old master; null if the slot map has no master for it. */
  private place(channel: string, entry: { slot: number; node: string }): Promise<unknown> | null {
    const node = this.cluster.slots[entry.slot]?.[0];
    if (!node) return null;
    // Leaving the old master: its connection (if it is still alive) stops carrying the channel.
    if (entry.node && entry.node !== node) this.connections.get(entry.node)?.sunsubscribe(channel).catch(() => undefined);
    entry.node = node;
    return this.connection(node).ssubscribe(channel);
  }

  /** After each slot-map refresh: moves channels whose slot changed master, drops unused connections. */
  private follow(): void {
    const moves = new Map<string, number>();
    for (const [channel, entry] of this.channels) {
      const from = entry.node;
      const to = this.cluster.slots[entry.slot]?.[0];
      if (!to || to === from) continue;
      this.place(channel, entry)?.catch((error: Error) => this.log.debug('ssubscribe failed', { channel, error: error.message }));
      const route = `${from || '(unplaced)'} -> ${to}`;
      moves.set(route, (moves.get(route) ?? 0) + 1);
    }
    for (const [route, channels] of moves) {
      this.log.info('redis cluster: sharded channels subscribed on their new master', { route, channels });
    }
    const used = this.usedNodes();
    for (const [node, redis] of this.connections) {
      if (used.has(node)) continue;
      // Quietly: this is not an outage.
      redis.removeAllListeners();
      redis.on('error', () => undefined);
      redis.disconnect();
      this.connections.delete(node);
      this.log.debug('redis sharded subscriber closed: no channels on this master', { redis: node });
    }
  }

  private usedNodes(): Set<string> {
    const used = new Set<string>();
    for (const entry of this.channels.values()) if (entry.node) used.add(entry.node);
    return used;
  }

  private connection(node: string): Redis {
    let redis = this.connections.get(node);
    if (redis) return redis;
    const at = node.lastIndexOf(':');
    redis = new Redis({
      ...this.options,
      host: node.slice(0, at),
      port: Number(node.slice(at + 1)),
      // (Un)subscribes wait while disconnected and go out in order on reconnect, after the resubscribe.
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResubscribe: true,
    });
    redis.on('smessageBuffer', this.onMessage);
    // A channel answered MOVED: our slot map is stale; the refresh moves it (see follow).
    redis.on('moved', () => this.cluster.refreshSlotsCache());
    this.connections.set(node, redis);
    this.onConnection(redis, node);
    return redis;
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
