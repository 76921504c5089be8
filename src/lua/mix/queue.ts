import { lua, lauxlib, luaToJsString, type LuaFunction, type LuaState } from '../fengari/index';
import type { LuaVM } from '../vm';
import { pushNilError } from '../vm';
import { luaToJson, JsonEncodeError } from './json';
import type { MixHost, ScriptConnection } from './host';

const { LUA_TTABLE, lua_type, lua_pushnumber, lua_pushboolean, lua_settop, lua_gettop } = lua;
const { luaL_checklstring, luaL_checknumber, luaL_argerror } = lauxlib;

/**
 * `mix.queue.push(topic, data)` → `n, err`: queues `data` (a string, or a table sent as a JSON object)
 * for the backends consuming `topic` through `/ws/v1`, tagged with the current connection's client_id.
 * `n` is how many items of the topic wait afterwards; a full topic or too many topics give `nil, err`.
 */
export function queuePush(vm: LuaVM<ScriptConnection>, host: MixHost): LuaFunction {
  return (L) => {
    const topic = luaToJsString(luaL_checklstring(L, 1));
    if (topic.length === 0) return luaL_argerror(L, 1, Buffer.from('topic must not be empty'));
    let dataJson: string;
    try {
      dataJson = queueDataJson(L, 2);
    } catch (error) {
      if (error instanceof JsonEncodeError) return pushNilError(L, `queue.push: ${error.message}`);
      throw error;
    }
    try {
      lua_pushnumber(L, host.queuePush({ topic, dataJson, clientId: vm.current?.clientId ?? '' }));
      return 1;
    } catch (error) {
      return pushNilError(L, (error as Error).message);
    }
  };
}

/** The JSON text of a queued item's data at `index`: a table as JSON, anything else as a string. */
export function queueDataJson(L: LuaState, index: number): string {
  if (lua_type(L, index) !== LUA_TTABLE) return JSON.stringify(luaToJsString(luaL_checklstring(L, index)));
  const top = lua_gettop(L);
  try {
    return luaToJson(L, index);
  } finally {
    lua_settop(L, top);
  }
}

/**
 * `mix.queue.new(name, size)` → `true` or `nil, err` (CONNMIX v1.0.1, called from `init()`): at most
 * `size` items of topic `name` may wait for a consumer (never more than `engine.luavm.queue.topicSize`).
 * Pushing needs no `new` here: a topic it never named holds up to `topicSize` items.
 */
export function queueNew(host: MixHost): LuaFunction {
  return (L) => {
    const topic = luaToJsString(luaL_checklstring(L, 1));
    if (topic.length === 0) return luaL_argerror(L, 1, Buffer.from('queue name must not be empty'));
    const size = luaL_checknumber(L, 2);
    if (!Number.isInteger(size) || size < 1) return luaL_argerror(L, 2, Buffer.from('size must be a positive integer'));
    try {
      host.queueNew(topic, size);
    } catch (error) {
      return pushNilError(L, (error as Error).message);
    }
    lua_pushboolean(L, true);
    return 1;
  };
}
