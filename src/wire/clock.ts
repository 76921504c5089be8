/**
 * Milliseconds on a monotonic clock, from an arbitrary origin: what timeouts and call budgets measure.
 * A wall-clock step (NTP, a suspended VM) must not time out every connection at once, nor a hook; and
 * `performance.now()` is a fast call, where `Date.now()` is a runtime call into V8 (a read per message).
 * Only differences of its readings mean anything: never compare one with a Date.
 */
export function monotonicMs(): number {
  return performance.now();
}
