import { lua, lauxlib, K, raise, checkJsString, holdTop, pushHeld, heldUserdata, type LuaState, type LuaFunction } from '../fengari/index';
import { pushValue, toJs, ConversionError, type LuaValue } from '../values';
import type { LuaVM } from '../vm';
import type { MixHost, ScriptConnection } from './host';
import { settle, checkMessageType } from './settle';
import { WaitTimeoutError, ConnectionContext, ContextFullError } from '../../session/context';
import { stateLimits, markUntimed } from '../limits';

const { lua_pushstring, lua_pushnil, lua_gettop, lua_settop, lua_newuserdata, lua_createtable, lua_setfield, lua_pushvalue,
  lua_pop, lua_touserdata } = lua;
const { luaL_checkudata, luaL_checklstring, luaL_newmetatable, luaL_setfuncs, luaL_setmetatable, luaL_checktype, luaL_checkany,
  luaL_argerror } = lauxlib;

/** The metatable name of connection userdata (error messages show it: "connmix.conn expected"). */
const CONN = K('connmix.conn');

/**
 * The connection a method is called on. Its userdata is known by the mark on its block, which only
 * pushConn sets: luaL_checkudata's look-up of the metatable in the registry was a fifth of a
 * `conn:send`, and a WeakSet of the blocks cost a hash look-up per call and an ephemeron per
 * connection for the young-generation collector. It still gives the error for anything else
 * ("connmix.conn expected").
 */
function self(L: LuaState): ScriptConnection {
  const block = lua_touserdata(L, 1) as Partial<UserdataBlock> | null;
  if (block?.[CONN_BLOCK] === true) return block.conn!;
  return (luaL_checkudata(L, 1, CONN) as UserdataBlock).conn;
}

function stringArgs(L: LuaState, first: number): string[] {
  const values: string[] = [];
  for (let i = first, n = lua_gettop(L); i <= n; i++) values.push(checkJsString(L, i));
  return values;
}

function pushError(L: LuaState, error: string | null): number {
  if (error === null) lua_pushnil(L);
  else lua_pushstring(L, Buffer.from(error));
  return 1;
}

function pushContextValue(L: LuaState, value: LuaValue): number {
  pushValue(L, value);
  return 1;
}

/** Runs a context write; one past the context's limit is a Lua error, as the other limits' are. */
function applyContext(L: LuaState, write: () => void): void {
  try {
    write();
  } catch (error) {
    if (error instanceof ContextFullError) raise(L, error.message);
    throw error;
  }
}

/** Reads a Lua value to store in a context, raising a Lua argument error if it cannot be stored. */
function contextValue(L: LuaState, index: number): LuaValue {
  const top = lua_gettop(L);
  try {
    return toJs(L, index);
  } catch (error) {
    if (!(error instanceof ConversionError)) throw error;
    // toJs stops midway through nested tables, leaving their keys and values on the stack.
    lua_settop(L, top);
    return luaL_argerror(L, index, Buffer.from(error.message)) as never;
  }
}

/**
 * Registers the connection metatable: the methods of CONNMIX docs, lua-api, on userdata that points at a
 * JS connection. Subscribing may wait for the broker and `wait_context_value` for the context; both
 * suspend the calling hook only (its connection's later events queue behind it).
 */
export function registerConnType(vm: LuaVM<ScriptConnection>, host: MixHost): void {
  // Connections whose context a script wrote: their values count against the state's memory budget.
  const written = new Set<ScriptConnection>();
  vm.countAlso(() => {
    let bytes = 0;
    for (const conn of written) bytes += conn.context.bytes;
    return bytes;
  });
  const wrote = (conn: ScriptConnection): void => {
    if (isStandIn(conn)) return;
    written.add(conn);
    writtenBy.set(conn, written);
  };
  const methods: Record<string, LuaFunction> = {
    client_id: markUntimed((L) => {
      lua_pushstring(L, Buffer.from(self(L).clientId));
      return 1;
    }),
    remote_addr: (L) => {
      lua_pushstring(L, Buffer.from(self(L).remoteAddr));
      return 1;
    },
    context: (L) => {
      const context = self(L).context;
      lua_createtable(L, 0, context.size);
      for (const [key, value] of context.entries()) {
        pushValue(L, value);
        lua_setfield(L, -2, Buffer.from(key));
      }
      return 1;
    },
    context_value: (L) => {
      const conn = self(L);
      pushValue(L, conn.context.get(checkJsString(L, 2)) ?? null);
      return 1;
    },
    wait_context_value: (L) => {
      const conn = self(L);
      const key = checkJsString(L, 2);
      const value = conn.context.get(key);
      if (value !== undefined) return pushContextValue(L, value);
      const seconds = stateLimits(L).waitTimeout;
      const waited = conn.context.waitFor(key, seconds * 1000).catch((error: Error) => {
        if (error instanceof WaitTimeoutError) host.log.warn('wait_context_value timed out', { client_id: conn.clientId, key, seconds });
        throw error;
      });
      return settle(vm, L, waited, pushContextValue);
    },
    set_context: (L) => {
      const conn = self(L);
      luaL_checktype(L, 2, lua.LUA_TTABLE);
      if (isStandIn(conn)) return 0;
      applyContext(L, () => conn.context.apply('set_context', contextValue(L, 2)));
      wrote(conn);
      return 0;
    },
    set_context_value: (L) => {
      const conn = self(L);
      const key = checkJsString(L, 2);
      luaL_checkany(L, 3);
      if (isStandIn(conn)) return 0;
      applyContext(L, () => conn.context.apply('set_context_value', key, contextValue(L, 3)));
      wrote(conn);
      return 0;
    },
    // Not timed (nor is send): the hub's work is constant per channel, and a call of an unpacked list
    // of channels is charged as bulk instructions. A loop of sends fills the connection's buffer,
    // which drops it, long before its copies add up to a budget.
    subscribe: markUntimed((L) => {
      const conn = self(L);
      const channels = stringArgs(L, 2);
      if (!conn.open) return pushError(L, 'connection closed');
      return settle(vm, L, host.subscribe(conn, channels), pushError);
    }),
    unsubscribe: markUntimed((L) => {
      const conn = self(L);
      if (isStandIn(conn)) return pushError(L, null);
      return settle(vm, L, host.unsubscribe(conn, stringArgs(L, 2)), pushError);
    }),
    send: markUntimed((L) => {
      const conn = self(L);
      const data: Uint8Array = luaL_checklstring(L, 2); // framed (copied) by the connection: no Buffer view needed
      const binary = checkMessageType(L, 3);
      return pushError(L, conn.send(data, binary) ? null : 'send failed: connection closed or its buffer is full');
    }),
    close: (L) => {
      self(L).close();
      return pushError(L, null);
    },
    clear_buffer: (L) => {
      const conn = self(L);
      if (!conn.clearBuffer) return raise(L, 'conn:clear_buffer() is for protocol: socket connections');
      conn.clearBuffer();
      return 0;
    },
    __tostring: (L) => {
      lua_pushstring(L, Buffer.from(`conn: ${self(L).clientId}`));
      return 1;
    },
  };
  const L = vm.L;
  luaL_newmetatable(L, CONN);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, K('__index'));
  lua_pop(L, 1);
}

/**
 * Pushes the connection's userdata, creating it on first use (one per connection and state). A call
 * that still runs in a state since replaced (vm.ts resetState) gets one of that state's own, not kept:
 * the methods check their self against the metatable of the state they run in.
 */
export function pushConn(L: LuaState, vm: LuaVM<ScriptConnection>, conn: ScriptConnection): void {
  const current = vm.inCurrentState(L);
  if (conn.luaValue !== null && conn.luaGeneration === vm.generation && current) {
    pushHeld(L, conn.luaValue);
    return;
  }
  const block = lua_newuserdata(L, 0) as UserdataBlock;
  block.conn = conn;
  block[CONN_BLOCK] = true;
  luaL_setmetatable(L, CONN);
  if (!current) return;
  lua_pushvalue(L, -1);
  conn.luaValue = holdTop(L);
  conn.luaGeneration = vm.generation;
}

/** The set of written contexts (of its VM) each connection is in. */
const writtenBy = new WeakMap<ScriptConnection, Set<ScriptConnection>>();

/** The mark of the blocks pushConn makes, in any state: only these are connections' userdata. */
const CONN_BLOCK = Symbol('connmix.conn block');

/** What a connection's userdata holds: the connection, until releaseConn swaps in a stand-in. */
interface UserdataBlock {
  conn: ScriptConnection;
  [CONN_BLOCK]: true;
}

/** The mark of a released connection's stand-in (see releaseConn). */
const STAND_IN = Symbol('connmix.conn stand-in');

function isStandIn(conn: ScriptConnection): boolean {
  return (conn as { [STAND_IN]?: true })[STAND_IN] === true;
}

/**
 * A closed connection's identity without the connection: what a script that kept a connection's
 * userdata after its on_close still reaches. Sends fail, context writes are ignored, waits fail at once.
 */
function standIn(conn: ScriptConnection): ScriptConnection {
  const context = new ConnectionContext();
  context.close('connection closed');
  const closed: ScriptConnection & { [STAND_IN]: true } = {
    [STAND_IN]: true,
    clientId: conn.clientId,
    remoteAddr: conn.remoteAddr,
    context,
    open: false,
    luaValue: null,
    luaGeneration: 0,
    send: () => false,
    close: () => undefined,
    ...(conn.clearBuffer ? { clearBuffer: () => undefined } : {}),
  };
  return closed;
}

/**
 * Lets the connection go once its last hook has run. A script may still hold its userdata (in a
 * global table): the userdata then points at a stand-in, so it no longer keeps the connection (its
 * socket objects, about 4 KiB) nor its context values, which the memory estimate counted as a
 * userdata of 128 bytes.
 */
export function releaseConn(conn: ScriptConnection): void {
  const block = conn.luaValue && (heldUserdata(conn.luaValue) as UserdataBlock | null);
  if (block) block.conn = standIn(conn);
  conn.luaValue = null;
  conn.context.clear();
  writtenBy.get(conn)?.delete(conn);
  writtenBy.delete(conn);
}
