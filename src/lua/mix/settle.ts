import { lua, lauxlib, checkJsString, type LuaState } from '../fengari/index';
import type { LuaVM } from '../vm';
import type { MaybePromise } from '../../wire/maybe-promise';

const { lua_isnoneornil, lua_pushnil, lua_pushstring } = lua;
const { luaL_argerror } = lauxlib;

/**
 * Pushes a host answer that may be a promise: a plain value is pushed at once, a promise suspends the
 * calling hook until it settles. A rejected promise yields `nil, err` (or what `pushFailure` pushes).
 * `cancel` ends the work early when the connection closes while the hook waits (see LuaVM.release).
 */
export function settle<T, Owner>(
  vm: LuaVM<Owner>,
  L: LuaState,
  answer: MaybePromise<T>,
  push: (L: LuaState, value: T) => number,
  pushFailure: (L: LuaState, error: Error) => number = pushNilMessage,
  cancel?: () => void,
): number {
  if (answer instanceof Promise) return vm.suspend(L, answer, push, pushFailure, cancel);
  return push(L, answer);
}

function pushNilMessage(L: LuaState, error: Error): number {
  lua_pushnil(L);
  lua_pushstring(L, Buffer.from(error.message));
  return 2;
}

/** The optional message type argument: `"text"` (default) or `"binary"`. */
export function checkMessageType(L: LuaState, index: number): boolean {
  if (lua_isnoneornil(L, index)) return false;
  const type = checkJsString(L, index);
  if (type === 'text') return false;
  if (type === 'binary') return true;
  return luaL_argerror(L, index, Buffer.from(`type must be "text" or "binary", got "${type}"`));
}
