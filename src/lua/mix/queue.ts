import { lua, lauxlib, checkJsString, type LuaFunction, type LuaState } from '../fengari/index';
import type { LuaVM } from '../vm';
import { pushNilError } from '../vm';
import { luaToJson, JsonEncodeError } from './json';
import type { MixHost, ScriptConnection } from './host';
import type { QueueItem } from '../../queue/memory-queue';

const { LUA_TTABLE, lua_type, lua_pushnumber, lua_pushboolean, lua_settop, lua_gettop } = lua;
const { luaL_checknumber, luaL_argerror } = lauxlib;

/**
 * `mix.queue.push(topic, data)` → `n, err`: queues `data` (a string, or a table sent as a JSON object)
 * for the backends consuming `topic` through `/ws/v1`, tagged with the current connection's client_id.
 * `n` is how many items of the topic wait afterwards; a full topic or too many topics give `nil, err`.
 */
export function queuePush(vm: LuaVM<ScriptConnection>, host: MixHost): LuaFunction {
  return (L) => {
    const item = queueItemArgs(L, vm, 'queue.push', 'topic');
    if (typeof item === 'number') return item;
    try {
      lua_pushnumber(L, host.queuePush(item));
      return 1;
    } catch (error) {
      return pushNilError(L, (error as Error).message);
    }
  };
}

/**
 * The item a push's arguments `(name, data)` make, from the running connection: the name must not be
 * empty (an argument error naming it `noun`), and `data` is JSON text (see queueDataJson). Data that
 * cannot be JSON gives `nil, err` instead: the count of values pushed is returned then.
 */
export function queueItemArgs(L: LuaState, vm: LuaVM<ScriptConnection>, fn: string, noun: string): QueueItem | number {
  const topic = checkJsString(L, 1);
  if (topic.length === 0) return luaL_argerror(L, 1, Buffer.from(`${noun} must not be empty`));
  try {
    return { topic, dataJson: queueDataJson(L, 2), clientId: vm.current?.clientId ?? '' };
  } catch (error) {
    if (error instanceof JsonEncodeError) return pushNilError(L, `${fn}: ${error.message}`);
    throw error;
  }
}

/** The JSON text of a queued item's data at `index`: a table as JSON, anything else as a string. */
function queueDataJson(L: LuaState, index: number): string {
  if (lua_type(L, index) !== LUA_TTABLE) return JSON.stringify(checkJsString(L, index));
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
    const topic = checkJsString(L, 1);
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
