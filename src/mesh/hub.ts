import type { Broker, CallOutcome, ConnFunction, LocalDelivery, PublishResult } from './broker';
import { ContextFullError, type ConnectionContext } from '../session/context';
import { frame } from '../wire/frame';
import type { Memberships } from './memberships';
import type { Metrics, Protocol } from '../metrics';

/**
 * One message on its way to local connections. Each connection writes it in its own protocol: WebSocket
 * connections share one frame, built on first use, so a publish is framed once for all of them and a
 * channel with no WebSocket subscriber is not framed at all; socket connections encode `payload` in Lua.
 */
export class Outgoing {
  private framed: Buffer | null = null;

  constructor(
    readonly payload: Buffer,
    readonly binary: boolean,
  ) {}

  /** The message as one WebSocket frame, the same Buffer for every caller. */
  frame(): Buffer {
    return (this.framed ??= frame(this.payload, this.binary));
  }
}

/** What the hub needs of a connection. */
export interface Subscriber {
  readonly clientId: string;
  readonly protocol: Protocol;
  /** Each channel the connection holds, with its slot in that channel's member list (the hub's to keep). */
  readonly channels: Memberships<ChannelEntry>;
  /** Channels this connection may hold at most (0 = no limit). */
  readonly maxChannels: number;
  readonly context: ConnectionContext;
  /** Writes one message in the connection's protocol; false if the connection cannot take it. */
  deliver(message: Outgoing): boolean;
}

/** A channel's local subscribers, and the name string every subscriber's `channels` shares. */
export interface ChannelEntry {
  readonly name: string;
  /**
   * The members, each at the slot its membership in `channels` names. An array, not a Set: V8 keeps a
   * deleted Set key in its bucket's chain until the table is rebuilt, so one viewer joining and leaving a
   * channel of 20,000 again and again made each join walk thousands of dead entries (72 µs a join and
   * leave in `npm run bench:churn`, against 0.05 µs now). A leave moves the last member into the freed
   * slot; during a delivery's walk it only empties the slot (null), and the walk's end closes the gaps.
   */
  readonly members: Array<Subscriber | null>;
  /** Members, the gaps not counted. */
  size: number;
  /** Deliveries walking `members` now: more than one when a delivery runs Lua that publishes again. */
  walking: number;
  /** The broker's subscribe while Redis has not confirmed it: later subscribers wait for it too. */
  subscribing: Promise<void> | null;
  /** How many sweeps had run when its last member left (read only while it has none). */
  leftAt: number;
  /** On the hub's list of channels the sweep looks at. */
  listed: boolean;
}

/** How a hub lets go of channels its last local subscriber left; see Hub. */
export interface HubOptions {
  /**
   * Milliseconds between sweeps of left channels (default 1000). A channel left by its last local
   * subscriber stays subscribed at the broker until the second sweep after, so for one to two
   * periods; 0 unsubscribes at once.
   */
  lingerMs?: number;
  /** Left channels held at most (default 10,000); past it a left channel is unsubscribed at once. */
  maxIdle?: number;
}

/** The longest channel name accepted, in characters. */
const MAX_CHANNEL_LENGTH = 1024;

/** Why `channel` is not a valid channel name (CONNMIX: any string without spaces), or null. */
export function channelError(channel: unknown): string | null {
  if (typeof channel !== 'string' || channel.length === 0) return 'channel must be a non-empty string';
  if (channel.length > MAX_CHANNEL_LENGTH) return `channel longer than ${MAX_CHANNEL_LENGTH} characters`;
  if (/\s/.test(channel)) return `invalid channel "${channel}": channels cannot contain spaces`;
  return null;
}

/**
 * The node's local subscribers: which connection listens to which channel, and who is connected.
 * It tells the broker when a channel gains its first local subscriber, and a moment after it lost its
 * last one; and it fans out deliveries, framing each message once for all its WebSocket connections
 * (see Outgoing).
 *
 * Why a left channel lingers: a viewer who leaves and comes back (a reload, a reconnect, a video switched
 * back) then costs no broker round trip. And the channel map is spared a delete and insert of the same key
 * per flap: V8 keeps a deleted key in its bucket's chain until the map is rebuilt, so a few channels
 * flapping among 10,000 made each lookup walk a chain of dead entries (1.6 µs a miss in the subscribe storm).
 */
export class Hub implements LocalDelivery {
  private readonly byChannel = new Map<string, ChannelEntry>();
  private readonly byId = new Map<string, Subscriber>();
  private readonly lingerMs: number;
  private readonly maxIdle: number;
  /** Channels that were left, for the sweep; some may have members again. */
  private listed: ChannelEntry[] = [];
  /** Channels without members still held. */
  private idle = 0;
  private sweeps = 0;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly broker: Broker,
    private readonly metrics?: Metrics,
    options: HubOptions = {},
  ) {
    this.lingerMs = options.lingerMs ?? 1000;
    this.maxIdle = options.maxIdle ?? 10_000;
  }

  get connectionCount(): number {
    return this.byId.size;
  }

  /** Channels with at least one local subscriber. */
  get channelCount(): number {
    return this.byChannel.size - this.idle;
  }

  /** Channels left by their last local subscriber and still subscribed at the broker. */
  get idleChannelCount(): number {
    return this.idle;
  }

  /** Stops the sweeps; channels still held stay subscribed (the broker is stopping too). */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /** The local connection with this client_id, if it is here. */
  connection(clientId: string): Subscriber | undefined {
    return this.byId.get(clientId);
  }

  add(subscriber: Subscriber): void {
    this.byId.set(subscriber.clientId, subscriber);
  }

  /** Forgets a connection and all its subscriptions. */
  remove(subscriber: Subscriber): void {
    if (this.byId.get(subscriber.clientId) === subscriber) this.byId.delete(subscriber.clientId);
    void this.unsubscribe(subscriber, [...subscriber.channels.keys()]);
  }

  /**
   * Subscribes to every channel (all or none: names are checked first). Resolves once the broker
   * carries the new channels, so a publish that follows reaches the subscriber.
   */
  subscribe(subscriber: Subscriber, channels: string[]): string | null | Promise<string | null> {
    for (const channel of channels) {
      const error = channelError(channel);
      if (error) return error;
    }
    // Counting the new channels exactly costs a set: only done when the plain sum could pass the limit.
    const max = subscriber.maxChannels;
    if (max > 0 && subscriber.channels.size + channels.length > max) {
      const added = new Set(channels.filter((channel) => !subscriber.channels.has(channel))).size;
      if (subscriber.channels.size + added > max) {
        this.metrics?.subscribesRefused.inc();
        return `too many channels: a connection may subscribe to ${max}`;
      }
    }
    let waits: Promise<void>[] | null = null;
    for (const channel of channels) {
      if (subscriber.channels.has(channel)) continue;
      let entry = this.byChannel.get(channel);
      if (!entry) {
        entry = { name: channel, members: [], size: 0, walking: 0, subscribing: null, leftAt: 0, listed: false };
        this.byChannel.set(channel, entry);
        const pending = this.broker.subscribe(channel);
        if (pending) {
          const subscribing = pending.finally(() => {
            if (entry!.subscribing === subscribing) entry!.subscribing = null;
          });
          entry.subscribing = subscribing;
        }
      } else if (entry.size === 0) {
        this.idle--;
      }
      if (entry.subscribing) (waits ??= []).push(entry.subscribing);
      // The channel's own name string: 20,000 viewers of a video then hold one copy, not 20,000.
      subscriber.channels.join(entry.name, entry, entry.members.length);
      entry.members.push(subscriber);
      entry.size++;
    }
    if (waits === null) return null;
    return Promise.all(waits).then(() => null, (error: Error) => `subscribe failed: ${error.message}`);
  }

  /** Unsubscribes from the channels; unknown ones are ignored (not an error, as in CONNMIX). */
  unsubscribe(subscriber: Subscriber, channels: string[]): string | null | Promise<string | null> {
    let waits: Promise<void>[] | null = null;
    for (const channel of channels) {
      const membership = typeof channel === 'string' ? subscriber.channels.get(channel) : undefined;
      if (membership === undefined) continue;
      const entry = membership.entry;
      this.leave(entry, membership.slot);
      subscriber.channels.leave(membership);
      if (entry.size > 0) continue;
      if (this.lingerMs > 0 && (entry.listed || this.listed.length < this.maxIdle)) {
        this.linger(entry);
        continue;
      }
      const pending = this.drop(entry);
      if (pending) (waits ??= []).push(pending);
    }
    if (waits === null) return null;
    return Promise.all(waits).then(() => null, (error: Error) => `unsubscribe failed: ${error.message}`);
  }

  /** Frees a member's slot: the last member moves into it, unless a delivery is walking the list. */
  private leave(entry: ChannelEntry, slot: number): void {
    entry.size--;
    const members = entry.members;
    if (entry.walking > 0) {
      members[slot] = null;
      return;
    }
    const last = members.pop()!;
    if (slot === members.length) return;
    members[slot] = last;
    last.channels.get(entry.name)!.slot = slot;
  }

  /** Closes the gaps leaves left during a walk, keeping the members' order. */
  private closeGaps(entry: ChannelEntry): void {
    const members = entry.members;
    let to = 0;
    for (let from = 0; from < members.length; from++) {
      const member = members[from];
      if (member === null) continue;
      if (to !== from) {
        members[to] = member;
        member.channels.get(entry.name)!.slot = to;
      }
      to++;
    }
    members.length = to;
  }

  /** Holds a channel its last subscriber left, for the sweeps to drop if nobody comes back. */
  private linger(entry: ChannelEntry): void {
    entry.leftAt = this.sweeps;
    this.idle++;
    if (entry.listed) return;
    entry.listed = true;
    this.listed.push(entry);
    this.sweeper ??= setInterval(() => this.sweep(), this.lingerMs).unref();
  }

  /** Drops the listed channels left before the previous sweep that still have no member. */
  private sweep(): void {
    const sweep = ++this.sweeps;
    const kept: ChannelEntry[] = [];
    for (const entry of this.listed) {
      if (entry.size > 0) entry.listed = false;
      else if (entry.leftAt < sweep - 1) {
        entry.listed = false;
        this.idle--;
        void this.drop(entry);
      } else kept.push(entry);
    }
    this.listed = kept;
    if (kept.length === 0) this.close();
  }

  private drop(entry: ChannelEntry): void | Promise<void> {
    this.byChannel.delete(entry.name);
    return this.broker.unsubscribe(entry.name);
  }

  deliver(channel: string, payload: Buffer, binary: boolean): PublishResult {
    const entry = this.byChannel.get(channel);
    if (!entry || entry.size === 0) return { s: 0, f: 0 };
    const message = new Outgoing(payload, binary);
    let s = 0;
    let f = 0;
    let socketS = 0;
    let socketF = 0;
    const members = entry.members;
    entry.walking++;
    try {
      // Members that join during the walk are appended, and get the message too.
      for (let i = 0; i < members.length; i++) {
        const member = members[i];
        if (member === null) continue;
        const delivered = member.deliver(message);
        if (member.protocol === 'websocket') {
          if (delivered) s++;
          else f++;
        } else if (delivered) socketS++;
        else socketF++;
      }
    } finally {
      if (--entry.walking === 0 && members.length > entry.size) this.closeGaps(entry);
    }
    this.metrics?.countSends(s, f, socketS, socketF);
    return { s: s + socketS, f: f + socketF };
  }

  deliverTo(clientId: string, payload: Buffer, binary: boolean): boolean {
    const subscriber = this.byId.get(clientId);
    if (!subscriber) return false;
    const delivered = subscriber.deliver(new Outgoing(payload, binary));
    if (subscriber.protocol === 'websocket') this.metrics?.countSends(delivered ? 1 : 0, delivered ? 0 : 1, 0, 0);
    else this.metrics?.countSends(0, 0, delivered ? 1 : 0, delivered ? 0 : 1);
    return delivered;
  }
  count(channel: string): number {
    return this.byChannel.get(channel)?.size ?? 0;
  }

  /** `conn.call` on a local connection: context writes apply at once, (un)subscribes as usual. */
  callOn(clientId: string, fn: ConnFunction, args: unknown[]): CallOutcome {
    const conn = this.byId.get(clientId);
    if (!conn) return `client ${clientId} not found or gone`;
    switch (fn) {
      case 'set_context_value':
      case 'set_context':
        try {
          conn.context.apply(fn, args[0], args[1]);
        } catch (error) {
          if (error instanceof ContextFullError) return error.message;
          throw error;
        }
        return null;
      case 'subscribe':
        return this.subscribe(conn, args as string[]);
      case 'unsubscribe':
        return this.unsubscribe(conn, args as string[]);
    }
  }

}
