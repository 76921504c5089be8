/** The one place that loads fengari (with the changes ./fengari-load describes). */
import { loadFengari } from './fengari-load';

// fengari ships no typings; its API mirrors the C API of lua.h / lauxlib.h / lualib.h.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fengari: any = loadFengari();

/** A Lua thread (`lua_State *`). */
export type LuaState = { readonly __luaState: unique symbol };
/** A JS function callable from Lua: reads its arguments from `L`, pushes results, returns their count. */
export type LuaFunction = (L: LuaState) => number;

/* eslint-disable @typescript-eslint/no-explicit-any */
export const lua: any = fengari.lua;
export const lauxlib: any = fengari.lauxlib;
export const lualib: any = fengari.lualib;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** A cached Lua string for a constant name. */
export function K(name: string): Uint8Array {
  return fengari.to_luastring(name, true);
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
    let text = '';
    for (let i = 0; i < length; i++) {
      const byte = u8[i];
      if (byte >= 0x80) return bytesView(u8).toString('utf8');
      text += String.fromCharCode(byte);
    }
    return text;
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
