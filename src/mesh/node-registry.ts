import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import type { Logger } from '../log';
import type { NodeInfo } from './broker';
import { MAX_NODE_NUMBER } from './ids';

/** How often a node refreshes its registration, and how long it stays listed without a refresh (ms). */
export interface RegistryTiming {
  heartbeat: number;
  ttl: number;
}

// All registry keys share the `{nodes}` hash tag, so MGET and the scripts work on Redis Cluster too.
// `<prefix>{nodes}:<number>` holds the owner's `{"id","api_server"}` with a TTL; `<prefix>{nodes}` is the
// set of numbers in use, a hint for listing (numbers whose key expired are dropped from it lazily).

/** Takes a free number: SET NX with the TTL, then lists it. 1 = taken by us, 0 = someone holds it. */
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
return 0`;

/**
 * Extends our registration: 1 = extended, 2 = the key was gone (e.g. Redis restarted) and is ours again,
 * 0 = another node holds it.
 */
const REFRESH = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  return 2
end
return 0`;

/** Removes our registration if it is still ours. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0`;

/**
 * The live nodes registered under `prefix`, in node-number order: what `/v1/nodes` lists. Needs no
 * registration of its own, so a center process can read it too.
 */
export async function listNodes(redis: Redis | Cluster, prefix: string): Promise<NodeInfo[]> {
  const setKey = `${prefix}{nodes}`;
  const numbers = (await redis.smembers(setKey)).map(Number).sort((a, b) => a - b);
  if (numbers.length === 0) return [];
  const values = await redis.mget(numbers.map((n) => `${prefix}{nodes}:${n}`));
  const nodes: NodeInfo[] = [];
  const expired: number[] = [];
  values.forEach((value, i) => {
    if (value) nodes.push(JSON.parse(value) as NodeInfo);
    else expired.push(numbers[i]);
  });
  // A live node adds its number back on its next heartbeat should this race with its claim.
  if (expired.length > 0) redis.srem(setKey, ...expired).catch(() => undefined);
  return nodes;
}

/**
 * The mesh's list of live nodes in Redis. Each node owns a node number (0..1023, the one its client_ids
 * carry) as a key with a TTL, refreshed by a heartbeat: a node that dies disappears within the TTL, and
 * two live nodes never hold the same number because numbers are taken with SET NX.
 */
export class NodeRegistry {
  private current = -1;
  private preferred = -1;
  private registered = false;
  private beating: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly value: string;
  private readonly setKey: string;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly self: NodeInfo,
    private readonly timing: RegistryTiming,
    private readonly log: Logger,
    /** Called when a conflict forced this node onto another number. */
    private readonly onNumberChange: (from: number, to: number) => void = () => undefined,
  ) {
    this.value = JSON.stringify({ id: self.id, api_server: self.api_server });
    this.setKey = `${prefix}{nodes}`;
  }

  /** The number this node holds (or assumed while Redis was unreachable); -1 before either. */
  get number(): number {
    return this.current;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  /**
   * Uses `number` until Redis can be reached (the node had to start without it); registration will
   * try to claim this number first.
   */
  assume(number: number): void {
    if (this.registered) return;
    this.current = number;
    this.preferred = number;
    this.log.warn('node starts unregistered: Redis unreachable, using a provisional node number', { number });
  }

  /** Starts the heartbeat (the owner also calls `beat` as soon as Redis is connected). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat(), this.timing.heartbeat);
    this.timer.unref();
  }

  /** Resolves true once registered, or false after `ms`. */
  whenRegistered(ms: number): Promise<boolean> {
    if (this.registered) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms).unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Registers if not yet registered, refreshes otherwise. Never throws; one beat at a time. */
  beat(): Promise<void> {
    this.beating ??= (this.registered ? this.refresh() : this.register())
      .catch((error: Error) => this.log.debug('registry heartbeat failed', { error: error.message }))
      .finally(() => {
        this.beating = null;
      });
    return this.beating;
  }

  /** Stops the heartbeat and removes this node from the list. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    if (!this.registered) return;
    this.registered = false;
    await this.redis.eval(RELEASE, 2, this.key(this.current), this.setKey, this.value, this.current);
    this.log.info('node deregistered', { number: this.current });
  }

  /** The live nodes, in node-number order. */
  list(): Promise<NodeInfo[]> {
    return listNodes(this.redis, this.prefix);
  }

  /** The id of the live node holding `number`, or null. */
  async ownerOf(number: number): Promise<string | null> {
    const value = await this.redis.get(this.key(number));
    return value ? (JSON.parse(value) as NodeInfo).id : null;
  }

  private key(number: number): string {
    return `${this.prefix}{nodes}:${number}`;
  }

  private async register(): Promise<void> {
    const listed = new Set((await this.redis.smembers(this.setKey)).map(Number));
    // Our preferred number first, then free-looking ones in order, then listed ones (they may have expired).
    const candidates: number[] = [];
    if (this.preferred >= 0) candidates.push(this.preferred);
    for (let n = 0; n <= MAX_NODE_NUMBER; n++) if (!listed.has(n) && n !== this.preferred) candidates.push(n);
    for (const n of listed) if (n !== this.preferred && n >= 0 && n <= MAX_NODE_NUMBER) candidates.push(n);
    for (const number of candidates) {
      if ((await this.redis.eval(CLAIM, 2, this.key(number), this.setKey, this.value, this.timing.ttl, number)) !== 1) continue;
      const previous = this.current;
      this.current = number;
      this.preferred = number;
      this.registered = true;
      this.log.info('node registered', { number, id: this.self.id, api_server: this.self.api_server });
      if (previous >= 0 && previous !== number) {
        this.log.error('NODE NUMBER CHANGED: client_ids issued before carry the old number', { from: previous, to: number });
        this.onNumberChange(previous, number);
      }
      for (const wake of this.waiters.splice(0)) wake();
      return;
    }
    this.log.error('node not registered: every node number is held by a live node', { numbers: MAX_NODE_NUMBER + 1 });
    throw new Error(`no free node number: all ${MAX_NODE_NUMBER + 1} are held by live nodes`);
  }

  private async refresh(): Promise<void> {
    const number = this.current;
    const result = await this.redis.eval(REFRESH, 2, this.key(number), this.setKey, this.value, this.timing.ttl, number);
    if (!this.registered || this.current !== number) return; // stopped meanwhile
    if (result === 2) this.log.info('node re-registered: Redis had lost the registration', { number });
    if (result !== 0) return;
    this.log.error('NODE NUMBER CONFLICT: another node holds our number (our registration expired); registering anew', {
      number,
    });
    this.registered = false;
    this.preferred = -1;
    await this.register();
  }
}
