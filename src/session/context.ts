import type { ByteBudget } from '../wire/byte-budget';

/**
 * A value a context holds: plain data that crosses into Lua and back (lua/values.ts converts it) and
 * arrives as JSON from `conn.call`.
 */
export type ContextValue = null | boolean | number | string | Uint8Array | ContextValue[] | { [key: string]: ContextValue };

/** The context writes a script (`conn:set_context*`) and the backend (`conn.call`) make. */
export type ContextWrite = 'set_context' | 'set_context_value';

/** A stored value with the bytes it was counted for, so removing it gives back exactly what it took. */
interface Entry {
  value: ContextValue;
  size: number;
}

interface Waiter {
  resolve(value: ContextValue): void;
  reject(error: Error): void;
}

/** Rough V8 sizes (bytes) of a value's parts, enough to tell a few fields from megabytes. */
const SLOT = 16;
const STRING = 24;
const BYTES = 96;
const CONTAINER = 48;

/**
 * Estimated bytes of a context value: strings by their length, containers by their entries. A loop, not
 * a recursion: a value from `conn.call` is parsed JSON, which may nest deeper than the JS stack.
 */
export function valueBytes(value: ContextValue): number {
  let bytes = 0;
  const pending: ContextValue[] = [value];
  while (pending.length > 0) {
    const item = pending.pop() as ContextValue;
    if (typeof item === 'string') bytes += STRING + item.length;
    else if (item instanceof Uint8Array) bytes += BYTES + item.byteLength;
    else if (item === null || typeof item !== 'object') bytes += SLOT;
    else if (Array.isArray(item)) {
      bytes += CONTAINER + item.length * SLOT;
      for (const element of item) pending.push(element);
    } else {
      bytes += CONTAINER;
      for (const [key, element] of Object.entries(item)) {
        bytes += SLOT + STRING + key.length;
        pending.push(element);
      }
    }
  }
  return bytes;
}

function entryBytes(key: string, value: ContextValue): number {
  return STRING + key.length + valueBytes(value);
}

/** A wait that ran out of time (see ConnectionContext.waitFor). */
export class WaitTimeoutError extends Error {}

/**
 * What one connection's context may hold, in bytes as `valueBytes` estimates them (keys included). Backends set values
 * remotely (`conn.call`, each up to maxBodySize) and scripts from what their clients send: without a
 * cap, a value under a new key each time grew the node without end.
 */
export const MAX_CONTEXT_BYTES = 16 * 1024 * 1024;

/**
 * A context write refused because the context would pass MAX_CONTEXT_BYTES, or the node's contexts
 * their ByteBudget; the context is unchanged.
 */
export class ContextFullError extends Error {}

/**
 * A connection's context (CONNMIX's `conn:context()`): named values that live as long as the connection, set from
 * its hooks or remotely by the backend (`conn.call set_context_value`). Holds no nils: setting null
 * removes the key. `waitFor` lets a hook wait until a key is set, whoever sets it.
 */
export class ConnectionContext {
  /** Made on first use: most connections of a barrage never set a value nor wait for one. */
  private values: Map<string, Entry> | null = null;
  /** Estimated bytes of the values and their keys (see valueBytes): what this context has taken of `budget`. */
  private held = 0;
  private waiters: Map<string, Waiter[]> | null = null;
  private closedWith: string | null = null;

  /** @param budget the node's, shared by all its connections' contexts; none for a context that counts only itself */
  constructor(private readonly budget: ByteBudget | null = null) {}

  get size(): number {
    return this.values?.size ?? 0;
  }

  /** Estimated bytes the values hold, keys included: what a script can pile up in a context is counted. */
  get bytes(): number {
    return this.held;
  }

  /** How many waits are pending, over all keys. */
  get waiting(): number {
    let count = 0;
    for (const list of this.waiters?.values() ?? []) count += list.length;
    return count;
  }

  get(key: string): ContextValue | undefined {
    return this.values?.get(key)?.value;
  }

  /**
   * Sets `key` (null removes it) and wakes whoever waits for it; throws ContextFullError past
   * MAX_CONTEXT_BYTES or the node's budget.
   */
  set(key: string, value: ContextValue): void {
    const previous = this.values?.get(key);
    const freed = previous?.size ?? 0;
    if (value === null) {
      if (previous === undefined) return;
      this.values?.delete(key);
      this.resize(this.held - freed);
      return;
    }
    const size = entryBytes(key, value);
    this.resize(this.held - freed + size);
    this.store(key, value, size);
  }

  /** Stores a value counted in `held` already, and wakes its waiters. */
  private store(key: string, value: ContextValue, size: number): void {
    (this.values ??= new Map()).set(key, { value, size });
    const waiting = this.waiters?.get(key);
    if (!waiting) return;
    this.waiters?.delete(key);
    for (const waiter of waiting) waiter.resolve(value);
  }

  /** Removes every value, giving back to the node all the context held (the connection is released). */
  clear(): void {
    this.values?.clear();
    this.resize(0);
  }

  /**
   * Makes `bytes` the context's estimate, before the values change: growth is checked against the
   * context's cap and taken from the node's budget (ContextFullError, nothing taken, past either),
   * shrinkage given back. The one place `held` changes, so the budget never drifts from the contexts.
   */
  private resize(bytes: number): void {
    const grown = bytes - this.held;
    if (grown > 0) {
      if (bytes > MAX_CONTEXT_BYTES) {
        throw new ContextFullError(`the connection's context would hold ${bytes} bytes, over its limit of ${MAX_CONTEXT_BYTES}`);
      }
      if (this.budget && !this.budget.take(grown)) {
        throw new ContextFullError(`the node's connection contexts would hold ${this.budget.held + grown} bytes, over their limit of ${this.budget.limit} (engine.maxContextBytes)`);
      }
    } else if (grown < 0) {
      this.budget?.give(-grown);
    }
    this.held = bytes;
  }

  /**
   * Applies a context write, the one path for both a hook's `conn:set_context*` and a backend's
   * `conn.call`, given the call's arguments as they come (no array built per call): `set_context_value`
   * takes key and value (null or absent removes the key), `set_context` a table and replaces every value
   * with the table's (an array's by index). Throws ContextFullError, changing nothing, past MAX_CONTEXT_BYTES
   * or the node's budget.
   */
  apply(write: ContextWrite, first: unknown, second?: unknown): void {
    if (write === 'set_context_value') {
      this.set(String(first), (second ?? null) as ContextValue);
      return;
    }
    const table = first;
    const entries = table !== null && typeof table === 'object' ? Object.entries(Array.isArray(table) ? { ...table } : table) : [];
    // Each value is sized once; all or nothing: a table over the limit leaves the context as it was.
    const sized = entries.filter(([, value]) => value !== null)
      .map(([key, value]) => ({ key, value: value as ContextValue, size: entryBytes(key, value as ContextValue) }));
    this.resize(sized.reduce((sum, entry) => sum + entry.size, 0));
    this.values?.clear();
    for (const { key, value, size } of sized) this.store(key, value, size);
  }

  *entries(): IterableIterator<[string, ContextValue]> {
    for (const [key, entry] of this.values ?? []) yield [key, entry.value];
  }

  /**
   * The value of `key` once it is set: at once if it already is, otherwise when a later `set` gives it
   * one. Rejects with the close reason once the context is closed, and with a WaitTimeoutError after
   * `timeoutMs` (CONNMIX documents no timeout; without one a backend that never answers would hold the
   * connection's events, and its place, for good).
   */
  waitFor(key: string, timeoutMs = Infinity): Promise<ContextValue> {
    const value = this.values?.get(key)?.value;
    if (value !== undefined) return Promise.resolve(value);
    if (this.closedWith !== null) return Promise.reject(new Error(this.closedWith));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const waiters = (this.waiters ??= new Map());
      const waiting = waiters.get(key);
      if (waiting) waiting.push(waiter);
      else waiters.set(key, [waiter]);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          this.forget(key, waiter);
          reject(new WaitTimeoutError(`wait_context_value("${key}") timed out after ${timeoutMs / 1000} s`));
        }, timeoutMs);
        timer.unref();
      }
    });
  }

  /** Drops one waiter of `key` (its wait timed out). */
  private forget(key: string, waiter: Waiter): void {
    const waiting = this.waiters?.get(key);
    if (!waiting) return;
    const rest = waiting.filter((candidate) => candidate !== waiter);
    if (rest.length > 0) this.waiters?.set(key, rest);
    else this.waiters?.delete(key);
  }

  /**
   * The connection is gone: pending and later waits fail with `reason`, so the hooks that wait can end.
   * Values stay readable (on_close usually needs them).
   */
  close(reason: string): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    const waiting = [...(this.waiters?.values() ?? [])].flat();
    this.waiters = null;
    const error = new Error(reason);
    for (const waiter of waiting) waiter.reject(error);
  }
}
