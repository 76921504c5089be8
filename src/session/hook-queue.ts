/** A unit of work that calls `done` once when it has finished, now or later. */
export type HookTask = (done: () => void) => void;

/** Where the running task is: still inside its call, waiting to call `done`, or done. */
const enum Turn {
  Idle,
  Running,
  Waiting,
}

/**
 * Runs one connection's hook calls one at a time, in arrival order, even when a call waits (a
 * suspended coroutine). Bounded: past `limit` waiting tasks `push` refuses, and the caller closes
 * the connection instead of buffering without end.
 *
 * Every task gets the same `done` (one per queue, not one per task): a hook call on the busy path
 * then allocates nothing here. A task that is first in line runs at once, without being queued.
 */
export class HookQueue {
  private turn = Turn.Idle;
  private readonly waiting: HookTask[] = [];

  constructor(private readonly limit: number) {}

  /** Queues `task`; false if the queue is full (unless `force`, used for on_close). */
  push(task: HookTask, force = false): boolean {
    if (!force && this.waiting.length >= this.limit) return false;
    if (this.turn === Turn.Idle) this.run(task);
    else this.waiting.push(task);
    return true;
  }

  /** Runs `first`, then the tasks waiting behind it, until one finishes later (then `done` goes on). */
  private run(first: HookTask): void {
    let task: HookTask | undefined = first;
    while (task !== undefined) {
      this.turn = Turn.Running;
      task(this.done);
      if (this.turn === Turn.Running) {
        this.turn = Turn.Waiting;
        return;
      }
      task = this.waiting.shift();
    }
  }

  /** The running task finished: before it returned (run's loop goes on) or later (the next one starts here). */
  private readonly done = (): void => {
    const turn = this.turn;
    this.turn = Turn.Idle;
    if (turn !== Turn.Waiting) return;
    const next = this.waiting.shift();
    if (next !== undefined) this.run(next);
  };
}
