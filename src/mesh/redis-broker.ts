import { randomInt } from 'node:crypto';
import type { RedisMeshConfig } from '../config/schema';
import type { LogFields, Logger } from '../log';
import type { Broker, ConnFunction, CountResult, LocalDelivery, NodeInfo, PublishResult } from './broker';
import { decode, encodeCall, encodeCount, encodePublish, encodeReply, encodeSend, Kind, type ReplyEntry } from './envelope';
import { MAX_NODE_NUMBER, newNodeId, nodeNumberOf } from './ids';
import { NodeRegistry } from './node-registry';
import { bounded, connectMeshRedis, NotSentError, type MeshRedis, type Role } from './redis-connections';
import type { SubscriptionStats } from './subscriber-link';
import { RedisProbe } from './redis-probe';
import { whenSettled } from '../wire/maybe-promise';

/** Timings of the Redis broker, in milliseconds. */
export interface RedisBrokerOptions {
  /**
   * How long a publish or send waits for the answers of the nodes that received it, and its deadline:
   * a node that gets the request more than this after it was made drops it (and answers f=1). A node
   * that stays silent adds nothing to `s` and one to `f`, and is logged. Default 2000.
   */
  replyTimeout: number;
  /** How long one Redis command (PUBLISH, a registry call, a (un)subscribe acknowledgement) may take. Default 1000. */
  commandTimeout: number;
  /** Registry heartbeat, and how often Redis is probed for readiness (RedisProbe). Default 1000. */
  heartbeat: number;
  /** A node that stops heartbeating leaves the node list after this. Default 5000. */
  ttl: number;
  /**
   * How long `start` waits for Redis. Past it, or as soon as Redis refuses the connection, the node
   * starts unregistered with a provisional node number and keeps retrying in the background. Default 3000.
   */
  startTimeout: number;
}

export const DEFAULT_REDIS_BROKER_OPTIONS: Readonly<RedisBrokerOptions> = {
  replyTimeout: 2000,
  commandTimeout: 1000,
  heartbeat: 1000,
  ttl: 5000,
  startTimeout: 3000,
};

/**
 * A request whose PUBLISH failed after it may have reached Redis: its message is Redis's with what may
 * still happen (`outcome`); publish words it its own way from the two.
 */
class OutcomeUnknownError extends Error {
  constructor(readonly reason: Error, readonly outcome: string) {
    super(`${reason.message} (outcome unknown: ${outcome})`, { cause: reason });
  }
}

/**
 * The broker of a mesh of nodes sharing one Redis (standalone: PUBLISH/SUBSCRIBE; Redis Cluster:
 * SPUBLISH/SSUBSCRIBE, so a channel's traffic stays on its shard).
 *
 * Channels: mesh channel `c` is Redis channel `<prefix>ch:<c>`, subscribed while this node has local
 * subscribers of `c`; each node also listens on its inbox `<prefix>node:<id>` for sends and answers.
 * A publish carries an envelope (see envelope.ts) with the origin node and a request number. PUBLISH
 * tells how many nodes received it; each of them delivers locally and answers its `{s, f}` on the
 * origin's inbox, and the origin sums the answers, so counts are exact across the mesh. The origin
 * handles its own copy like any other node (without the answer round trip), which keeps one order for
 * local and remote publishes.
 */
export class RedisBroker implements Broker {
  readonly nodeId = newNodeId();
  private readonly options: RedisBrokerOptions;
  private readonly log: Logger;
  private readonly channelPrefix: Buffer;
  private readonly inbox: string;
  private readonly replies: PendingReplies;
  /** Answers to other nodes, sent together once per tick. */
  private readonly outbox = new Map<string, ReplyEntry[]>();
  private flushScheduled = false;
  private nextRequest = 0;
  private local: LocalDelivery | null = null;
  private link: MeshRedis | null = null;
  private registry: NodeRegistry | null = null;
  private probe: RedisProbe | null = null;
  /** Requests from other nodes dropped because they arrived after their deadline. */
  private late = 0;
  private lateLoggedAt = 0;
  private onDown: (() => void) | null = null;
  private left = false;

  constructor(
    private readonly config: RedisMeshConfig,
    private readonly apiAddress: string,
    log: Logger,
    options: Partial<RedisBrokerOptions> = {},
  ) {
    this.options = { ...DEFAULT_REDIS_BROKER_OPTIONS, ...options };
    this.log = log.child({ node: this.nodeId });
    this.channelPrefix = Buffer.from(`${config.prefix}ch:`);
    this.inbox = this.inboxOf(this.nodeId);
    this.replies = new PendingReplies(this.options.replyTimeout, this.log);
  }

  get nodeNumber(): number {
    return this.registry?.number ?? -1;
  }

  /** Connects, subscribes the inbox and registers; resolves within `startTimeout` even if Redis is away. */
  async start(local: LocalDelivery): Promise<void> {
    this.local = local;
    const { commandTimeout, startTimeout, heartbeat, ttl } = this.options;
    const addrs = this.config.addrs.join(',');
    this.log.info(`mesh: redis broker starting (${this.config.cluster ? 'cluster, sharded pub/sub' : 'standalone'})`, { addrs });
    const link = connectMeshRedis(
      this.config,
      {
        message: (channel, message) => this.receive(channel, message),
        up: (role) => this.up(role),
        down: () => this.onDown?.(),
      },
      this.log,
      commandTimeout,
      { name: `connmix-sub-${this.nodeId}` },
    );
    this.link = link;
    const self = { id: this.nodeId, api_server: this.apiAddress };
    this.registry = new NodeRegistry(link.commands, this.config.prefix, self, { heartbeat, ttl }, this.log);
    this.registry.start();
    this.probe = new RedisProbe(link.commands, heartbeat, commandTimeout, this.log);
    this.probe.start();
    const unreachable = new Promise<void>((resolve) => (this.onDown = resolve));
    const inbox = bounded(link.subscribe(this.inbox), startTimeout, 'inbox subscribe').catch(() => undefined);
    await Promise.race([Promise.all([this.registry.whenRegistered(startTimeout), inbox]), unreachable]);
    this.onDown = null;
    if (!this.registry.isRegistered) this.registry.assume(randomInt(MAX_NODE_NUMBER + 1));
  }

  subscribe(channel: string): Promise<void> {
    return this.confirm(channel, 'subscribe', (link, key) => link.subscribe(key));
  }

  unsubscribe(channel: string): Promise<void> {
    return this.confirm(channel, 'unsubscribe', (link, key) => link.unsubscribe(key));
  }

  /** The subscriber side's wanted channels (with the inbox) and its pending work; zeros before `start`. */
  subscriptions(): SubscriptionStats {
    return this.link?.subscriptions() ?? { wanted: 0, unsynced: 0, queued: 0 };
  }

  /**
   * Delivers to this node's subscribers at once, then to the other nodes through Redis: so a publish
   * and a send that follow each other from one caller reach a local client in that order, and local
   * viewers do not wait for a Redis round trip. This node's own copy coming back from Redis is skipped.
   */
  async publish(channel: string, payload: Buffer, binary: boolean): Promise<PublishResult> {
    this.started();
    const here = this.local?.deliver(channel, payload, binary) ?? { s: 0, f: 0 };
    const encode = (request: number, deadline: number): Buffer => encodePublish(this.nodeId, request, binary, payload, deadline);
    let there: PublishResult;
    try {
      there = await this.ask(this.channelKey(channel), encode, { op: 'publish', channel }, this.unknownOutcome());
    } catch (error) {
      const counts = `s=${here.s}, f=${here.f}`;
      if (error instanceof OutcomeUnknownError) {
        throw new Error(`${error.reason.message} (delivered on this node: ${counts}; on other nodes unknown: ${error.outcome})`, { cause: error });
      }
      throw new Error(`${(error as Error).message} (delivered on this node only: ${counts})`, { cause: error });
    }
    return { s: here.s + there.s, f: here.f + there.f };
  }

  /**
   * Counts the channel's subscribers over the mesh with one request on the channel itself: only the nodes
   * that hold subscribers of it are subscribed in Redis, so only they receive it, and each answers its
   * local count. A node that died has lost its Redis connection and with it its subscriptions, so it is
   * no longer asked; a node that is alive but silent is reported in `f`. No key is read or scanned.
   */
  async count(channel: string): Promise<CountResult> {
    this.started();
    const here = this.local?.count(channel) ?? 0;
    const encode = (request: number): Buffer => encodeCount(this.nodeId, request);
    // A count changes nothing, so a failed PUBLISH leaves nothing unknown to report.
    const there = await this.ask(this.channelKey(channel), encode, { op: 'count', channel }, null);
    return { n: here + there.s, f: there.f };
  }

  /** What a caller can know of a request whose PUBLISH failed after it may have reached Redis. */
  private unknownOutcome(): string {
    return `a node delivers it only if it gets it within ${this.options.replyTimeout} ms, later copies are dropped`;
  }

  async send(clientId: string, payload: Buffer, binary: boolean): Promise<boolean> {
    this.started();
    const number = nodeNumberOf(clientId);
    if (number < 0) return false;
    if (number === this.nodeNumber) return this.local?.deliverTo(clientId, payload, binary) ?? false;
    const owner = await this.ownerOf(number);
    if (!owner) return false;
    const encode = (request: number, deadline: number): Buffer => encodeSend(this.nodeId, request, clientId, binary, payload, deadline);
    const { s } = await this.ask(this.inboxOf(owner), encode, { op: 'send', client_id: clientId, owner }, this.unknownOutcome());
    return s > 0;
  }

  async call(clientId: string, fn: ConnFunction, args: unknown[]): Promise<string | null> {
    this.started();
    const gone = `client ${clientId} not found or gone`;
    const number = nodeNumberOf(clientId);
    if (number < 0) return gone;
    if (number === this.nodeNumber) return this.local ? this.local.callOn(clientId, fn, args) : gone;
    const owner = await this.ownerOf(number);
    if (!owner) return gone;
    const encode = (request: number, deadline: number): Buffer => encodeCall(this.nodeId, request, clientId, fn, args, deadline);
    const outcome = `the call runs only if the client's node gets it within ${this.options.replyTimeout} ms`;
    const { s } = await this.ask(this.inboxOf(owner), encode, { op: 'conn.call', client_id: clientId, owner }, outcome);
    return s > 0 ? null : `${fn} failed on node ${owner} (client gone or invalid arguments)`;
  }

  /** The id of the live node holding node number `number`, or null. */
  private ownerOf(number: number): Promise<string | null> {
    return bounded((this.registry as NodeRegistry).ownerOf(number), this.options.commandTimeout, 'node lookup');
  }

  async nodes(): Promise<NodeInfo[]> {
    this.started();
    return bounded((this.registry as NodeRegistry).list(), this.options.commandTimeout, 'node list');
  }

  /** Connected, registered, and Redis answered its last probe in time. */
  ready(): boolean {
    return !!this.link?.ready() && !!this.registry?.isRegistered && !!this.probe?.answering;
  }

  /** Requests from other nodes dropped so far because they arrived after their deadline. */
  get expired(): number {
    return this.late;
  }

  /** Times the subscription audit repaired a subscriber connection so far (0 before `start`). */
  get subscriptionRepairs(): number {
    return this.link?.repairs() ?? 0;
  }

  /** Deregisters (so the node leaves the list at once), answers pending requests, closes connections. */
  async leave(): Promise<void> {
    const registry = this.registry;
    if (!registry || this.left) return;
    this.left = true;
    await bounded(registry.stop(), this.options.commandTimeout, 'deregister').catch((error: Error) =>
      this.log.warn('node not deregistered; it leaves the list when its TTL runs out', { error: error.message }),
    );
  }

  async stop(): Promise<void> {
    const { link, registry } = this;
    if (!link || !registry) return;
    await this.leave();
    this.probe?.stop();
    this.link = null;
    this.local = null;
    this.replies.closeAll();
    link.close();
    this.log.info('mesh: redis broker stopped');
  }

  private started(): MeshRedis {
    if (!this.link) throw new Error('redis broker not started');
    return this.link;
  }

  private channelKey(channel: string): string {
    return `${this.config.prefix}ch:${channel}`;
  }

  private inboxOf(nodeId: string): string {
    return `${this.config.prefix}node:${nodeId}`;
  }

  /**
   * Publishes a request envelope on `redisChannel` and sums the answers of the nodes that received it.
   * The envelope's deadline is `replyTimeout` from now on the mesh clock, and the answers are awaited
   * at least that long, so a node that has not answered by then will drop its copy if it gets it later.
   * Rejects if Redis did not take the PUBLISH: with a NotSentError if it was never sent; otherwise, when
   * the caller says what may still happen (`outcome`), with an OutcomeUnknownError, else with Redis's error.
   */
  private async ask(
    redisChannel: string,
    encode: (request: number, deadline: number) => Buffer,
    context: LogFields,
    outcome: string | null,
  ): Promise<PublishResult> {
    const link = this.started();
    this.nextRequest = (this.nextRequest + 1) >>> 0;
    const request = this.nextRequest;
    this.replies.open(request);
    let receivers: number;
    try {
      receivers = await link.publish(redisChannel, encode(request, this.meshNow() + this.options.replyTimeout));
    } catch (error) {
      this.replies.cancel(request);
      if (error instanceof NotSentError || outcome === null) throw error;
      throw new OutcomeUnknownError(error as Error, outcome);
    }
    return this.replies.wait(request, receivers, context);
  }

  /**
   * Changes the channel's wanted state on the subscriber side, which brings Redis to the last state
   * asked (see SubscriberLink), and waits at most `commandTimeout` for Redis to confirm it: while Redis
   * is away it answers at once (the change applies on reconnect), and a Redis that does not answer does
   * not stall the hub's callers (a connection's Lua hooks). Never rejects.
   */
  private confirm(channel: string, what: string, op: (link: MeshRedis, key: string) => Promise<void>): Promise<void> {
    const link = this.link;
    // Connections closing while the node stops unsubscribe after the broker is gone: nothing to do.
    if (!link) return Promise.resolve();
    return bounded(op(link, this.channelKey(channel)), this.options.commandTimeout, what).then(
      () => this.log.debug(`mesh ${what}`, { channel }),
      (error: Error) => this.log.warn(`mesh ${what} not confirmed yet; it applies when Redis answers`, { channel, error: error.message }),
    );
  }

  /** The mesh clock (Redis's), against which request deadlines are set and checked. */
  private meshNow(): number {
    return this.probe?.now() ?? Date.now();
  }

  private receive(channel: Buffer, message: Buffer): void {
    const envelope = decode(message);
    if (!envelope) {
      this.log.debug('ignored a message that is not a mesh envelope', { channel: channel.toString() });
      return;
    }
    if (envelope.kind === Kind.Reply) {
      for (const { request, s, f } of envelope.entries) this.replies.add(request, s, f);
      return;
    }
    const local = this.local;
    if (!local) return;
    if (envelope.deadline > 0 && envelope.origin !== this.nodeId) {
      const lateBy = this.meshNow() - envelope.deadline;
      if (lateBy > 0) {
        this.dropLate(envelope.kind, lateBy);
        this.answer(envelope.origin, envelope.request, 0, 1);
        return;
      }
    }
    // This runs inside ioredis's reply parser: an exception here would break the connection, so none escapes.
    try {
      if (envelope.kind === Kind.Publish || envelope.kind === Kind.Count) {
        if (envelope.origin === this.nodeId) {
          // Delivered (or counted) locally when sent; only the count of answers needs this copy.
          this.answer(envelope.origin, envelope.request, 0, 0);
          return;
        }
        const prefix = this.channelPrefix;
        if (channel.length < prefix.length || channel.compare(prefix, 0, prefix.length, 0, prefix.length) !== 0) return;
        const name = channel.toString('utf8', prefix.length);
        if (envelope.kind === Kind.Count) {
          this.answer(envelope.origin, envelope.request, local.count(name), 0);
          return;
        }
        const { s, f } = local.deliver(name, envelope.payload, envelope.binary);
        this.answer(envelope.origin, envelope.request, s, f);
      } else if (envelope.kind === Kind.Send) {
        const delivered = local.deliverTo(envelope.clientId, envelope.payload, envelope.binary);
        this.answer(envelope.origin, envelope.request, delivered ? 1 : 0, delivered ? 0 : 1);
      } else {
        this.runCall(local, envelope.origin, envelope.request, envelope.clientId, envelope.payload);
      }
    } catch (error) {
      this.log.error('mesh delivery failed', { channel: channel.toString(), error: (error as Error).stack ?? String(error) });
      this.answer(envelope.origin, envelope.request, 0, 1);
    }
  }

  /**
   * Counts a request that came after its deadline: its origin has answered without it, so carrying it
   * out now would contradict that answer (and a retrying backend would see it twice). Logged at most
   * every 5 s, as a Redis or node that was frozen hands over all it held at once.
   */
  private dropLate(kind: Kind, lateBy: number): void {
    this.late++;
    const now = Date.now();
    if (now - this.lateLoggedAt < 5000) return;
    this.lateLoggedAt = now;
    const op = kind === Kind.Publish ? 'publish' : kind === Kind.Send ? 'send' : 'conn.call';
    this.log.warn('mesh: dropped a request that arrived after its deadline', { op, late_ms: Math.round(lateBy), expired_total: this.late });
  }

  /** Runs a `conn.call` from another node and answers s=1 on success, f=1 on failure. */
  private runCall(local: LocalDelivery, origin: string, request: number, clientId: string, payload: Buffer): void {
    const { f, a } = JSON.parse(payload.toString('utf8')) as { f: ConnFunction; a: unknown[] };
    const report = (error: string | null) => {
      if (error) this.log.debug('conn.call from another node failed', { client_id: clientId, f, error });
      this.answer(origin, request, error ? 0 : 1, error ? 1 : 0);
    };
    void whenSettled(local.callOn(clientId, f, a), report, (error) => report((error as Error).message));
  }

  private answer(origin: string, request: number, s: number, f: number): void {
    if (origin === this.nodeId) {
      this.replies.add(request, s, f);
      return;
    }
    let entries = this.outbox.get(origin);
    if (!entries) this.outbox.set(origin, (entries = []));
    entries.push({ request, s, f });
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushAnswers());
  }

  private flushAnswers(): void {
    this.flushScheduled = false;
    const link = this.link;
    for (const [origin, entries] of this.outbox) {
      link?.publish(this.inboxOf(origin), encodeReply(entries)).catch((error: Error) => {
        this.log.debug('mesh answer not sent', { origin, answers: entries.length, error: error.message });
      });
    }
    this.outbox.clear();
  }

  private up(role: Role): void {
    if (role === 'commands') void this.registry?.beat();
  }
}

interface Pending {
  s: number;
  f: number;
  answers: number;
  /** How many answers to wait for; -1 until PUBLISH has told. */
  expected: number;
  done: ((result: PublishResult) => void) | null;
  timer: NodeJS.Timeout | null;
}

/**
 * Answers being collected for this node's publishes and sends. Collection opens before the PUBLISH
 * goes out, because answers can arrive (on the subscriber connection) before PUBLISH's own reply tells
 * how many to expect.
 */
class PendingReplies {
  private readonly byRequest = new Map<number, Pending>();

  constructor(
    private readonly timeout: number,
    private readonly log: Logger,
  ) {}

  open(request: number): void {
    this.byRequest.set(request, { s: 0, f: 0, answers: 0, expected: -1, done: null, timer: null });
  }

  cancel(request: number): void {
    this.byRequest.delete(request);
  }

  add(request: number, s: number, f: number): void {
    const pending = this.byRequest.get(request);
    if (!pending) return; // late (timed out) or not ours
    pending.s += s;
    pending.f += f;
    pending.answers++;
    if (pending.done && pending.answers >= pending.expected) this.finish(request, pending);
  }

  /** Resolves once `receivers` answers arrived, or after the timeout with the silent nodes counted in `f`. */
  wait(request: number, receivers: number, context: LogFields): Promise<PublishResult> {
    const pending = this.byRequest.get(request);
    if (!pending) return Promise.resolve({ s: 0, f: receivers }); // closed by stop
    if (pending.answers >= receivers) {
      this.byRequest.delete(request);
      return Promise.resolve({ s: pending.s, f: pending.f });
    }
    pending.expected = receivers;
    return new Promise((resolve) => {
      pending.done = resolve;
      pending.timer = setTimeout(() => {
        const silent = receivers - pending.answers;
        this.log.warn('mesh peer timeout: nodes did not answer in time, counted as failed', {
          ...context,
          silent,
          receivers,
          timeout_ms: this.timeout,
        });
        pending.f += silent;
        this.finish(request, pending);
      }, this.timeout);
    });
  }

  /** Answers every waiting request with what it has (the node is stopping). */
  closeAll(): void {
    for (const [request, pending] of this.byRequest) if (pending.done) this.finish(request, pending);
    this.byRequest.clear();
  }

  private finish(request: number, pending: Pending): void {
    if (pending.timer) clearTimeout(pending.timer);
    this.byRequest.delete(request);
    pending.done?.({ s: pending.s, f: pending.f });
  }
}
