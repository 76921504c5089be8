import { lua, lauxlib, luaToJsString, type LuaFunction } from '../fengari';
import type { LuaVM } from '../vm';
import { pushNilError } from '../vm';
import { luaToJson, JsonEncodeError } from './utils';
import type { MixHost, ScriptConnection } from './host';

const { LUA_TTABLE, lua_type, lua_pushnumber, lua_settop, lua_gettop } = lua;
const { luaL_checklstring, luaL_argerror } = lauxlib;

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
    if (lua_type(L, 2) === LUA_TTABLE) {
      const top = lua_gettop(L);
      try {
        dataJson = luaToJson(L, 2);
      } catch (error) {
        lua_settop(L, top);
        if (error instanceof JsonEncodeError) return pushNilError(L, `queue.push: ${error.message}`);
        throw error;
      }
    } else {
      dataJson = JSON.stringify(luaToJsString(luaL_checklstring(L, 2)));
    }
    try {
      lua_pushnumber(L, host.queuePush({ topic, dataJson, clientId: vm.current?.clientId ?? '' }));
      return 1;
    } catch (error) {
      return pushNilError(L, (error as Error).message);
    }
  };
}
