/** Pending input up to this size is handed to protocol_input on every read: scanning it is cheap. */
export const PACE_SMALL_BYTES = 4096;
/** Past PACE_SMALL_BYTES, input that grew by this fraction since protocol_input last answered 0 runs it at once. */
export const PACE_GROWTH = 1 / 4;
/** Otherwise protocol_input runs this long after the read that did not run it. */
export const PACE_DELAY_MS = 20;

/**
 * When a socket connection's protocol_input runs again after it answered 0 (more input needed).
 * It sees the whole pending input each time, so a protocol that scans for a delimiter rescans what it
 * has seen: once per read, a client sending a long line one byte per segment cost the node O(n²)
 * (bench/notes.md). Small input, or input that grew by a quarter, runs it at once; other reads wait
 * for a short timer, so a line of n bytes costs O(n log n) scanning plus at most 1000 / PACE_DELAY_MS
 * calls a second. A packet of a few full segments waits for none; the last bytes of one over
 * PACE_SMALL_BYTES, if they come in a read too small next to it, wait up to PACE_DELAY_MS.
 */
export class InputPacer {
  /** Pending bytes protocol_input saw when it last answered 0; 0 when it has not. */
  private seen = 0;
  private timer: NodeJS.Timeout | null = null;

  /** `run` hands the pending input to protocol_input; the timer calls it. */
  constructor(private readonly run: () => void) {}

  /** protocol_input answered 0 on `length` bytes that are still pending. */
  waiting(length: number): void {
    this.seen = length;
  }

  /** protocol_input took a packet: whatever is left is new to it. */
  took(): void {
    this.seen = 0;
  }

  /** Whether protocol_input should run now on `length` pending bytes; if not, the timer will run it. */
  due(length: number): boolean {
    // Input shorter than what protocol_input saw was cleared since: it has not seen any of it.
    if (length <= PACE_SMALL_BYTES || length < this.seen || length - this.seen >= this.seen * PACE_GROWTH) {
      this.stop();
      return true;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.run();
      }, PACE_DELAY_MS);
      // A connection waiting for input must not keep the process alive.
      this.timer.unref();
    }
    return false;
  }

  /** Drops the timer: the input is being read already, or the connection closed. */
  stop(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
