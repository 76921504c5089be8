/** Allows each key at most `count` actions in any `windowMs` (a sliding window of recent times). */
export class RateLimiter {
  private readonly recent = new Map<string, number[]>();

  constructor(
    readonly count: number,
    readonly windowMs: number,
  ) {}

  /** Records an action for `key`; returns 0 when allowed, else the ms to wait before the next one. */
  take(key: string, now = Date.now()): number {
    const times = (this.recent.get(key) ?? []).filter((time) => time > now - this.windowMs);
    if (times.length >= this.count) {
      this.recent.set(key, times);
      return times[0] + this.windowMs - now;
    }
    times.push(now);
    this.recent.set(key, times);
    this.sweep(now);
    return 0;
  }

  // Idle keys are dropped now and then so the map does not grow with every viewer ever seen.
  private sweep(now: number): void {
    if (this.recent.size < 10_000) return;
    for (const [key, times] of this.recent) {
      if (times[times.length - 1] <= now - this.windowMs) this.recent.delete(key);
    }
  }
}
