import type { SocketHookSetting } from '../config/schema';
import { lua, K } from '../lua/fengari/index';
import { LuaLoadError, type LuaVM, type PushArgs } from '../lua/vm';
import type { ScriptConnection } from '../lua/mix';
import { pushConn } from '../lua/mix/conn';

const { LUA_TFUNCTION, lua_getglobal, lua_getinfo, lua_type, lua_pop, lua_remove } = lua;

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

/** The optional hook a v1.0.1 entry may define; it runs once, before the server listens. */
export const INIT_HOOK = 'init';

/**
 * The model for a loaded entry: what `servers[].hooks` says, or for `auto` the entry's own choice. Only
 * a v1.0.1 entry's `protocol_input` declares a second parameter (the current model never passes one),
 * so that is what tells them apart.
 */
export function socketHookModel(setting: SocketHookSetting, vm: LuaVM<ScriptConnection>): SocketHookModel {
  if (setting !== 'auto') return setting;
  return declaredParameters(vm, 'protocol_input') >= 2 ? 'v1.0.1' : 'current';
}

/** How many named parameters global function `name` declares (0 if it is not a Lua function). */
function declaredParameters(vm: LuaVM<ScriptConnection>, name: string): number {
  const L = vm.L;
  lua_getglobal(L, K(name));
  if (lua_type(L, -1) !== LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 0;
  }
  const info = new lua.lua_Debug();
  lua_getinfo(L, K('>u'), info); // pops the function
  return info.nparams as number;
}

/**
 * The v1.0.1 arguments of `hook` from the current ones `args` pushes: the client id that leads
 * `on_connect` and `on_close` is dropped, and the connection goes last.
 */
export function v101Args(vm: LuaVM<ScriptConnection>, conn: ScriptConnection, hook: string, args: PushArgs): PushArgs {
  const leadingClientId = hook === 'on_connect' || hook === 'on_close';
  return (L) => {
    let count = args(L);
    if (leadingClientId) {
      lua_remove(L, -count);
      count--;
    }
    pushConn(L, vm, conn);
    return count + 1;
  };
}

/** Runs the entry's `init()` if it defines one (it may wait, like any hook); a failure stops the start. */
export function runInit(vm: LuaVM<ScriptConnection>): Promise<void> {
  return new Promise((resolve, reject) => {
    vm.call(null, INIT_HOOK, () => 0, (error) => {
      if (error) reject(new LuaLoadError(`${vm.chunkName}: init() failed: ${error.traceback}`));
      else resolve();
    });
  });
}
