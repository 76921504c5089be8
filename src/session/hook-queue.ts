/** A unit of work that calls `done` when it has finished, now or later. */
export type HookTask = (done: () => void) => void;

/**
 * Runs one connection's hook calls one at a time, in arrival order, even when a call waits (a
 * suspended coroutine). Bounded: past `limit` waiting tasks `push` refuses, and the caller closes
 * the connection instead of buffering without end.
 */
export class HookQueue {
  private busy = false;
  private readonly waiting: HookTask[] = [];

  constructor(private readonly limit: number) {}

  /** Queues `task`; false if the queue is full (unless `force`, used for on_close). */
  push(task: HookTask, force = false): boolean {
    if (!force && this.waiting.length >= this.limit) return false;
    this.waiting.push(task);
    if (!this.busy) this.drain();
    return true;
  }

  private drain(): void {
    this.busy = true;
    for (;;) {
      const task = this.waiting.shift();
      if (!task) {
        this.busy = false;
        return;
      }
      let finishedNow = false;
      let returned = false;
      task(() => {
        finishedNow = true;
        if (returned) this.drain();
      });
      returned = true;
      // A task that finishes later calls drain itself; the loop (not recursion) serves synchronous ones.
      if (!finishedNow) return;
    }
  }
}
