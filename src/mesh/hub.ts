import type { Broker, LocalDelivery, PublishResult } from './broker';
import { frame } from '../server/frame';

/** What the hub needs of a connection. */
export interface Subscriber {
  readonly clientId: string;
  readonly channels: Set<string>;
  /** Writes a pre-built frame; false if the connection cannot take it. */
  write(bytes: Buffer): boolean;
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
 * It tells the broker when a channel gains its first or loses its last local subscriber, and fans
 * out deliveries, framing each message once for all its sockets.
 */
export class Hub implements LocalDelivery {
  private readonly byChannel = new Map<string, Set<Subscriber>>();
  private readonly byId = new Map<string, Subscriber>();

  constructor(private readonly broker: Broker) {}

  get connectionCount(): number {
    return this.byId.size;
  }

  get channelCount(): number {
    return this.byChannel.size;
  }

  add(subscriber: Subscriber): void {
    this.byId.set(subscriber.clientId, subscriber);
  }

  /** Forgets a connection and all its subscriptions. */
  remove(subscriber: Subscriber): void {
    if (this.byId.get(subscriber.clientId) === subscriber) this.byId.delete(subscriber.clientId);
    void this.unsubscribe(subscriber, [...subscriber.channels]);
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
    const waits: Promise<void>[] = [];
    for (const channel of channels) {
      if (subscriber.channels.has(channel)) continue;
      subscriber.channels.add(channel);
      let members = this.byChannel.get(channel);
      if (!members) {
        members = new Set();
        this.byChannel.set(channel, members);
        const pending = this.broker.subscribe(channel);
        if (pending) waits.push(pending);
      }
      members.add(subscriber);
    }
    if (waits.length === 0) return null;
    return Promise.all(waits).then(() => null, (error: Error) => `subscribe failed: ${error.message}`);
  }

  /** Unsubscribes from the channels; unknown ones are ignored (not an error, as in CONNMIX). */
  unsubscribe(subscriber: Subscriber, channels: string[]): string | null | Promise<string | null> {
    const waits: Promise<void>[] = [];
    for (const channel of channels) {
      if (typeof channel !== 'string' || !subscriber.channels.delete(channel)) continue;
      const members = this.byChannel.get(channel);
      if (!members) continue;
      members.delete(subscriber);
      if (members.size === 0) {
        this.byChannel.delete(channel);
        const pending = this.broker.unsubscribe(channel);
        if (pending) waits.push(pending);
      }
    }
    if (waits.length === 0) return null;
    return Promise.all(waits).then(() => null, (error: Error) => `unsubscribe failed: ${error.message}`);
  }

  deliver(channel: string, payload: Buffer, binary: boolean): PublishResult {
    const members = this.byChannel.get(channel);
    if (!members) return { s: 0, f: 0 };
    const bytes = frame(payload, binary);
    let s = 0;
    let f = 0;
    for (const member of members) {
      if (member.write(bytes)) s++;
      else f++;
    }
    return { s, f };
  }

  deliverTo(clientId: string, payload: Buffer, binary: boolean): boolean {
    const subscriber = this.byId.get(clientId);
    return subscriber ? subscriber.write(frame(payload, binary)) : false;
  }
}
