/** One channel a connection holds: the hub's entry for the channel, and the connection's slot in its member list. */
export interface Membership<Entry> {
  /** Null once the connection left the channel (a tombstone, see Memberships). */
  entry: Entry | null;
  slot: number;
}

/** A membership of a channel still held. */
export type HeldMembership<Entry> = Membership<Entry> & { entry: Entry };

/** Tombstones kept at least, before they must also outnumber the live channels to be purged. */
const MIN_TOMBSTONES = 8;

/**
 * The channels one connection holds, each with its membership, kept by the hub. A channel left stays in
 * the map as a tombstone, and joining it again fills that in place: V8 shrinks a Map's table (a runtime
 * call) when a delete leaves it less than half full, so a viewer leaving its only channel paid about 1 µs
 * per leave in the subscribe storm, where the rest of the leave costs 0.5. Tombstones are purged once
 * there are more than 8 and more than live channels, so a connection holds at most about twice its channels.
 */
export class Memberships<Entry> {
  private readonly byName = new Map<string, Membership<Entry>>();
  private tombstones = 0;

  /** Channels held. */
  get size(): number {
    return this.byName.size - this.tombstones;
  }

  /** The membership of a channel held, or undefined. */
  get(channel: string): HeldMembership<Entry> | undefined {
    const membership = this.byName.get(channel);
    return membership === undefined || membership.entry === null ? undefined : (membership as HeldMembership<Entry>);
  }

  has(channel: string): boolean {
    return this.get(channel) !== undefined;
  }

  /** Records a channel joined (not held yet) at `slot` of its entry's member list. */
  join(channel: string, entry: Entry, slot: number): void {
    const membership = this.byName.get(channel);
    if (membership === undefined) {
      this.byName.set(channel, { entry, slot });
      return;
    }
    membership.entry = entry;
    membership.slot = slot;
    this.tombstones--;
  }

  /** Records a channel held as left; its membership is not to be used after. */
  leave(membership: Membership<Entry>): void {
    membership.entry = null;
    if (++this.tombstones > MIN_TOMBSTONES && this.tombstones > this.size) this.purge();
  }

  /** The names of the channels held, in the order they were first joined. */
  *keys(): IterableIterator<string> {
    for (const [channel, membership] of this.byName) if (membership.entry !== null) yield channel;
  }

  private purge(): void {
    for (const [channel, membership] of this.byName) if (membership.entry === null) this.byName.delete(channel);
    this.tombstones = 0;
  }
}
