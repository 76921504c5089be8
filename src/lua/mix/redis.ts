import Redis from 'ioredis';
import { lua, lauxlib, K, bytesView, luaToJsString, type LuaState, type LuaFunction } from '../fengari/index';
import { pushNilError, type LuaVM } from '../vm';
import type { LuaRedisConfig } from '../../config/schema';
import type { Logger } from '../../log';
import { settle } from './settle';
import { stateLimits } from '../limits';

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
 */
export class LuaRedisClient {
  private readonly client: Redis;
  private lastError = '';

  constructor(readonly config: LuaRedisConfig, log: Logger) {
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
  }

  /** Runs one command; resolves to the raw reply (bulk strings as Buffers), rejects with a readable error. */
  command(name: string, args: Array<Buffer | string>): Promise<unknown> {
    if (SHARED_STATE_COMMANDS.has(name.toLowerCase())) {
      return Promise.reject(new Error(`redis: ${name} is not allowed on a connection shared by all scripts`));
    }
    if (this.client.status === 'reconnecting') return Promise.reject(this.unreachable());
    return this.client.callBuffer(name, ...args).catch((error: Error) => {
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

  constructor(
    private readonly configs: readonly LuaRedisConfig[],
    private readonly log: Logger,
  ) {}

  /** The client for `name`, or null if no `engine.luavm.redis[]` entry has that name (or the pool is closed). */
  get(name: string): LuaRedisClient | null {
    if (this.closed) return null;
    let client = this.clients.get(name);
    if (!client) {
      const config = this.configs.find((entry) => entry.name === name);
      if (!config) return null;
      client = new LuaRedisClient(config, this.log);
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
function commandArg(L: LuaState, index: number): Buffer | string {
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
 * building its tables would hold the node for seconds.
 */
function pushCheckedReply(L: LuaState, reply: unknown): number {
  const maxItems = stateLimits(L).maxItems;
  if (replyElements(reply, maxItems) > maxItems) return pushNilError(L, `reply has more than ${maxItems} elements (the maxItems limit)`);
  return pushReply(L, reply);
}

/** Elements of a reply, nested arrays included, counted up to just past `max`. */
function replyElements(reply: unknown, max: number): number {
  if (!Array.isArray(reply)) return 1;
  let count = 1;
  for (const item of reply) {
    count += replyElements(item, max - count);
    if (count > max) break;
  }
  return count;
}

/** `redis:command(cmd, ...)` → `result, err`; a Redis error reply is an `err` too. */
function command<Owner>(vm: LuaVM<Owner>): LuaFunction {
  return (L) => {
    const client = self(L);
    const name = luaToJsString(luaL_checklstring(L, 2));
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
    const name = luaToJsString(luaL_checklstring(L, 1));
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
