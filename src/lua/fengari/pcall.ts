import { lua, lauxlib, type LuaState } from './index';
import { threadOf } from './internals';

const { LUA_OK, LUA_YIELD, LUA_MULTRET, LUA_TFUNCTION, lua_pushboolean, lua_pushvalue, lua_gettop, lua_insert,
  lua_rotate, lua_pcallk } = lua;
const { luaL_checkany, luaL_checktype } = lauxlib;

/** lstate.js CIST_OAH: the bit of a CallInfo that remembers "hooks were allowed". */
const CIST_OAH = 1;

/**
 * `pcall` and `xpcall` as in Fengari's base library, plus one fix. Inside a coroutine Fengari's
 * `lua_pcallk` fails to record that hooks were allowed (`callstatus &= ~CIST_OAH | allowhook` never sets
 * the bit), so once a pcall catches an error the coroutine runs with hooks off for good: the budget hook
 * would never fire again and `while true do pcall(error) end` would run forever. Marking the bit first
 * restores PUC Lua's behaviour.
 */
function markHooksAllowed(L: LuaState): void {
  const state = threadOf(L);
  if (state.allowhook) state.ci.callstatus |= CIST_OAH;
}

function finishpcall(L: LuaState, status: number, extra: number): number {
  if (status !== LUA_OK && status !== LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - extra;
}

export function pcall(L: LuaState): number {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  markHooksAllowed(L);
  const status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finishpcall);
  return finishpcall(L, status, 0);
}

export function xpcall(L: LuaState): number {
  const n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  markHooksAllowed(L);
  const status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finishpcall);
  return finishpcall(L, status, 2);
}
