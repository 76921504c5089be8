/**
 * The request bytes the API server may hold at once, over all its requests (`maxBytesInFlight`). An HTTP
 * request takes its announced length (or its bytes as they arrive, when chunked) before its body is read
 * and gives it back once answered, so bodies that are never finished cannot pile up past the budget. A
 * `/ws/v1` request takes its frame's bytes once received and gives them back once its command settles,
 * so commands waiting on the broker cannot either, however many connections send them.
 */
export class BodyBudget {
  private taken = 0;

  constructor(readonly limit: number) {}

  /** The `m` of the code 503 answer to a request past the budget, the same on both transports. */
  get busyMessage(): string {
    return `busy: ${this.limit} bytes of requests are in flight; retry`;
  }

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
