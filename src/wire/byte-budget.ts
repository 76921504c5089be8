/**
 * Bytes that many holders share under one limit: each takes what it grows by before it grows, and gives
 * it back when it lets go, so `held` is always the sum of what the holders hold. The API server's
 * requests share `maxBytesInFlight` this way, the node's connection contexts `engine.maxContextBytes`.
 */
export class ByteBudget {
  private taken = 0;

  constructor(readonly limit: number) {}

  /** Bytes taken and not given back. */
  get held(): number {
    return this.taken;
  }

  /** Takes `bytes` if they fit in what is left; false (and nothing taken) otherwise. */
  take(bytes: number): boolean {
    if (this.taken + bytes > this.limit) return false;
    this.taken += bytes;
    return true;
  }

  give(bytes: number): void {
    this.taken -= bytes;
  }
}
