import { lua, lauxlib, type LuaFunction, type LuaState } from '../fengari/index';
import { pushNilError, type LuaVM } from '../vm';
import type { MixHost, ScriptConnection } from './host';
import { queueItemArgs } from './queue';
import { queueItemJson } from '../../queue/memory-queue';
import { commandArg, pushCheckedReply } from './redis';
import { settle } from './settle';

const { lua_isnoneornil } = lua;
const { luaL_checklstring, luaL_checknumber, luaL_setfuncs } = lauxlib;

/**
 * CONNMIX v1.0.1's `mix.redis` functions (its Lua API page from May to August 2022), on the connection
 * named `default` (the one a v1.0.1 yaml's `engine.luavm.redis` mapping defines):
 * `push(queue, data)` → `n, err` (LPUSH of a queue item, which laravel-chat's ChatRds.php BRPOPs and
 * reads as the PHP SDK's `Client::parse` does: `{"n": node_id, "c": client_id, "t": queue, "d": data}`),
 * `llen(key)`, `set(key, val[, expire])`, `get(key)`, `incr(key[, num])` and `decr(key[, num])`, each
 * `reply, err`. Added to the `mix.redis` table on top of the stack.
 */
export function addRedisV101(vm: LuaVM<ScriptConnection>, host: MixHost): void {
  const run = (L: LuaState, name: string, args: Array<Buffer | string>): number => {
    const client = host.redis?.get('default') ?? null;
    if (!client) return pushNilError(L, 'redis connection "default" is not configured (engine.luavm.redis)');
    return settle(vm, L, client.command(name, args), pushCheckedReply);
  };
  const key = (L: LuaState): Buffer | string => {
    luaL_checklstring(L, 1);
    return commandArg(L, 1);
  };
  const by = (L: LuaState): string => (lua_isnoneornil(L, 2) ? '1' : String(luaL_checknumber(L, 2)));
  const functions: Record<string, LuaFunction> = {
    push: (L) => {
      const item = queueItemArgs(L, vm, 'redis.push', 'queue');
      if (typeof item === 'number') return item;
      return run(L, 'lpush', [item.topic, queueItemJson(host.nodeId ?? '', item)]);
    },
    llen: (L) => run(L, 'llen', [key(L)]),
    get: (L) => run(L, 'get', [key(L)]),
    set: (L) => {
      const args = [key(L), commandArg(L, 2)];
      if (!lua_isnoneornil(L, 3)) {
        const expire = luaL_checknumber(L, 3);
        if (expire > 0) args.push('EX', String(Math.ceil(expire)));
      }
      return run(L, 'set', args);
    },
    incr: (L) => run(L, 'incrby', [key(L), by(L)]),
    decr: (L) => run(L, 'decrby', [key(L), by(L)]),
  };
  luaL_setfuncs(vm.L, functions, 0);
}
