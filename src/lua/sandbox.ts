import { pcall, xpcall } from './pcall';
import { lua, lauxlib, lualib, K, raise, luaToJsString, type LuaState, type LuaFunction } from './fengari';

const {
  LUA_REGISTRYINDEX, LUA_TTABLE, LUA_TSTRING, LUA_TNUMBER,
  lua_pop, lua_pushnil, lua_setglobal, lua_getglobal, lua_setfield, lua_getfield, lua_pushjsfunction,
  lua_pushjsclosure, lua_pushvalue, lua_upvalueindex, lua_insert, lua_call, lua_gettop, lua_pushnumber,
  lua_pushstring, lua_newtable, lua_settop, lua_isnoneornil, lua_rawgeti, lua_type, lua_rawlen, lua_tolstring,
} = lua;
const {
  luaL_requiref, luaL_checkinteger, luaL_checklstring, luaL_optlstring, luaL_tolstring,
  luaL_checktype, luaL_optinteger,
} = lauxlib;

/** Limits on what one library call may build, because a single JS-side call cannot be interrupted. */
export interface SandboxLimits {
  /** Largest string `string.rep` and `table.concat` may produce, in bytes. */
  maxStringSize: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { maxStringSize: 16 * 1024 * 1024 };

/**
 * Opens the safe standard libraries and removes every way out of the sandbox: no io, no package
 * search path, no debug, no file loading, no bytecode, no string.dump. `os` keeps only its clock
 * functions, and `print` goes to the host's log.
 */
export function openSandbox(L: LuaState, print: (line: string) => void, limits: SandboxLimits): void {
  for (const [name, open] of [
    ['_G', lualib.luaopen_base],
    ['table', lualib.luaopen_table],
    ['string', lualib.luaopen_string],
    ['math', lualib.luaopen_math],
    ['coroutine', lualib.luaopen_coroutine],
    ['utf8', lualib.luaopen_utf8],
  ] as const) {
    luaL_requiref(L, K(name), open, 1);
    lua_pop(L, 1);
  }
  for (const name of ['dofile', 'loadfile']) {
    lua_pushnil(L);
    lua_setglobal(L, K(name));
  }
  setField(L, 'string', 'dump', null);
  lua_getglobal(L, K('load'));
  lua_setfield(L, LUA_REGISTRYINDEX, STOCK_LOAD);
  setGlobal(L, 'load', textOnlyLoad);
  setGlobal(L, 'collectgarbage', () => 0);
  setGlobal(L, 'pcall', pcall);
  setGlobal(L, 'xpcall', xpcall);
  setGlobal(L, 'print', (L) => {
    const parts: string[] = [];
    for (let i = 1, n = lua_gettop(L); i <= n; i++) {
      parts.push(luaToJsString(luaL_tolstring(L, i)));
      lua_pop(L, 1);
    }
    print(parts.join('\t'));
    return 0;
  });
  openOs(L);
  setField(L, 'string', 'rep', cappedRep(limits.maxStringSize));
  wrapField(L, 'table', 'concat', cappedConcatGuard(limits.maxStringSize));
}

/** Sets `_G[name]` to a JS function, or to nil. */
export function setGlobal(L: LuaState, name: string, fn: LuaFunction | null): void {
  if (fn) lua_pushjsfunction(L, fn);
  else lua_pushnil(L);
  lua_setglobal(L, K(name));
}

/** Sets `_G[table][name]` to a JS function, or to nil. */
export function setField(L: LuaState, table: string, name: string, fn: LuaFunction | null): void {
  lua_getglobal(L, K(table));
  if (fn) lua_pushjsfunction(L, fn);
  else lua_pushnil(L);
  lua_setfield(L, -2, K(name));
  lua_pop(L, 1);
}

/** Replaces `_G[table][name]` by `guard` followed by the original function, called with the same arguments. */
function wrapField(L: LuaState, table: string, name: string, guard: (L: LuaState) => void): void {
  lua_getglobal(L, K(table));
  lua_getfield(L, -1, K(name));
  lua_pushjsclosure(L, (L: LuaState) => {
    guard(L);
    const nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, 1);
    return 1;
  }, 1);
  lua_setfield(L, -2, K(name));
  lua_pop(L, 1);
}

/** Where the stock `load` is kept: a registry field, out of scripts' reach. */
const STOCK_LOAD = K('connmix.load');

/** `load` that refuses precompiled chunks: user code is always text. */
const textOnlyLoad: LuaFunction = (L) => {
  // Forward the caller's arguments with the mode forced to text; an explicit nil env must stay explicit.
  const nargs = lua_gettop(L);
  lua_settop(L, 4);
  lua_getfield(L, LUA_REGISTRYINDEX, STOCK_LOAD);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushstring(L, K('t'));
  if (nargs >= 4) lua_pushvalue(L, 4);
  lua_call(L, nargs >= 4 ? 4 : 3, 2);
  return 2;
};

/** `os` with only its clock functions; `os.time()` is a float so `os.time() * 1000` does not wrap. */
function openOs(L: LuaState): void {
  lua_newtable(L);
  luaL_requiref(L, K('os'), lualib.luaopen_os, 0);
  for (const name of ['clock', 'date', 'difftime']) {
    lua_getfield(L, -1, K(name));
    lua_setfield(L, -3, K(name));
  }
  lua_pop(L, 1);
  lua_pushjsfunction(L, osTime);
  lua_setfield(L, -2, K('time'));
  lua_setglobal(L, K('os'));
}

const osTime: LuaFunction = (L) => {
  if (lua_isnoneornil(L, 1)) {
    lua_pushnumber(L, Math.floor(Date.now() / 1000));
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  const field = (name: string, fallback?: number): number => {
    lua_getfield(L, 1, K(name));
    const value = lua_type(L, -1) === LUA_TNUMBER ? lua.lua_tonumber(L, -1) : fallback;
    lua_pop(L, 1);
    if (value === undefined) return raise(L, `field '${name}' missing in date table`);
    return value;
  };
  const date = new Date(field('year'), field('month') - 1, field('day'), field('hour', 12), field('min', 0), field('sec', 0));
  lua_pushnumber(L, Math.floor(date.getTime() / 1000));
  return 1;
};

/** `string.rep` that refuses to build a string larger than `max` bytes. */
function cappedRep(max: number): LuaFunction {
  return (L) => {
    const s: Uint8Array = luaL_checklstring(L, 1);
    const n: number = luaL_checkinteger(L, 2);
    const sep: Uint8Array = luaL_optlstring(L, 3, new Uint8Array(0));
    if (n <= 0) {
      lua_pushstring(L, new Uint8Array(0));
      return 1;
    }
    const total = n * s.length + (n - 1) * sep.length;
    if (total > max) return raise(L, `string.rep: result of ${total} bytes exceeds the ${max}-byte limit`);
    const out = Buffer.allocUnsafe(total);
    let at = 0;
    for (let i = 0; i < n; i++) {
      if (i > 0 && sep.length) at += Buffer.from(sep).copy(out, at);
      out.set(s, at);
      at += s.length;
    }
    lua_pushstring(L, out);
    return 1;
  };
}

/** Checks the size `table.concat` would build before the stock function builds it. */
function cappedConcatGuard(max: number): (L: LuaState) => void {
  return (L) => {
    luaL_checktype(L, 1, LUA_TTABLE);
    const sep: Uint8Array = luaL_optlstring(L, 2, new Uint8Array(0));
    const first: number = luaL_optinteger(L, 3, 1);
    const last: number = lua_isnoneornil(L, 4) ? lua_rawlen(L, 1) : luaL_checkinteger(L, 4);
    let total = 0;
    for (let i = first; i <= last; i++) {
      lua_rawgeti(L, 1, i);
      const type = lua_type(L, -1);
      if (type === LUA_TSTRING || type === LUA_TNUMBER) total += lua_tolstring(L, -1).length;
      lua_pop(L, 1);
      if (i > first) total += sep.length;
      if (total > max) raise(L, `table.concat: result exceeds the ${max}-byte limit`);
    }
  };
}
