/**
 * The request body bytes the API server may hold at once, over all its requests. A request takes its
 * announced length (or its bytes as they arrive, when chunked) before its body is read and gives it
 * back once answered, so bodies that are never finished cannot pile up past the budget.
 */
export class BodyBudget {
  private taken = 0;

  constructor(readonly limit: number) {}

  /** Takes `bytes` if they fit in what is left; false (and nothing taken) otherwise. */
  take(bytes: number): boolean {
    if (this.taken + bytes > this.limit) return false;
    this.taken += bytes;
    return true;
  }

  give(bytes: number): void {
    this.taken = Math.max(0, this.taken - bytes);
  }
}
