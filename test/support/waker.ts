/**
 * Lets a test client wait for data without polling: its data handler calls `wake()`, and a reader
 * awaits `until(ready, ...)`, which returns once `ready()` holds and fails past its deadline.
 */
export class Waker {
  private waiter: (() => void) | null = null;

  wake(): void {
    this.waiter?.();
  }

  /**
   * Resolves once `ready()` is true. Throws `timeoutMessage` after `timeoutMs`, or whatever `hopeless`
   * throws when waiting longer cannot help (the connection closed).
   */
  async until(ready: () => boolean, timeoutMs: number, timeoutMessage: () => string, hopeless?: () => void): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      hopeless?.();
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(timeoutMessage());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }
}
