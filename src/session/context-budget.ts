/**
 * The bytes all connection contexts of a node may hold together (`engine.maxContextBytes`), as
 * ConnectionContext estimates them. A context takes what a write grows it by before the write is made,
 * gives back what a write shrinks it by, and gives back all it holds once its connection is released:
 * so the count is always the sum of the contexts' estimates. Without it each context was capped, but
 * 10,000 connections a backend filled through `conn.call` could each hold their 16 MiB.
 */
export class ContextBudget {
  private taken = 0;

  constructor(readonly limit: number) {}

  /** Bytes the node's contexts hold now. */
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
