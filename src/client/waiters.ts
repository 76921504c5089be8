/**
 * Callers waiting for a state (connected, ready) with a deadline each: `release()` resolves every one
 * once the state is reached; a caller still waiting at its deadline is rejected and forgotten.
 */
export class Waiters {
  private waiting: Array<() => void> = [];

  wait(timeoutMs: number, timedOut: () => Error): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((waiter) => waiter !== done);
        reject(timedOut());
      }, timeoutMs);
      this.waiting.push(done);
    });
  }

  release(): void {
    for (const waiter of this.waiting.splice(0)) waiter();
  }
}
