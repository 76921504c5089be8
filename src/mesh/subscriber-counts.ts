import type { CountResult } from './broker';

/** How long a mesh-wide count is reused, in ms. */
export const COUNT_TTL_MS = 2000;
/** Channels whose counts are kept at most; the oldest is dropped past it. */
const MAX_CHANNELS = 10_000;

interface Entry {
  /** The answer, or the question still on its way (callers in the meantime share it). */
  value: CountResult | Promise<CountResult>;
  at: number;
}

/**
 * Mesh-wide subscriber counts with a short cache, so that asking for a busy channel's count costs at
 * most one round through the mesh per channel per `ttlMs`, however many backends or pages ask. A
 * synchronous answer (the memory broker counts its own hub) is exact and free, and is not cached.
 */
export class SubscriberCounts {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly query: (channel: string) => CountResult | Promise<CountResult>,
    private readonly ttlMs = COUNT_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  count(channel: string): CountResult | Promise<CountResult> {
    const cached = this.entries.get(channel);
    if (cached && (cached.value instanceof Promise || this.now() - cached.at < this.ttlMs)) return cached.value;
    const value = this.query(channel);
    if (!(value instanceof Promise)) return value;
    this.entries.delete(channel);
    const entry: Entry = { value, at: this.now() };
    this.entries.set(channel, entry);
    if (this.entries.size > MAX_CHANNELS) this.entries.delete(this.entries.keys().next().value as string);
    value.then(
      (result) => {
        if (this.entries.get(channel) !== entry) return;
        entry.value = result;
        // The answer's age counts from when it came, so a slow round is not reused for less than the TTL.
        entry.at = this.now();
      },
      () => {
        // A failure is not cached: the next caller asks again.
        if (this.entries.get(channel) === entry) this.entries.delete(channel);
      },
    );
    return value;
  }
}
