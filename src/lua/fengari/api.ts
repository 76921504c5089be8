/**
 * Types for the part of fengari's API we use (fengari ships none). It mirrors the C API of lua.h,
 * lauxlib.h and lualib.h; Lua strings are byte arrays (`Uint8Array`, a Buffer is one), and functions
 * that take a name also take a JS string, which fengari converts (with a cache: use `K` for constants).
 * Add a member here when the code needs one; nothing else in src/ sees fengari's untyped objects.
 */

/** A Lua thread (`lua_State *`). */
export type LuaState = { readonly __luaState: unique symbol };
/** A JS function callable from Lua: reads its arguments from `L`, pushes results, returns their count. */
export type LuaFunction = (L: LuaState) => number;
/** A continuation of `lua_pcallk`/`lua_yieldk`: called with the status and the context given. */
export type LuaKFunction = (L: LuaState, status: number, ctx: number) => number;
/** A debug hook (`lua_sethook`). */
export type LuaHook = (L: LuaState, ar: LuaDebug) => void;
/** Bytes of a Lua string, or a JS string fengari converts. */
export type LuaText = Uint8Array | string;

/** `lua_Debug`: what `lua_getinfo` fills in (the fields we read). */
export interface LuaDebug {
  event: number;
  currentline: number;
  nups: number;
  nparams: number;
  isvararg: boolean;
  short_src: Uint8Array | null;
  source: Uint8Array | null;
  what: Uint8Array | null;
  name: Uint8Array | null;
}

/** lua.h (fengari's `lua` object). */
export interface LuaApi {
  readonly LUA_OK: number;
  readonly LUA_YIELD: number;
  readonly LUA_ERRRUN: number;
  readonly LUA_ERRSYNTAX: number;
  readonly LUA_MULTRET: number;
  readonly LUA_REGISTRYINDEX: number;
  readonly LUA_MASKCOUNT: number;
  readonly LUA_MASKLINE: number;
  readonly LUA_MASKCALL: number;
  readonly LUA_MASKRET: number;
  readonly LUA_TNONE: number;
  readonly LUA_TNIL: number;
  readonly LUA_TBOOLEAN: number;
  readonly LUA_TNUMBER: number;
  readonly LUA_TSTRING: number;
  readonly LUA_TTABLE: number;
  readonly LUA_TFUNCTION: number;
  readonly LUA_TUSERDATA: number;
  lua_Debug: new () => LuaDebug;

  lua_absindex(L: LuaState, index: number): number;
  lua_gettop(L: LuaState): number;
  lua_settop(L: LuaState, index: number): void;
  lua_pop(L: LuaState, n: number): void;
  lua_pushvalue(L: LuaState, index: number): void;
  lua_insert(L: LuaState, index: number): void;
  lua_remove(L: LuaState, index: number): void;
  lua_replace(L: LuaState, index: number): void;
  lua_rotate(L: LuaState, index: number, n: number): void;
  lua_xmove(from: LuaState, to: LuaState, n: number): void;
  lua_upvalueindex(i: number): number;

  lua_type(L: LuaState, index: number): number;
  /** The name of a type tag (`L` is not used: any state, or null, will do). */
  lua_typename(L: LuaState | null, type: number): Uint8Array;
  lua_isnil(L: LuaState, index: number): boolean;
  lua_isnoneornil(L: LuaState, index: number): boolean;
  lua_isnumber(L: LuaState, index: number): boolean;
  lua_isinteger(L: LuaState, index: number): boolean;
  lua_isyieldable(L: LuaState): boolean;
  lua_toboolean(L: LuaState, index: number): boolean;
  lua_tonumber(L: LuaState, index: number): number;
  lua_tointeger(L: LuaState, index: number): number;
  /** The string at `index` (a number is converted in place), or null for other types. */
  lua_tolstring(L: LuaState, index: number): Uint8Array | null;
  lua_tocfunction(L: LuaState, index: number): LuaFunction | null;
  /** The table, function, thread or userdata object at `index` itself (fengari: the JS object), or null. */
  lua_topointer(L: LuaState, index: number): object | null;
  /** The JS value a userdata (or light userdata) holds. */
  lua_touserdata(L: LuaState, index: number): unknown;
  lua_rawlen(L: LuaState, index: number): number;

  lua_pushnil(L: LuaState): void;
  lua_pushboolean(L: LuaState, value: boolean | number): void;
  lua_pushnumber(L: LuaState, value: number): void;
  lua_pushinteger(L: LuaState, value: number): void;
  lua_pushstring(L: LuaState, value: LuaText | null | undefined): Uint8Array;
  lua_pushjsfunction(L: LuaState, fn: LuaFunction): void;
  lua_pushjsclosure(L: LuaState, fn: LuaFunction, upvalues: number): void;
  lua_concat(L: LuaState, n: number): void;

  lua_createtable(L: LuaState, narray: number, nrecords: number): void;
  lua_newtable(L: LuaState): void;
  /** A full userdata: an empty JS object the caller stores its fields on. */
  lua_newuserdata(L: LuaState, size: number): object;
  lua_newthread(L: LuaState): LuaState;
  lua_getfield(L: LuaState, index: number, key: LuaText): number;
  lua_setfield(L: LuaState, index: number, key: LuaText): void;
  lua_getglobal(L: LuaState, name: LuaText): number;
  lua_setglobal(L: LuaState, name: LuaText): void;
  lua_settable(L: LuaState, index: number): void;
  lua_rawgeti(L: LuaState, index: number, n: number): number;
  lua_rawseti(L: LuaState, index: number, n: number): void;
  lua_rawset(L: LuaState, index: number): void;
  /** Pushes the next key and value of the table at `index` after the key on top; 0 when done. */
  lua_next(L: LuaState, index: number): number;
  /** The name of upvalue `n` of the function at `index` (its value pushed), or null. */
  lua_getupvalue(L: LuaState, index: number, n: number): Uint8Array | null;

  lua_call(L: LuaState, nargs: number, nresults: number): void;
  lua_pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
  lua_pcallk(L: LuaState, nargs: number, nresults: number, msgh: number, ctx: number, k: LuaKFunction | null): number;
  lua_error(L: LuaState): never;
  lua_resume(L: LuaState, from: LuaState | null, nargs: number): number;
  lua_yield(L: LuaState, nresults: number): void;
  lua_sethook(L: LuaState, hook: LuaHook | null, mask: number, count: number): void;
  lua_getinfo(L: LuaState, what: LuaText, ar: LuaDebug): number;
  /** Sets what turns a JS exception thrown by a host function into a Lua error value. */
  lua_atnativeerror(L: LuaState, handler: LuaFunction): void;
}

/** luaL_Buffer: exposed only for ./runtime-patches (capBuffers caps it). */
export interface LuaBufferClass {
  readonly prototype: object;
}

/** lauxlib.h (fengari's `lauxlib` object). */
export interface LauxlibApi {
  luaL_Buffer: LuaBufferClass;
  luaL_newstate(): LuaState;
  luaL_argerror(L: LuaState, arg: number, message: LuaText): never;
  luaL_checkany(L: LuaState, arg: number): void;
  luaL_checktype(L: LuaState, arg: number, type: number): void;
  luaL_checkinteger(L: LuaState, arg: number): number;
  luaL_checknumber(L: LuaState, arg: number): number;
  luaL_checklstring(L: LuaState, arg: number): Uint8Array;
  luaL_checkstack(L: LuaState, space: number, message: LuaText | null): void;
  /** The JS value of the userdata at `arg` whose metatable is `tname`; raises otherwise. */
  luaL_checkudata(L: LuaState, arg: number, tname: LuaText): unknown;
  luaL_optinteger(L: LuaState, arg: number, def: number): number;
  luaL_optlstring(L: LuaState, arg: number, def: Uint8Array): Uint8Array;
  luaL_optlstring(L: LuaState, arg: number, def: null): Uint8Array | null;
  luaL_len(L: LuaState, index: number): number;
  luaL_tolstring(L: LuaState, index: number): Uint8Array;
  luaL_traceback(L: LuaState, L1: LuaState, message: Uint8Array | null, level: number): void;
  luaL_where(L: LuaState, level: number): void;
  luaL_loadbufferx(L: LuaState, buffer: Uint8Array, size: number | null, name: Uint8Array | null, mode: LuaText | null): number;
  luaL_newlib(L: LuaState, functions: Record<string, LuaFunction>): void;
  luaL_setfuncs(L: LuaState, functions: Record<string, LuaFunction>, nup: number): void;
  luaL_newmetatable(L: LuaState, tname: LuaText): number;
  luaL_setmetatable(L: LuaState, tname: LuaText): void;
  luaL_requiref(L: LuaState, name: LuaText, open: LuaFunction, global: number): void;
  luaL_ref(L: LuaState, t: number): number;
  luaL_unref(L: LuaState, t: number, ref: number): void;
}

/** lualib.h (fengari's `lualib` object). */
export interface LualibApi {
  luaL_openlibs(L: LuaState): void;
  luaopen_base: LuaFunction;
  luaopen_coroutine: LuaFunction;
  luaopen_math: LuaFunction;
  luaopen_os: LuaFunction;
  luaopen_string: LuaFunction;
  luaopen_table: LuaFunction;
  luaopen_utf8: LuaFunction;
}
