import type { SocketHookSetting } from '../config/schema';
import { lua, K, bytesView, luaToJsString, setNewTableFields, type LuaState } from './fengari/index';
import { LuaLoadError, type LuaHookError, type LuaVM } from './vm';
import type { ScriptConnection } from './mix';
import { pushConn } from './mix/conn';
import { pushBuffer } from './mix/buffer';

const { LUA_TFUNCTION, LUA_TNUMBER, LUA_TSTRING, LUA_TNIL, LUA_TNONE, lua_pushstring, lua_pushnil, lua_pushboolean,
  lua_createtable, lua_setfield, lua_gettop, lua_type, lua_typename, lua_tonumber, lua_tolstring, lua_settop,
  lua_xmove, lua_getglobal, lua_getinfo, lua_pop } = lua;

/**
 * The business servers' hooks as typed calls: this module is where their arguments become Lua values and
 * their results become JS ones, so the servers never touch the Lua stack. Each call runs in its own
 * coroutine (LuaVM.call) and `done` runs when it finished, possibly later if the hook waits.
 */
export type HookDone = (error: LuaHookError | null) => void;

/** Hooks a `protocol: websocket` entry must define (CONNMIX docs, "websocket" entry). */
export const WEBSOCKET_HOOKS = ['on_handshake', 'on_message', 'on_close'] as const;

/**
 * CONNMIX's docs of August 5 to September 8, 2022 named the websocket entry's first hook
 * `on_connect(client_id, headers)`: an entry of then, without `on_handshake`, has it called in its place.
 */
export const WEBSOCKET_HOOK_ALIASES: Readonly<Record<string, string>> = { on_handshake: 'on_connect' };

/** Hooks a `protocol: socket` entry must define; `on_handshake` is the protocol library's business. */
export const SOCKET_HOOKS = ['on_connect', 'on_close', 'protocol_input', 'protocol_decode', 'protocol_encode', 'on_message'] as const;

/** The optional hook a v1.0.1 socket entry may define; it runs once, before the server listens. */
export const INIT_HOOK = 'init';

const TYPE = K('type');
const DATA = K('data');
const FINISH = K('finish');
const MESSAGE_FIELDS = [TYPE, DATA, FINISH];
const TEXT = K('text');
const BINARY = K('binary');

/** The hooks of a `protocol: websocket` entry. Methods are bound, so a server may pass them around as values. */
export class WebSocketHooks {
  constructor(private readonly vm: LuaVM<ScriptConnection>) {}

  /** `on_handshake(client_id, headers, server)`: both tables map names to strings. */
  readonly onHandshake = (conn: ScriptConnection, headers: Record<string, string>, server: Record<string, string>,
    done: HookDone): void => {
    const clientId = Buffer.from(conn.clientId);
    this.vm.call(conn, 'on_handshake', (L) => {
      lua_pushstring(L, clientId);
      pushStringTable(L, headers);
      pushStringTable(L, server);
      return 3;
    }, done);
  };

  /** `on_message(msg)`, `msg = {type = "text"|"binary", data = <bytes>, finish = true}`. */
  readonly onMessage = (conn: ScriptConnection, data: Buffer, isBinary: boolean, done: HookDone): void => {
    this.vm.call(conn, 'on_message', (L) => pushMessage(L, data, isBinary), done);
  };

  /** `on_close(client_id, err)`: `err` nil for a clean close. */
  readonly onClose = (conn: ScriptConnection, error: string | null, done: HookDone): void => {
    this.vm.call(conn, 'on_close', (L) => pushClose(L, conn.clientId, error), done);
  };
}

/**
 * How a `protocol: socket` server calls its entry's hooks:
 * - `current`: `on_connect(client_id)`, `on_close(client_id, err)`, `protocol_input(buf)`,
 *   `protocol_decode(str)`, `protocol_encode(str)`, `on_message(msg)`; scripts get the connection from
 *   `mix.socket.tcp()`.
 * - `v1.0.1` (CONNMIX v1.0.1, what connmix/protocols' websocket.lua and laravel-chat are written for):
 *   the same arguments without the client id, plus the connection last (`on_connect(conn)`,
 *   `on_close(err, conn)`, `protocol_input(buf, conn)`, ...), and `init()` once when the server starts.
 */
export type SocketHookModel = 'current' | 'v1.0.1';

/** What protocol_decode returned: a value waiting on its finished coroutine, for on_message. */
export type DecodedMessage = { readonly __decodedMessage: unique symbol };

/** protocol_input's answer as a number, or why it is not one. */
export type InputResult = number | string;

/** protocol_encode's answer: the bytes to write, or why there are none. */
export type EncodeResult = Buffer | string;

/** The hooks of a `protocol: socket` entry, in the entry's model (decided by `resolveModel` at start). */
export class SocketHooks {
  private v101 = false;

  constructor(private readonly vm: LuaVM<ScriptConnection>) {}

  get model(): SocketHookModel {
    return this.v101 ? 'v1.0.1' : 'current';
  }

  /**
   * Settles the model for the loaded entry: what `servers[].hooks` says, or for `auto` the entry's own
   * choice. Only a v1.0.1 entry's `protocol_input` declares a second parameter (the current model never
   * passes one), so that is what tells them apart.
   */
  resolveModel(setting: SocketHookSetting): SocketHookModel {
    const model = setting !== 'auto' ? setting : declaredParameters(this.vm.L, 'protocol_input') >= 2 ? 'v1.0.1' : 'current';
    this.v101 = model === 'v1.0.1';
    return model;
  }

  /** Runs the entry's `init()` if it defines one (it may wait, like any hook); a failure stops the start. */
  init(): Promise<void> {
    const vm = this.vm;
    return new Promise((resolve, reject) => {
      vm.call(null, INIT_HOOK, () => 0, (error) => {
        if (error) reject(new LuaLoadError(`${vm.chunkName}: init() failed: ${error.traceback}`));
        else resolve();
      });
    });
  }

  /** `on_connect(client_id)`; v1.0.1 `on_connect(conn)`. */
  readonly onConnect = (conn: ScriptConnection, done: HookDone): void => {
    this.vm.call(conn, 'on_connect', (L) => {
      if (!this.v101) {
        lua_pushstring(L, Buffer.from(conn.clientId));
        return 1;
      }
      pushConn(L, this.vm, conn);
      return 1;
    }, done);
  };

  /** `on_close(client_id, err)`; v1.0.1 `on_close(err, conn)`. `err` nil for a clean end. */
  readonly onClose = (conn: ScriptConnection, error: string | null, done: HookDone): void => {
    this.vm.call(conn, 'on_close', (L) => {
      if (!this.v101) return pushClose(L, conn.clientId, error);
      if (error === null) lua_pushnil(L);
      else lua_pushstring(L, Buffer.from(error));
      pushConn(L, this.vm, conn);
      return 2;
    }, done);
  };

  /** `protocol_input(buf)`: its answer as a number (range unchecked), or why it is not a number. */
  protocolInput(conn: ScriptConnection, input: Buffer, done: (error: LuaHookError | null, result: InputResult) => void): void {
    this.callForResults(conn, 'protocol_input', input, (error, thread) => {
      if (error) return done(error, '');
      const type = resultType(thread);
      if (!thread || type !== LUA_TNUMBER) return done(null, `protocol_input must return an integer, got ${typeName(thread, type)}`);
      done(null, lua_tonumber(thread, 1) as number);
    });
  }

  /** `protocol_decode(str)`: its first result, or null for nil or nothing. */
  protocolDecode(conn: ScriptConnection, packet: Buffer, done: (error: LuaHookError | null, decoded: DecodedMessage | null) => void): void {
    this.callForResults(conn, 'protocol_decode', packet, (error, thread) => {
      if (error) return done(error, null);
      const type = resultType(thread);
      if (type !== LUA_TNONE && type !== LUA_TNIL) return done(null, thread as unknown as DecodedMessage);
      // No message: nothing will read the coroutine, so it can serve the next call.
      if (thread) this.vm.releaseThread(thread);
      done(null, null);
    }, true);
  }

  /** `on_message(msg)` with what protocol_decode returned; its coroutine is handed back once the value left it. */
  onMessage(conn: ScriptConnection, decoded: DecodedMessage, done: HookDone): void {
    const from = decoded as unknown as LuaState;
    this.vm.call(conn, 'on_message', (L) => {
      lua_settop(from, 1);
      lua_xmove(from, L, 1);
      this.vm.releaseThread(from);
      return this.connLast(L, conn, 1);
    }, done);
  }

  /**
   * `protocol_encode(str)`: a non-empty string to write, or why there is none. `done` runs at once unless
   * the hook waits (the caller decides what a wait means).
   */
  protocolEncode(conn: ScriptConnection, payload: Buffer, done: (error: LuaHookError | null, result: EncodeResult) => void): void {
    this.callForResults(conn, 'protocol_encode', payload, (error, thread) => {
      if (error) return done(error, '');
      const type = resultType(thread);
      const bytes = thread && type === LUA_TSTRING ? bytesView(lua_tolstring(thread, 1)!) : null;
      if (bytes && bytes.length > 0) done(null, bytes);
      else done(null, bytes ? 'empty string' : typeName(thread, type));
    });
  }

  /**
   * Calls a protocol hook with `bytes` (protocol_input gets them as a buffer object, the others as a
   * string) and hands `done` the finished coroutine, whose stack then holds exactly the hook's results
   * (index 1 is the first); null if no call was made. Unless `keepsThread`, `done` must read them at
   * once: the coroutine serves the next call.
   */
  private callForResults(conn: ScriptConnection, hook: string, bytes: Buffer,
    done: (error: LuaHookError | null, thread: LuaState | null) => void, keepsThread = false): void {
    let thread: LuaState | null = null;
    this.vm.call(conn, hook, (L) => {
      thread = L;
      if (hook === 'protocol_input') pushBuffer(L, bytes);
      else lua_pushstring(L, bytes);
      return this.connLast(L, conn, 1);
    }, (error) => done(error, thread), keepsThread);
  }

  /** v1.0.1 passes the connection after the `count` arguments already pushed. */
  private connLast(L: LuaState, conn: ScriptConnection, count: number): number {
    if (!this.v101) return count;
    pushConn(L, this.vm, conn);
    return count + 1;
  }
}

/** `msg = {type = "text"|"binary", data = <bytes>, finish = true}`. */
function pushMessage(L: LuaState, data: Buffer, isBinary: boolean): number {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, isBinary ? BINARY : TEXT);
  lua_pushstring(L, data);
  lua_pushboolean(L, true);
  setNewTableFields(L, MESSAGE_FIELDS);
  return 1;
}

function pushClose(L: LuaState, clientId: string, error: string | null): number {
  lua_pushstring(L, Buffer.from(clientId));
  if (error === null) lua_pushnil(L);
  else lua_pushstring(L, Buffer.from(error));
  return 2;
}

function pushStringTable(L: LuaState, values: Record<string, string>): void {
  const entries = Object.entries(values);
  lua_createtable(L, 0, entries.length);
  for (const [key, value] of entries) {
    lua_pushstring(L, Buffer.from(value));
    lua_setfield(L, -2, Buffer.from(key));
  }
}

/** The type of a finished call's first result (its coroutine's stack holds exactly the results). */
function resultType(thread: LuaState | null): number {
  return thread && lua_gettop(thread) > 0 ? lua_type(thread, 1) : LUA_TNONE;
}

function typeName(L: LuaState | null, type: number): string {
  return L ? luaToJsString(lua_typename(L, type)) : 'no value';
}

/** How many named parameters global function `name` declares (0 if it is not a Lua function). */
function declaredParameters(L: LuaState, name: string): number {
  lua_getglobal(L, K(name));
  if (lua_type(L, -1) !== LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 0;
  }
  const info = new lua.lua_Debug();
  lua_getinfo(L, K('>u'), info); // pops the function
  return info.nparams as number;
}
