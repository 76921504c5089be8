/** A value now, or later: brokers answer synchronously in memory and asynchronously over Redis. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * `then(value)` at once when `value` is plain, or when the promise settles: a synchronous answer stays
 * synchronous, so the memory broker's path allocates no promise. `fail` maps a rejection; without it the
 * rejection passes through.
 */
export function whenSettled<T, R>(value: MaybePromise<T>, then: (value: T) => R, fail?: (error: unknown) => R): MaybePromise<R> {
  return value instanceof Promise ? value.then(then, fail) : then(value);
}
