import { lua, lauxlib, luaToJsString, type LuaState } from './fengari/index';
import { stateLimits } from './limits';
import type { ContextValue } from '../session/context';

const {
  LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE,
  lua_type, lua_toboolean, lua_tonumber, lua_tolstring, lua_pushnil, lua_pushboolean, lua_pushnumber,
  lua_pushstring, lua_createtable, lua_rawseti, lua_setfield, lua_next, lua_pop, lua_pushvalue,
  lua_absindex, lua_rawlen, lua_typename, lua_isinteger, lua_tointeger,
} = lua;
const { luaL_checkstack } = lauxlib;

/** How deep host <-> Lua conversions may nest before they fail (guards cycles and stack overflows). */
export const MAX_DEPTH = 64;

/** A plain JS value that can cross into Lua and back. */
export type LuaValue = ContextValue;

export class ConversionError extends Error {}

/**
 * Pushes a JS value onto the Lua stack. Numbers go in as floats (gopher-lua, which CONNMIX runs, has only
 * doubles; Fengari's integers are 32-bit and wrap). Strings go in as UTF-8 bytes; byte arrays as they are.
 */
export function pushValue(L: LuaState, value: unknown, depth = 0): void {
  if (value === null || value === undefined) {
    lua_pushnil(L);
  } else if (typeof value === 'string') {
    lua_pushstring(L, Buffer.from(value, 'utf8'));
  } else if (typeof value === 'number') {
    lua_pushnumber(L, value);
  } else if (typeof value === 'boolean') {
    lua_pushboolean(L, value);
  } else if (value instanceof Uint8Array) {
    lua_pushstring(L, value);
  } else if (typeof value === 'object') {
    if (depth >= MAX_DEPTH) throw new ConversionError(`value nested deeper than ${MAX_DEPTH} levels`);
    luaL_checkstack(L, 3, 'value too deep');
    if (Array.isArray(value)) {
      lua_createtable(L, value.length, 0);
      for (let i = 0; i < value.length; i++) {
        pushValue(L, value[i], depth + 1);
        lua_rawseti(L, -2, i + 1);
      }
    } else {
      const entries = Object.entries(value as object);
      lua_createtable(L, 0, entries.length);
      for (const [key, item] of entries) {
        if (item === undefined) continue;
        pushValue(L, item, depth + 1);
        lua_setfield(L, -2, Buffer.from(key, 'utf8'));
      }
    }
  } else if (typeof value === 'bigint') {
    lua_pushstring(L, Buffer.from(value.toString()));
  } else {
    throw new ConversionError(`cannot pass a ${typeof value} to Lua`);
  }
}

/** Options for reading Lua values into JS. */
export interface ToJsOptions {
  /** Keep strings as raw bytes (Uint8Array) instead of decoding UTF-8. */
  bytes?: boolean;
}

/**
 * What one walk over a Lua value may still produce (string bytes for toJs, JSON text for mix.json_encode:
 * the state's maxStringSize in all) and values it may still visit (maxItems: a table referenced many
 * times is walked, and counted, at each reference, so 22 levels of `{t, t}` are 4 million values, not 44).
 */
export interface Room {
  left: number;
  readonly max: number;
  items: number;
  readonly maxItems: number;
}

/** A fresh Room holding the limits of the state `L` belongs to. */
export function roomFor(L: LuaState): Room {
  const limits = stateLimits(L);
  return { left: limits.maxStringSize, max: limits.maxStringSize, items: limits.maxItems, maxItems: limits.maxItems };
}

/**
 * Reads the Lua value at `index` into plain JS. A table whose keys are exactly 1..n becomes an array,
 * any other table an object with string keys; an empty table becomes an empty object. Functions,
 * userdata and threads cannot cross and raise a ConversionError naming their type.
 */
export function toJs(L: LuaState, index: number, options: ToJsOptions = {}, depth = 0, room?: Room): LuaValue {
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return null;
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index);
    case LUA_TNUMBER:
      return lua_tonumber(L, index);
    case LUA_TSTRING: {
      const bytes: Uint8Array = lua_tolstring(L, index)!;
      if (room) {
        // A table may hold the same large string many times; each copy counts.
        room.left -= bytes.length;
        if (room.left < 0) throw new ConversionError(`value holds more than ${room.max} bytes of strings`);
      }
      return options.bytes ? bytes : luaToJsString(bytes);
    }
    case LUA_TTABLE: {
      return tableToJs(L, lua_absindex(L, index), options, depth, room ?? roomFor(L));
    }
    default:
      throw new ConversionError(`cannot convert a Lua ${luaToJsString(lua_typename(L, lua_type(L, index)))}`);
  }
}

function tableToJs(L: LuaState, index: number, options: ToJsOptions, depth: number, room: Room): LuaValue {
  if (depth >= MAX_DEPTH) throw new ConversionError(`table nested deeper than ${MAX_DEPTH} levels (a cycle?)`);
  luaL_checkstack(L, 3, 'table too deep');
  const length: number = lua_rawlen(L, index);
  const keys: Array<string | number> = [];
  const values: LuaValue[] = [];
  let sequential = true;
  lua_pushnil(L);
  while (lua_next(L, index) !== 0) {
    if (--room.items < 0) throw new ConversionError(`value holds more than ${room.maxItems} entries (the maxItems limit)`);
    const key = tableKey(L, -2);
    if (typeof key !== 'number' || !Number.isInteger(key) || key < 1 || key > length) sequential = false;
    keys.push(key);
    values.push(toJs(L, -1, options, depth + 1, room));
    lua_pop(L, 1);
  }
  if (sequential && keys.length === length && length > 0) {
    const array: LuaValue[] = new Array(length);
    for (let i = 0; i < keys.length; i++) array[(keys[i] as number) - 1] = values[i];
    return array;
  }
  const object: { [key: string]: LuaValue } = {};
  for (let i = 0; i < keys.length; i++) {
    const key = String(keys[i]);
    // An assignment to "__proto__" would set the object's prototype and lose the entry.
    if (key === '__proto__') Object.defineProperty(object, key, { value: values[i], enumerable: true, writable: true, configurable: true });
    else object[key] = values[i];
  }
  return object;
}

/** A table key as JS: numbers stay numbers (1.0 and 1 alike), strings decode; other keys raise. */
function tableKey(L: LuaState, index: number): string | number {
  const type = lua_type(L, index);
  if (type === LUA_TNUMBER) return lua_isinteger(L, index) ? lua_tointeger(L, index) : lua_tonumber(L, index);
  if (type === LUA_TSTRING) {
    // lua_tolstring would convert a number key in place and confuse lua_next; this key is a string.
    lua_pushvalue(L, index);
    const key = luaToJsString(lua_tolstring(L, -1)!);
    lua_pop(L, 1);
    return key;
  }
  if (type === LUA_TBOOLEAN) return String(lua_toboolean(L, index));
  throw new ConversionError(`cannot convert a table key of type ${luaToJsString(lua_typename(L, type))}`);
}
