import Redis from 'ioredis';
import type { Socket } from 'node:net';
import { lua, lauxlib, K, bytesView, luaToJsString, checkJsString, type LuaState, type LuaFunction } from '../fengari/index';
import { pushNilError, type LuaVM } from '../vm';
import type { LuaRedisConfig } from '../../config/schema';
import type { Logger } from '../../log';
import { settle } from './settle';
import { DEFAULT_LIMITS, stateLimits, type SandboxLimits } from '../limits';

const { LUA_TSTRING, LUA_TNUMBER, lua_type, lua_typename, lua_tonumber, lua_gettop, lua_pushstring, lua_pushnumber,
  lua_pushnil, lua_pushboolean, lua_createtable, lua_rawseti, lua_newuserdata, lua_newtable, lua_pushvalue, lua_setfield,
  lua_pop } = lua;
const { luaL_checklstring, luaL_checkudata, luaL_argerror, luaL_checkstack, luaL_newmetatable, luaL_setfuncs,
  luaL_setmetatable } = lauxlib;

/** How long connecting may take before the commands waiting for it fail. */
const CONNECT_TIMEOUT_MS = 2000;

/**
 * Commands that would change the one connection every script shares (its mode, database or
 * transaction state) under the other scripts' feet.
 */
const SHARED_STATE_COMMANDS = new Set(['subscribe', 'psubscribe', 'ssubscribe', 'monitor', 'quit', 'reset', 'select',
  'multi', 'watch']);

/** Bytes RESP adds to an element at most (`$`, its length in digits, two CRLFs), and to an array. */
const FRAMING_BYTES = 32;
/**
 * Bytes the count of a reply being read may be behind by: the socket read (64 KiB) in which the reply
 * before it ended, and the reads a stream may hand over in one go before scripts are resumed.
 */
const READ_SLACK_BYTES = 1024 * 1024;

/**
 * Bytes a reply may reach on the wire while it is read before its connection is reset: past it, its
 * strings exceed maxStringSize or its elements maxItems, so the script would get `nil, err` anyway.
 */
export function maxReplyBytes(limits: Pick<Required<SandboxLimits>, 'maxStringSize' | 'maxItems'>): number {
  return limits.maxStringSize + (limits.maxItems + 1) * FRAMING_BYTES + READ_SLACK_BYTES;
}

/** Reconnect delays: 100 ms doubling up to 2 s. */
function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
}

/** `host:port` or `[v6]:port` (the config loader has checked the form). */
function parseAddr(addr: string): { host: string; port: number } {
  const colon = addr.lastIndexOf(':');
  return { host: addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(addr.slice(colon + 1)) };
}

/**
 * One `engine.luavm.redis[]` connection: a single ioredis client (commands are multiplexed on it),
 * connected on first use and reconnected in the background. Commands fail with an error instead of
 * waiting while Redis is unreachable.
 *
 * ioredis buffers a reply whole before it resolves its command, and has no limit of its own: a GET of a
 * 500 MB value held 500 MB in the node before anything could refuse it. Replies on one connection come
 * one after the other, so what it buffers is the reply being read; the client counts the bytes received
 * since a command last got its reply and resets the connection once they pass `maxReplyBytes`.
 */
export class LuaRedisClient {
  private readonly client: Redis;
  private lastError = '';
  /** Bytes received since a command last got its reply: the reply being read, give or take a socket read. */
  private reading = 0;
  /** Connections reset for a reply too large so far, so a command can tell whether it was in flight on one. */
  private resets = 0;

  constructor(readonly config: LuaRedisConfig, private readonly log: Logger, private readonly maxReply = maxReplyBytes(DEFAULT_LIMITS)) {
    this.client = new Redis({
      ...parseAddr(config.addr),
      password: config.password || undefined,
      db: config.db,
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: reconnectDelay,
      // Commands queue only while a connection attempt is under way (see command()); a failed one rejects them.
      maxRetriesPerRequest: 0,
    });
    let down = false;
    this.client.on('error', (error: Error) => {
      this.lastError = error.message;
      if (down) return;
      down = true;
      log.warn('Lua redis connection failed', { name: config.name, addr: config.addr, error: error.message });
    });
    this.client.on('ready', () => {
      if (down) log.info('Lua redis connection is back', { name: config.name, addr: config.addr });
      down = false;
      this.lastError = '';
    });
    // ioredis's parser listens first (prependListener), so a reply that ends in a chunk is handed over
    // before this counts the chunk; its command's promise callbacks run before the next chunk is read.
    this.client.on('connect', () => this.watch(this.client.stream as Socket));
  }

  /** Counts what `stream` receives and resets it when a reply being read passes the limit. */
  private watch(stream: Socket): void {
    this.reading = 0;
    let last = 0;
    stream.on('data', (chunk: Buffer) => {
      if (stream !== this.client.stream) return;
      last = chunk.length;
      this.reading += chunk.length;
      if (this.reading <= this.maxReply) return;
      this.resets++;
      this.reading = 0;
      this.lastError = `the connection was reset: a reply passed ${this.maxReply} bytes while being read`;
      this.log.warn('Lua redis reply too large: connection reset', { name: this.config.name, addr: this.config.addr, bytes: this.maxReply });
      // ioredis sees a closed connection: commands in flight fail, and it reconnects.
      stream.destroy();
    });
    this.replied = () => {
      if (stream === this.client.stream) this.reading = Math.min(this.reading, last);
    };
  }

  /** A command got its reply (or failed): what was received before the chunk it ended in is no longer held. */
  private replied: () => void = () => undefined;

  /** Runs one command; resolves to the raw reply (bulk strings as Buffers), rejects with a readable error. */
  command(name: string, args: Array<Buffer | string>): Promise<unknown> {
    if (SHARED_STATE_COMMANDS.has(name.toLowerCase())) {
      return Promise.reject(new Error(`redis: ${name} is not allowed on a connection shared by all scripts`));
    }
    if (this.client.status === 'reconnecting') return Promise.reject(this.unreachable());
    const resets = this.resets;
    return this.client.callBuffer(name, ...args).then((reply) => {
      this.replied();
      return reply;
    }, (error: Error) => {
      this.replied();
      if (this.resets !== resets) throw new Error(`redis ${this.config.name} (${this.config.addr}): ${this.lastError}`);
      // ioredis reports a failed connect as "max retries per request"; the cause is more useful.
      throw error.name === 'MaxRetriesPerRequestError' ? this.unreachable() : error;
    });
  }

  disconnect(): void {
    this.client.disconnect();
  }

  private unreachable(): Error {
    return new Error(`redis ${this.config.name} (${this.config.addr}) is unreachable: ${this.lastError || 'connection lost'}`);
  }
}

/**
 * The named Redis connections of one Lua state (`mix.redis.connection(name)`), created on first use and
 * shared by all its connections. The server closes it when it stops.
 */
export class LuaRedisPool {
  private readonly clients = new Map<string, LuaRedisClient>();
  private closed = false;

  /** @param maxReply bytes a reply being read may reach before its connection is reset (see maxReplyBytes) */
  constructor(
    private readonly configs: readonly LuaRedisConfig[],
    private readonly log: Logger,
    private readonly maxReply = maxReplyBytes(DEFAULT_LIMITS),
  ) {}

  /** The client for `name`, or null if no `engine.luavm.redis[]` entry has that name (or the pool is closed). */
  get(name: string): LuaRedisClient | null {
    if (this.closed) return null;
    let client = this.clients.get(name);
    if (!client) {
      const config = this.configs.find((entry) => entry.name === name);
      if (!config) return null;
      client = new LuaRedisClient(config, this.log, this.maxReply);
      this.clients.set(name, client);
    }
    return client;
  }

  /** Drops every connection; commands in flight fail with "Connection is closed". */
  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) client.disconnect();
    this.clients.clear();
  }
}

/** The metatable name of redis connection userdata. */
const REDIS = K('connmix.redis');

function self(L: LuaState): LuaRedisClient {
  return (luaL_checkudata(L, 1, REDIS) as { client: LuaRedisClient }).client;
}

/** A command argument: strings go as their bytes, numbers in their shortest decimal form. */
export function commandArg(L: LuaState, index: number): Buffer | string {
  const type = lua_type(L, index);
  if (type === LUA_TSTRING) return bytesView(luaL_checklstring(L, index));
  if (type === LUA_TNUMBER) return String(lua_tonumber(L, index));
  return luaL_argerror(L, index, Buffer.from(`string or number expected, got ${luaToJsString(lua_typename(L, type))}`));
}

/**
 * Pushes a reply: bulk and status strings as bytes, integers as numbers, arrays as tables. A nil inside
 * an array becomes `false` (as in Redis's own Lua scripting), so `#t` and `ipairs` see every element;
 * an error inside an array (EXEC) becomes its message.
 */
function pushReply(L: LuaState, reply: unknown, depth = 0): number {
  if (reply === null || reply === undefined) {
    if (depth > 0) lua_pushboolean(L, false);
    else lua_pushnil(L);
  } else if (reply instanceof Uint8Array) {
    lua_pushstring(L, reply);
  } else if (typeof reply === 'number') {
    lua_pushnumber(L, reply);
  } else if (typeof reply === 'string') {
    lua_pushstring(L, Buffer.from(reply));
  } else if (reply instanceof Error) {
    lua_pushstring(L, Buffer.from(reply.message));
  } else if (Array.isArray(reply)) {
    luaL_checkstack(L, 2, 'redis reply too deep');
    lua_createtable(L, reply.length, 0);
    reply.forEach((item, i) => {
      pushReply(L, item, depth + 1);
      lua_rawseti(L, -2, i + 1);
    });
  } else {
    lua_pushstring(L, Buffer.from(String(reply)));
  }
  return 1;
}

/**
 * A reply with more than maxItems elements (an `LRANGE key 0 -1` of a million) gives `nil, err`:
 * building its tables would hold the node for seconds. So does one whose strings add up to more than
 * maxStringSize: as Lua strings they would sit in the state, and every script may fetch one at once.
 */
export function pushCheckedReply(L: LuaState, reply: unknown): number {
  const { maxItems, maxStringSize } = stateLimits(L);
  if (replyTotal(reply, maxItems, element) > maxItems) return pushNilError(L, `reply has more than ${maxItems} elements (the maxItems limit)`);
  if (replyTotal(reply, maxStringSize, stringBytes) > maxStringSize) return pushNilError(L, `reply is larger than ${maxStringSize} bytes (the maxStringSize limit)`);
  return pushReply(L, reply);
}

/**
 * A reply's total by `own` (what each value weighs by itself, an array without its items), nested
 * arrays included, counted up to just past `max`.
 */
function replyTotal(reply: unknown, max: number, own: (value: unknown) => number): number {
  let total = own(reply);
  if (!Array.isArray(reply)) return total;
  for (const item of reply) {
    total += replyTotal(item, max - total, own);
    if (total > max) break;
  }
  return total;
}

/** Every value and array is one element. */
const element = (): number => 1;

/** The bytes of a string; none for anything else. */
const stringBytes = (value: unknown): number =>
  value instanceof Uint8Array ? value.byteLength : typeof value === 'string' ? value.length : 0;

/** `redis:command(cmd, ...)` → `result, err`; a Redis error reply is an `err` too. */
function command<Owner>(vm: LuaVM<Owner>): LuaFunction {
  return (L) => {
    const client = self(L);
    const name = checkJsString(L, 2);
    const args: Array<Buffer | string> = [];
    for (let i = 3, n = lua_gettop(L); i <= n; i++) args.push(commandArg(L, i));
    return settle(vm, L, client.command(name, args), pushCheckedReply);
  };
}

/** What `mix.redis` needs of its host (MixHost has it): the named connections, none if absent. */
export interface RedisHost {
  readonly redis?: LuaRedisPool;
}

/** `mix.redis.connection(name)` → `redis, err`. */
function connection(host: RedisHost): LuaFunction {
  return (L) => {
    const name = checkJsString(L, 1);
    const client = host.redis?.get(name) ?? null;
    if (!client) return pushNilError(L, `redis connection "${name}" is not configured (engine.luavm.redis[].name)`);
    (lua_newuserdata(L, 0) as { client: LuaRedisClient }).client = client;
    luaL_setmetatable(L, REDIS);
    return 1;
  };
}

/**
 * Pushes the `mix.redis` table (CONNMIX docs, lua-api) and registers the metatable of its connection objects.
 * Waiting for Redis suspends the calling hook only.
 */
export function pushRedisModule<Owner>(vm: LuaVM<Owner>, host: RedisHost): void {
  const L = vm.L;
  luaL_newmetatable(L, REDIS);
  luaL_setfuncs(L, {
    command: command(vm),
    __tostring: (L: LuaState) => {
      lua_pushstring(L, Buffer.from(`redis: ${self(L).config.name}`));
      return 1;
    },
  }, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, K('__index'));
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_setfuncs(L, { connection: connection(host) }, 0);
}
