/**
 * The one folder that touches fengari (the Lua 5.3 VM in JS that runs scripts).
 *
 * We run a private copy of fengari, compiled by ./load from the installed package's source files with
 * the changes of ./patches applied in memory. Why a private copy rather than patching the shared
 * `fengari` module (as we once did, through `Module._compile` and `require.cache`) or patching the
 * package at install: the copy depends on no load order (an application may require fengari itself,
 * before or after connmix-ts, and gets fengari as published), needs no install step (works the same
 * when connmix-ts is itself a dependency in another project's node_modules), and every change is
 * listed in one file with its reason and test. fengari is pinned to an exact version in package.json
 * and test/lua/fengari-pin.test.ts fails when its source files change.
 *
 * Nothing outside this folder may import fengari, ./internals or ./load (test/architecture.test.ts checks src/).
 */
import { privateFengari } from './load';
import type { LuaApi, LauxlibApi, LualibApi, LuaState } from './api';
import { lobject, ltable, threadOf, LUA_TLNGSTR, type TableObject } from './internals';
import { SHORT_STRING_MAX } from './lstring';

const copy = privateFengari();
const fengari = copy.module('fengari.js');

export type { LuaState, LuaFunction, LuaKFunction, LuaHook, LuaDebug, LuaText } from './api';

export const lua = fengari.lua as LuaApi;
export const lauxlib = fengari.lauxlib as LauxlibApi;
export const lualib = fengari.lualib as LualibApi;
const to_luastring = fengari.to_luastring as (text: string, cache?: boolean) => Uint8Array;
const { luaS_intern } = copy.module('lstring.js') as { luaS_intern(bytes: Uint8Array): Uint8Array };

/**
 * A constant name as Lua bytes, interned: passing it again (lua_setfield, lua_getfield,
 * lua_pushstring...) reuses one Lua string whose table key is built and hashed once. The bytes must
 * never be changed.
 */
export function K(name: string): Uint8Array {
  return luaS_intern(to_luastring(name, true));
}

const { pushsvalue2s, pushobj2s } = copy.module('lobject.js') as {
  pushsvalue2s(L: LuaState, ts: object): void;
  pushobj2s(L: LuaState, value: object): void;
};

const { luaS_newrange, luaS_new } = copy.module('lstring.js') as {
  luaS_newrange(L: LuaState, source: Uint8Array, start: number, end: number): object;
  luaS_new(L: LuaState, bytes: Uint8Array): object;
};

/** The key luaH_setfrom reads (and copies) in setNewTableFields: one object, refilled for each field. */
const fieldKey = new lobject.TValue(LUA_TLNGSTR, null);

/**
 * Sets fields `names` (K() names) of the table just below their values, the last name's value on top,
 * and pops the values: lua_setfield for each, without pushing each name and looking for a
 * __newindex. The table must be one the caller just made (no metatable yet).
 */
export function setNewTableFields(L: LuaState, names: readonly Uint8Array[]): void {
  const thread = threadOf(L);
  const first = thread.top - names.length;
  const table = thread.stack[first - 1].value as TableObject;
  for (let i = 0; i < names.length; i++) {
    fieldKey.value = luaS_new(L, names[i]);
    ltable.luaH_setfrom(L, table, fieldKey, thread.stack[first + i]);
  }
  fieldKey.value = null;
  lua.lua_pop(L, names.length);
}

/**
 * Pushes the bytes source[start..end) as a Lua string: a copy, or none for a short string that is
 * already shared. Cheaper than lua_pushstring of a slice, which copies twice.
 */
export function pushStringRange(L: LuaState, source: Uint8Array, start: number, end: number): void {
  pushsvalue2s(L, luaS_newrange(L, source, start, end));
}

/** A Lua value the host holds itself (holdTop), to push again (pushHeld) without a registry ref. */
export type HeldValue = { readonly __heldValue: unique symbol };

/**
 * Pops the value on top of `L`'s stack into a HeldValue. Pushing it back is one copy, where a registry
 * ref is a lookup in a table that grows with what the host anchors (a userdata per connection).
 */
export function holdTop(L: LuaState): HeldValue {
  const thread = L as unknown as { stack: Array<{ type: number; value: unknown }>; top: number };
  const { type, value } = thread.stack[thread.top - 1];
  lua.lua_pop(L, 1);
  return { type, value } as unknown as HeldValue;
}

/** The block of a held full userdata (what lua_touserdata gives for it), or null for any other value. */
export function heldUserdata(held: HeldValue): object | null {
  const { type, value } = held as unknown as { type: number; value: { data?: object } };
  return type === lua.LUA_TUSERDATA ? value.data ?? null : null;
}

/** Pushes a value held with holdTop (the caller has room on the stack, as for any push). */
export function pushHeld(L: LuaState, held: HeldValue): void {
  pushobj2s(L, held as unknown as object);
}

/** How many slots the stack of thread `L` has allocated (it grows with the calls it makes, and never shrinks). */
export function stackSlots(L: LuaState): number {
  return (L as unknown as { stack: unknown[] }).stack.length;
}

/** `text` as Lua bytes (UTF-8), not cached: for messages and other one-off strings. */
export function luaString(text: string): Uint8Array {
  return to_luastring(text);
}

/**
 * Argument `arg` (a string, or a number made one, as luaL_checklstring) decoded as UTF-8 for the host.
 * A short string keeps its text: the channel or key a script passes on every call is decoded once,
 * and the hub's maps find it by the same JS string each time.
 */
export function checkJsString(L: LuaState, arg: number): string {
  const bytes: Uint8Array = lauxlib.luaL_checklstring(L, arg);
  if (bytes.length > SHORT_STRING_MAX) return luaToJsString(bytes); // only shared strings keep their text
  const thread = threadOf(L);
  const string = thread.stack[thread.ci.funcOff + arg].value as { realstring: Uint8Array; js: string | null };
  if (string.realstring !== bytes) return luaToJsString(bytes);
  return (string.js ??= luaToJsString(bytes));
}

/** Lua bytes (a Uint8Array) as a Buffer view, without copying. */
export function bytesView(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Below this length an ASCII string is decoded by hand: cheaper than making a Buffer view. */
const SHORT_STRING = 64;

/** Lua bytes decoded as UTF-8 (invalid sequences become U+FFFD). */
export function luaToJsString(u8: Uint8Array): string {
  const length = u8.length;
  if (length < SHORT_STRING) {
    for (let i = 0; i < length; i++) if (u8[i] >= 0x80) return bytesView(u8).toString('utf8');
    // One flat string: appending byte by byte built a chain of partial strings, a dozen objects for a channel name.
    return String.fromCharCode.apply(null, u8 as unknown as number[]);
  }
  return bytesView(u8).toString('utf8');
}

/**
 * Raises a Lua error with `message`, prefixed by the calling script's position like luaL_error
 * (without its printf-style formatting, so a `%` in user data is harmless).
 */
export function raise(L: LuaState, message: string): never {
  lauxlib.luaL_where(L, 1);
  lua.lua_pushstring(L, Buffer.from(message));
  lua.lua_concat(L, 2);
  return lua.lua_error(L) as never;
}
