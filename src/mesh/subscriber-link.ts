import type Redis from 'ioredis';
import type { Logger } from '../log';
import { SubscriptionAudit, type AuditOptions } from './subscription-audit';

/** Channels named in one SUBSCRIBE or UNSUBSCRIBE command, so a resubscribe of many is a few bounded commands. */
export const CHANNELS_PER_COMMAND = 500;

/** Channels in commands Redis has not answered yet, at most; further changes wait, merged, until answers come. */
export const MAX_CHANNELS_IN_FLIGHT = 2000;

/**
 * Whether ioredis reports a reply no command asked for. On a cluster's subscriber connection, that is
 * Redis (7 and later) unsubscribing the shard channels of a slot the master just lost: an SUNSUBSCRIBE
 * it sends unasked, which ioredis, expecting none, reports as this error (after matching it to the
 * next command waiting, if any). The node then follows the slot map at once instead of at the next
 * periodic refresh, up to 2 s in which those channels, its own inbox among them, receive nothing.
 */
export function isUnaskedReply(error: Error): boolean {
  return error.message.startsWith('Command queue state error');
}

/**
 * The ioredis options a link's connection must have: nothing queues while disconnected and nothing
 * resubscribes by itself, because the link does both.
 */
export const LINK_CONNECTION_OPTIONS = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResubscribe: false,
  autoResendUnfulfilledCommands: false,
} as const;

/** What a subscriber connection holds, for operators and tests. */
export interface SubscriptionStats {
  /** Channels the node wants subscribed (its channels with local members, and its inbox). */
  wanted: number;
  /**
   * Channels whose subscription in Redis may differ from what is wanted: not sent yet, sent and
   * unanswered, or refused (retried later); while the connection is away, every wanted channel.
   */
  unsynced: number;
  /** Commands written to Redis and not answered yet (the client's command queue). */
  queued: number;
}

/** One (un)subscribe command on its way: what it changes, and on which connection (epoch) it went. */
interface Sent {
  channels: string[];
  subscribe: boolean;
  epoch: number;
}

const RESOLVED = Promise.resolve();

/**
 * One subscriber connection and the channels it should carry: the one place that subscribes,
 * unsubscribes, and resubscribes after a reconnect. Callers only change the wanted set; the link
 * brings Redis to it. While the connection is away nothing is queued per call: a change updates the
 * wanted set (bounded by the channels themselves, however often viewers come and go), and when the
 * connection is ready again the link subscribes everything wanted in commands of at most
 * CHANNELS_PER_COMMAND channels. Channels left during the outage are simply not resubscribed.
 *
 * While connected, changes made in one tick go out together, at most MAX_CHANNELS_IN_FLIGHT channels
 * unanswered at a time, so a Redis that stops reading (frozen, connection still open) holds the node's
 * pending changes to one entry per channel too; a channel that came and went meanwhile (wanted again as
 * Redis has it) leaves no entry, so what waits is bounded by the channels wanted and subscribed, not by
 * every channel viewers touched.
 */
export class SubscriberLink {
  private readonly wanted = new Set<string>();
  /** What Redis has, as far as the commands sent on this connection say (cleared when it drops). */
  private readonly server = new Set<string>();
  /** Channels to compare between `wanted` and `server` on the next sync. */
  private readonly dirty = new Set<string>();
  /** Subscribes Redis refused (MOVED on a cluster); retried when the owner says the slot map may have changed. */
  private readonly failed = new Set<string>();
  /** Commands in flight, in the order sent (Redis answers them in that order). */
  private readonly sent: Sent[] = [];
  /** Channel names in `sent`, counted with repeats. */
  private inFlight = 0;
  /** How many commands in `sent` name each channel: its state in Redis is settled when none does. */
  private readonly flying = new Map<string, number>();
  /** Callers waiting for a channel to reach Redis: one promise per channel, however many calls. */
  private readonly waiters = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  /** Connected: changes go out as they are made (set on ioredis's `ready`, cleared on `close`). */
  private live = false;
  /** The connection failed or dropped and has not come back: changes apply on the reconnect. */
  private down = false;
  /** It was live once: the next `ready` is a reconnect, worth a log line. */
  private wasLive = false;
  private epoch = 0;
  private scheduled = false;
  /** Bumped whenever what Redis should hold may change (a command sent, the connection reset): the audit's mark. */
  private changes = 0;
  private readonly audit: SubscriptionAudit | null;
  /** ioredis left subscriber mode on an unasked reply while Redis may still hold channels here: subscribe them again once settled. */
  private resyncWhenSettled = false;

  /**
   * `redis` must be made with LINK_CONNECTION_OPTIONS. `sharded` uses
   * SSUBSCRIBE/SUNSUBSCRIBE, one slot per command (`slotOf`). `audit`: checks now and then that Redis
   * holds what was sent (SubscriptionAudit); none if absent or its `every` is 0.
   */
  constructor(
    readonly redis: Redis,
    private readonly log: Logger,
    private readonly sharded: { slotOf: (channel: string) => number; node: string } | null = null,
    audit: AuditOptions | null = null,
  ) {
    this.audit = audit && audit.every > 0 ? new SubscriptionAudit(this, audit, sharded ? 'ssub' : 'sub', log, sharded?.node) : null;
    redis.on('ready', () => this.onReady());
    redis.on('moved', () => this.onMoved());
    redis.on('close', () => this.onClose());
    redis.on('error', (error: Error) => {
      if (isUnaskedReply(error)) this.onUnaskedReply();
    });
  }

  /**
   * Wants `channel` subscribed. Resolves once Redis has it, or at once while the connection is away
   * (the channel is subscribed when it comes back). Never rejects.
   */
  add(channel: string): Promise<void> {
    this.wanted.add(channel);
    return this.changed(channel);
  }

  /** Wants `channel` unsubscribed; resolves as `add` does. */
  remove(channel: string): Promise<void> {
    this.wanted.delete(channel);
    return this.changed(channel);
  }

  /** How many channels this connection should carry. */
  get size(): number {
    return this.wanted.size;
  }

  /** Connected; changes go out as they are made. */
  ready(): boolean {
    return this.live;
  }

  /** Subscribes again the channels Redis refused, after the slot map may have moved them. */
  retry(): void {
    if (!this.live || this.failed.size === 0) return;
    for (const channel of this.failed) this.dirty.add(channel);
    this.failed.clear();
    this.schedule();
  }

  stats(): SubscriptionStats {
    // Away, Redis holds nothing of this connection's: all that is wanted is to be subscribed on its return.
    const unsynced = this.live ? this.dirty.size + this.inFlight + this.failed.size : this.wanted.size;
    return { wanted: this.wanted.size, unsynced, queued: this.redis.commandQueue.length };
  }

  /**
   * For the audit: the channels Redis should hold for this connection (what the commands sent say) and
   * a mark of that state; null while connecting, or while commands are unanswered or changes unsent.
   */
  auditPoint(): { expected: number; mark: number } | null {
    if (!this.live || this.sent.length > 0 || this.dirty.size > 0) return null;
    return { expected: this.server.size, mark: this.changes };
  }

  /**
   * For the audit, which saw Redis hold fewer channels than sent: subscribes every wanted channel again
   * on this connection (Redis answers those it holds without change), as after a reconnect. Called
   * while settled (`auditPoint` not null), so no answer on its way still counts on `server`.
   */
  resubscribe(): void {
    if (!this.live) return;
    this.server.clear();
    this.failed.clear();
    for (const channel of this.wanted) this.dirty.add(channel);
    this.sync();
  }

  /** Drops the connection for good and releases every waiting caller. */
  close(): void {
    this.audit?.stop();
    this.redis.disconnect();
    this.reset(true);
    this.down = true;
  }

  private changed(channel: string): Promise<void> {
    if (this.down) return RESOLVED;
    // Whatever Redis refused of this channel before, this change decides anew.
    this.failed.delete(channel);
    const want = this.wanted.has(channel);
    if (this.live) {
      if (want !== this.server.has(channel)) {
        this.dirty.add(channel);
        this.schedule();
        return this.waiter(channel);
      }
      // Back to what Redis has, or will have once the commands on their way are answered: nothing to send.
      this.dirty.delete(channel);
      if (this.flying.has(channel)) return this.waiter(channel);
    } else if (want) {
      // Not yet connected the first time: `onReady` subscribes everything wanted, then answers.
      return this.waiter(channel);
    }
    // Redis has what is wanted of this channel (a channel not wanted before the first connect: nothing).
    this.settle(channel);
    return RESOLVED;
  }

  private waiter(channel: string): Promise<void> {
    let waiter = this.waiters.get(channel);
    if (!waiter) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      waiter = { promise, resolve };
      this.waiters.set(channel, waiter);
    }
    return waiter.promise;
  }

  private settle(channel: string): void {
    const waiter = this.waiters.get(channel);
    if (!waiter) return;
    this.waiters.delete(channel);
    waiter.resolve();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Changes made in the same tick (a viewer joining ten channels) share commands.
    queueMicrotask(() => {
      this.scheduled = false;
      this.sync();
    });
  }

  /** Sends what differs between `wanted` and `server`, as far as the in-flight bound allows. */
  private sync(): void {
    if (!this.live || this.redis.status !== 'ready') return;
    const batches = new Map<string, string[]>();
    for (const channel of this.dirty) {
      const want = this.wanted.has(channel);
      if (want === this.server.has(channel)) {
        this.dirty.delete(channel);
        if (!this.flying.has(channel)) this.settle(channel);
        continue;
      }
      if (this.inFlight >= MAX_CHANNELS_IN_FLIGHT) break;
      this.dirty.delete(channel);
      if (want) this.server.add(channel);
      else this.server.delete(channel);
      this.inFlight++;
      this.flying.set(channel, (this.flying.get(channel) ?? 0) + 1);
      const key = `${want ? '+' : '-'}${this.sharded ? this.sharded.slotOf(channel) : ''}`;
      let batch = batches.get(key);
      if (!batch) batches.set(key, (batch = []));
      batch.push(channel);
      if (batch.length >= CHANNELS_PER_COMMAND) {
        this.send(batch, want);
        batches.delete(key);
      }
    }
    for (const [key, batch] of batches) this.send(batch, key.startsWith('+'));
  }

  private send(channels: string[], subscribe: boolean): void {
    this.changes++;
    const record: Sent = { channels, subscribe, epoch: this.epoch };
    this.sent.push(record);
    const redis = this.redis;
    const command = this.sharded
      ? subscribe ? redis.ssubscribe(...channels) : redis.sunsubscribe(...channels)
      : subscribe ? redis.subscribe(...channels) : redis.unsubscribe(...channels);
    command.then(
      () => this.answered(record, null),
      (error: Error) => this.answered(record, error),
    );
  }

  private answered(record: Sent, error: Error | null): void {
    // Sent on a connection that has dropped since: the reconnect resubscribed from `wanted`.
    if (record.epoch !== this.epoch) return;
    const at = this.sent.indexOf(record);
    if (at < 0) return;
    // Redis answers in order, so unsettled commands before this one got their answer already, one that
    // `onMoved` could not place included. They count as refused.
    for (const lost of this.sent.splice(0, at)) this.release(lost, new Error('no answer (MOVED)'));
    this.sent.shift();
    this.release(record, error);
    if (this.resyncWhenSettled && this.sent.length === 0) this.resync();
    else if (this.dirty.size > 0) this.sync();
  }

  /**
   * An unasked SUNSUBSCRIBE whose count was 0 makes ioredis leave subscriber mode, even when it took
   * the place of an SSUBSCRIBE's answer: Redis then holds that channel for this connection, but
   * ioredis drops its messages as replies nobody asked for, and the audit, which counts channels,
   * finds nothing wrong. Subscribing the wanted channels again puts ioredis back in subscriber mode.
   */
  private onUnaskedReply(): void {
    if (!this.live || this.redis.condition?.subscriber) return;
    this.resyncWhenSettled = true;
    if (this.sent.length === 0) this.resync();
  }

  /** Sends SSUBSCRIBE (or SUBSCRIBE) again for every wanted channel; unsubscribes not sent yet stay as they are. */
  private resync(): void {
    this.resyncWhenSettled = false;
    for (const channel of this.wanted) {
      this.server.delete(channel);
      this.dirty.add(channel);
    }
    this.sync();
  }

  /**
   * ioredis drops an SSUBSCRIBE answered MOVED without settling it, emitting `moved` as it reads the
   * answer. Waiting for a later answer to notice would hold its channels in the in-flight bound, and
   * forever if every command in flight was refused (a burst of joins on slots that just moved): the
   * link would send nothing more. The commands still in ioredis's queue are the newest sent, so the
   * refused one is the record just before them; earlier ones are answered, their callbacks pending.
   */
  private onMoved(): void {
    const at = this.sent.length - this.redis.commandQueue.length - 1;
    // Not an SSUBSCRIBE there: the queue is not as sent (Redis pushed unasked replies); a later answer tells.
    if (at < 0 || !this.sent[at].subscribe) return;
    const [record] = this.sent.splice(at, 1);
    this.release(record, new Error('MOVED'));
    if (this.dirty.size > 0) this.schedule();
  }

  private release(record: Sent, error: Error | null): void {
    this.inFlight -= record.channels.length;
    for (const channel of record.channels) {
      const commands = (this.flying.get(channel) ?? 1) - 1;
      if (commands > 0) this.flying.set(channel, commands);
      else this.flying.delete(channel);
    }
    if (error) {
      // MOVED is the ordinary course of a slot move (one command per slot, each node): the owner logs
      // where the channels went; anything else is worth a warning.
      const log = error.message.startsWith('MOVED') ? this.log.debug : this.log.warn;
      log.call(this.log, `redis ${record.subscribe ? '' : 'un'}subscribe refused`, {
        redis: this.sharded?.node,
        channels: record.channels.length,
        error: error.message,
      });
      for (const channel of record.channels) {
        // A later command on this channel, on its way or still to send, decides its state.
        if (this.dirty.has(channel) || this.flying.has(channel)) continue;
        // Not subscribed after all; a refused unsubscribe leaves nothing worth retrying.
        this.server.delete(channel);
        if (record.subscribe && this.wanted.has(channel)) this.failed.add(channel);
      }
    }
    for (const channel of record.channels) if (!this.dirty.has(channel) && !this.flying.has(channel)) this.settle(channel);
  }

  private onReady(): void {
    this.reset(false);
    this.live = true;
    this.down = false;
    for (const channel of this.wanted) this.dirty.add(channel);
    // Callers that waited through the first connect get their answer from the sync.
    for (const channel of this.waiters.keys()) this.dirty.add(channel);
    if (this.wasLive) this.log.info('redis subscriber back, resubscribing channels', { redis: this.sharded?.node, channels: this.wanted.size });
    this.wasLive = true;
    // Before anything is subscribed: afterwards the connection cannot ask Redis for its id.
    this.audit?.connected();
    this.sync();
  }

  private onClose(): void {
    this.reset(true);
    this.down = true;
  }

  /** Forgets the connection's state (its subscriptions ended with it), and answers waiting callers if `release`. */
  private reset(release: boolean): void {
    this.live = false;
    this.epoch++;
    this.changes++;
    this.server.clear();
    this.dirty.clear();
    this.failed.clear();
    this.sent.length = 0;
    this.inFlight = 0;
    this.flying.clear();
    if (!release) return;
    for (const waiter of this.waiters.values()) waiter.resolve();
    this.waiters.clear();
  }
}
