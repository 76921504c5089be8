import Redis, { Cluster, type RedisOptions } from 'ioredis';
import type { RedisMeshConfig } from '../config/schema';
import type { Logger } from '../log';
import { ShardedSubscriber } from './sharded-subscriber';
import { SubscriberLink, LINK_CONNECTION_OPTIONS, isUnaskedReply, type SubscriptionStats } from './subscriber-link';
import type { AuditOptions } from './subscription-audit';
import { monotonicMs } from '../wire/clock';

/**
 * The two Redis roles of a node: `commands` (publishes, registry keys) fails fast while Redis is away,
 * so callers get an error instead of a stall; the subscriber side (one connection, or one per master on
 * a cluster, each a SubscriberLink) keeps the set of channels it should carry, queues nothing while
 * away, and on every reconnect subscribes what is wanted then (on a cluster also moving channels to a
 * promoted master), so deliveries resume by themselves for the channels that have members by then.
 */
export interface MeshRedis {
  /** Keys and scripts; rejects at once while disconnected, and after `commandTimeout` if Redis is slow. */
  readonly commands: Redis | Cluster;
  /** PUBLISH (standalone) or SPUBLISH (cluster): how many subscriber connections received `message`. */
  publish(channel: string, message: Buffer): Promise<number>;
  /**
   * Wants the channel subscribed: SUBSCRIBE (standalone) or SSUBSCRIBE on its master (cluster).
   * Resolves once Redis has it, or at once while Redis is away (it is subscribed on reconnect, if still
   * wanted then); a Redis that does not answer keeps it pending. Never rejects.
   */
  subscribe(channel: string): Promise<void>;
  /** Wants the channel unsubscribed; resolves as `subscribe` does. */
  unsubscribe(channel: string): Promise<void>;
  /** The subscriber side's wanted channels and pending work. */
  subscriptions(): SubscriptionStats;
  /** Times the subscription audit found Redis not holding what the subscriber side sent, and repaired it (a running total). */
  repairs(): number;
  /** Both roles are connected. */
  ready(): boolean;
  /** Drops both connections without waiting for Redis. */
  close(): void;
}

/** What the link reports to its owner. */
export interface MeshRedisEvents {
  /** A message on a subscribed channel, both as Buffers. */
  message(channel: Buffer, message: Buffer): void;
  /** A role became ready (first connect or reconnect). */
  up(role: Role): void;
  /** A role failed to connect or lost its connection. */
  down(role: Role): void;
}

export type Role = 'commands' | 'subscriber';

/** Reconnect delays: 100 ms doubling up to 2 s, so a returning Redis is found within about 2 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
}

/** Rejects with `what timed out` if `promise` has not settled within `ms`. */
export function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `host:port` or `[v6]:port` (port 6379 if omitted). */
export function parseAddress(address: string): { host: string; port: number } {
  const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(address) ?? /^([^:]+)(?::(\d+))?$/.exec(address);
  if (!match) throw new Error(`invalid Redis address "${address}": expected host:port`);
  return { host: match[1], port: match[2] ? Number(match[2]) : 6379 };
}

/**
 * Opens the node's connections to a standalone Redis (`cluster: false`, the first address) or a Redis
 * Cluster (`cluster: true`, any addresses as seeds, sharded pub/sub). Connecting goes on in the
 * background with backoff; nothing here throws when Redis is unreachable. With `audit`, each
 * subscriber connection names itself `audit.name` and is audited every `config.auditInterval` seconds
 * (see SubscriptionAudit).
 */
export function connectMeshRedis(
  config: RedisMeshConfig,
  events: MeshRedisEvents,
  log: Logger,
  commandTimeout: number,
  audit: { name: string } | null = null,
): MeshRedis {
  const base: RedisOptions = {
    password: config.password || undefined,
    connectTimeout: Math.max(commandTimeout, 1000),
    keepAlive: 10_000,
    retryStrategy: reconnectDelay,
  };
  // Commands that cannot be written now fail now; in-flight ones fail when the connection drops.
  const failFast: RedisOptions = { commandTimeout, maxRetriesPerRequest: 0 };
  const onMessage = (channel: Buffer, message: Buffer): void => events.message(channel, message);
  let closed = false;
  const isClosed = (): boolean => closed;
  let repairs = 0;
  const auditOf = (commands: () => Redis | null): AuditOptions | null =>
    audit && { every: config.auditInterval * 1000, name: audit.name, commands, repaired: () => repairs++ };

  if (!config.cluster) {
    const address = parseAddress(config.addrs[0]);
    const commands = new Redis({
      ...base,
      ...failFast,
      ...address,
      db: config.db,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
    });
    const subscriber = new Redis({ ...base, ...address, db: config.db, ...LINK_CONNECTION_OPTIONS });
    const link = new SubscriberLink(subscriber, log, null, auditOf(() => commands));
    subscriber.on('messageBuffer', onMessage);
    watch(commands, 'commands', events, log, isClosed);
    watch(subscriber, 'subscriber', events, log, isClosed);
    return {
      commands,
      publish: (channel, message) =>
        bounded(whenReady(commands, () => commands.publish(channel, message)), commandTimeout, 'PUBLISH'),
      subscribe: (channel) => link.add(channel),
      unsubscribe: (channel) => link.remove(channel),
      subscriptions: () => link.stats(),
      repairs: () => repairs,
      ready: () => commands.status === 'ready' && link.ready(),
      close: () => {
        closed = true;
        commands.disconnect();
        link.close();
      },
    };
  }

  const seeds = config.addrs.map(parseAddress);
  const commands = new Cluster(seeds, {
    clusterRetryStrategy: reconnectDelay,
    // Failovers move slots: look at the slot map often, so sends and subscriptions follow a promoted replica quickly.
    slotsRefreshInterval: 2000,
    slotsRefreshTimeout: Math.max(commandTimeout, 1000),
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    redisOptions: { ...base, ...failFast },
  });
  const subscriber = new ShardedSubscriber(
    commands,
    base,
    onMessage,
    (redis, node) => watch(redis, 'subscriber', events, log, isClosed, node),
    log,
    // Each master's link is checked on the cluster client's own connection to that master.
    (node) => auditOf(() => commands.nodes('master').find((redis) => `${redis.options.host}:${redis.options.port}` === node) ?? null),
  );
  watch(commands, 'commands', events, log, isClosed);
  return {
    commands,
    publish: (channel, message) =>
      bounded(whenReady(commands, () => spublishFollowingMoves(commands, channel, message)), commandTimeout, 'SPUBLISH'),
    subscribe: (channel) => subscriber.subscribe(channel),
    unsubscribe: (channel) => subscriber.unsubscribe(channel),
    subscriptions: () => subscriber.stats(),
    repairs: () => repairs,
    ready: () => commands.status === 'ready' && subscriber.ready(),
    close: () => {
      closed = true;
      subscriber.close();
      commands.disconnect();
    },
  };
}

/** Attempts of a publish that Redis answers MOVED, each after a slot-map refresh. */
const PUBLISH_ATTEMPTS = 3;

/**
 * SPUBLISH, sent again after a slot-map refresh while Redis answers MOVED: a MOVED command did not run,
 * so nothing is delivered twice. ioredis follows MOVED itself, except in an automatic pipeline that also
 * held a command that succeeded: right after a reshard, a publish in the same tick as any other command
 * to the slot's old master failed with MOVED until the next periodic refresh (up to 2 s).
 */
async function spublishFollowingMoves(commands: Cluster, channel: string, message: Buffer): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await commands.spublish(channel, message)) as number;
    } catch (error) {
      if (attempt >= PUBLISH_ATTEMPTS || !(error as Error).message.startsWith('MOVED ')) throw error;
      await new Promise<void>((resolve) => commands.refreshSlotsCache(() => resolve()));
    }
  }
}

/** A command that was not sent: Redis was not connected. Other failures leave its fate unknown. */
export class NotSentError extends Error {}

/**
 * Bytes of commands the node may hold unsent on its Redis connections (Redis frozen, or too slow to
 * read them) before publishes, sends and calls fail at once. A frozen Redis keeps its connection open,
 * so without this every publish would be written on, each message held until Redis reads it: backends
 * publishing 1 MB messages grew the node by 500 MiB in 15 s, with no end while Redis stayed frozen.
 */
export const MAX_UNSENT_BYTES = 8 * 1024 * 1024;

/** Bytes written to `client`'s connections that the socket has not handed to the kernel yet. */
function unsentBytes(client: Redis | Cluster): number {
  if (client instanceof Cluster) return client.nodes('master').reduce((sum, node) => sum + unsentBytes(node), 0);
  return client.stream?.writableLength ?? 0;
}

/** Runs `command` if `client` is connected and reading; otherwise fails at once with a plain message. */
function whenReady<T>(client: Redis | Cluster, command: () => Promise<T>): Promise<T> {
  if (client.status !== 'ready') return Promise.reject(new NotSentError(`Redis is not connected (${client.status})`));
  const unsent = unsentBytes(client);
  if (unsent > MAX_UNSENT_BYTES) return Promise.reject(new NotSentError(`Redis is not reading: ${unsent} bytes of commands unsent`));
  // ioredis refuses, without writing it, a command for a connection that is going away.
  return command().catch((error: Error) => {
    throw /isn't writeable/.test(error.message) ? new NotSentError(error.message) : error;
  });
}

/** Logs each change between connected and disconnected once (not every retry) and reports it. */
function watch(
  client: Redis | Cluster,
  role: Role,
  events: MeshRedisEvents,
  log: Logger,
  closed: () => boolean,
  node?: string,
): void {
  let up = false;
  let errorLogged = false;
  /** When a master's dropping of shard channels was last logged (one line a second: a reshard sends one per channel). */
  let droppedLoggedAt = -Infinity;
  client.on('ready', () => {
    up = true;
    errorLogged = false;
    log.info('redis connected', { role, redis: node });
    events.up(role);
  });
  client.on('error', (error: Error) => {
    if (node !== undefined && isUnaskedReply(error)) {
      // The ordinary course of a reshard (see isUnaskedReply), not a fault of the connection.
      const now = monotonicMs();
      if (now - droppedLoggedAt >= 1000) {
        droppedLoggedAt = now;
        log.info('redis cluster: a master dropped shard channels of this node (their slot moved); following the slot map', { redis: node });
      }
      return;
    }
    // ioredis emits an error per failed attempt; the first of an outage says what is wrong.
    if (errorLogged) log.debug('redis error', { role, redis: node, error: error.message });
    else log.warn('redis error', { role, redis: node, error: error.message });
    errorLogged = true;
    if (!up) events.down(role);
  });
  client.on('close', () => {
    if (!up || closed()) return;
    up = false;
    log.warn('redis disconnected, reconnecting', { role, redis: node });
    events.down(role);
  });
}
