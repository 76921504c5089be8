/** `mix.json_encode` and `mix.json_decode`, and the Lua-to-JSON walk `mix.queue.push` uses too. */
import { lua, lauxlib, luaToJsString, type LuaState, type LuaFunction } from '../fengari/index';
import { pushValue, ConversionError, MAX_DEPTH, roomFor, type Room } from '../values';
import { pushNilError } from '../vm';
import { stateLimits, markUntimed, checkBudgetSoon, PARSED_TEXT_BYTES } from '../limits';
import { pushJsonDocument } from './json-parse';

const {
  LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE,
  lua_type, lua_typename, lua_toboolean, lua_tonumber, lua_tolstring, lua_next, lua_pop, lua_pushnil,
  lua_pushstring, lua_gettop, lua_settop, lua_absindex,
} = lua;
const { luaL_checkany, luaL_checkstack } = lauxlib;

/** A Lua value that JSON cannot represent (function, NaN, a cycle…); the message is the Lua `err`. */
export class JsonEncodeError extends Error {}

/** Counts `text` against `room` (JSON text is counted in characters); throws before a table of many large strings can exhaust the heap. */
function spend(room: Room, text: string): string {
  room.left -= text.length;
  if (room.left < 0) tooLong(room);
  return text;
}

function tooLong(room: Room): never {
  throw new JsonEncodeError(`JSON text exceeds the ${room.max}-byte limit`);
}

/** Strings longer than this are measured before they are escaped (shorter ones cannot matter). */
const LONG_STRING = 4096;

/**
 * The fewest characters the JSON literal of these bytes can have: control characters escape to 2 or 6,
 * `"` and `\` to 2, every other ASCII byte or UTF-8 lead byte gives one at least, continuation bytes
 * none. Lets a string of 16 MiB of control characters be refused without building 96 MiB of text.
 */
function jsonLengthAtLeast(bytes: Uint8Array): number {
  let length = 2;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b < 0x20) length += b === 0x08 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d ? 2 : 6;
    else if (b === 0x22 || b === 0x5c) length += 2;
    else if (b < 0x80 || b >= 0xc0) length += 1;
  }
  return length;
}

/**
 * The Lua value at `index` as JSON text, walking the Lua stack straight into a string (no
 * intermediate JS object). Same mapping as values.ts `toJs`: a table with keys exactly 1..n is an
 * array, any other table (the empty one included) an object with string keys; strings decode as
 * UTF-8. Object keys keep the table's iteration order (Fengari: insertion order).
 * Throws JsonEncodeError; the Lua stack is left as it was only when it returns normally.
 */
export function luaToJson(L: LuaState, index: number, depth = 0, room: Room = roomFor(L)): string {
  if (--room.items < 0) throw new JsonEncodeError(`more than ${room.maxItems} values to encode (the maxItems limit)`);
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return 'null';
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index) ? 'true' : 'false';
    case LUA_TNUMBER: {
      const n: number = lua_tonumber(L, index);
      if (!Number.isFinite(n)) throw new JsonEncodeError(`cannot encode the number ${luaNumberName(n)} in JSON`);
      // String() prints integral floats without ".0" and big ones in plain digits up to 1e21, as Go does.
      return spend(room, String(n));
    }
    case LUA_TSTRING: {
      const bytes = lua_tolstring(L, index) as Uint8Array;
      // Escapes make the text up to 6 times the bytes: refuse before building what cannot fit.
      if (bytes.length > LONG_STRING && jsonLengthAtLeast(bytes) > room.left) tooLong(room);
      return spend(room, jsonString(bytes));
    }
    case LUA_TTABLE:
      return tableToJson(L, lua_absindex(L, index), depth, room);
    default:
      throw new JsonEncodeError(`cannot encode a ${typeName(L, index)} in JSON`);
  }
}

function tableToJson(L: LuaState, index: number, depth: number, room: Room): string {
  if (depth >= MAX_DEPTH) throw new JsonEncodeError(`cannot encode a table nested deeper than ${MAX_DEPTH} levels (a cycle?)`);
  luaL_checkstack(L, 3, 'table too deep');
  const keys: Array<Uint8Array | string | number> = [];
  const values: string[] = [];
  let positiveIntegers = true;
  let maxKey = 0;
  lua_pushnil(L);
  while (lua_next(L, index) !== 0) {
    const keyType = lua_type(L, -2);
    let key: Uint8Array | string | number;
    if (keyType === LUA_TNUMBER) {
      const n: number = lua_tonumber(L, -2);
      if (Number.isInteger(n) && n >= 1) maxKey = Math.max(maxKey, n);
      else positiveIntegers = false;
      key = n;
    } else if (keyType === LUA_TSTRING) {
      key = lua_tolstring(L, -2) as Uint8Array; // a string key: tolstring converts nothing in place
      room.left -= key.length + 3;
      positiveIntegers = false;
    } else if (keyType === LUA_TBOOLEAN) {
      key = String(lua_toboolean(L, -2)); // as toJs does
      positiveIntegers = false;
    } else {
      throw new JsonEncodeError(`cannot encode a table key of type ${typeName(L, -2)} in JSON`);
    }
    keys.push(key);
    values.push(luaToJson(L, lua_gettop(L), depth + 1, room));
    lua_pop(L, 1);
  }
  // Distinct positive integer keys whose largest equals their count are exactly 1..n.
  if (positiveIntegers && keys.length > 0 && maxKey === keys.length) {
    const items: string[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) items[(keys[i] as number) - 1] = values[i];
    return `[${items.join(',')}]`;
  }
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) out += ',';
    const key = keys[i];
    out += `${key instanceof Uint8Array ? jsonString(key) : JSON.stringify(String(key))}:${values[i]}`;
  }
  return `${out}}`;
}

/**
 * Lua bytes as a JSON string literal. Short plain-ASCII strings (most keys and values) skip the
 * UTF-8 decoder and JSON.stringify, which dominate the encoder's profile otherwise.
 */
function jsonString(bytes: Uint8Array): string {
  if (bytes.length <= 64) {
    let s = '';
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b >= 0x80 || b < 0x20 || b === 0x22 || b === 0x5c) return JSON.stringify(luaToJsString(bytes));
      s += String.fromCharCode(b);
    }
    return `"${s}"`;
  }
  return JSON.stringify(luaToJsString(bytes));
}

/** `mix.json_encode(value)` → `s, err`. Never raises for bad values: they give `nil, err`. */
export const jsonEncode: LuaFunction = (L) => {
  luaL_checkany(L, 1);
  const top = lua_gettop(L);
  let text: string;
  try {
    text = luaToJson(L, 1);
  } catch (error) {
    if (!(error instanceof JsonEncodeError)) throw error; // a Lua error (stack overflow) must propagate
    lua_settop(L, top);
    return pushNilError(L, error.message);
  }
  lua_pushstring(L, Buffer.from(text, 'utf8'));
  return 1;
};

/**
 * `mix.json_decode(str)` → `value, err`: json-parse.ts pushes the usual document straight from its
 * bytes; what it does not take goes through JSON.parse and values.ts. Bad JSON or a non-string argument give `nil, err` (scripts
 * test `err` and close the connection). Numbers arrive as floats; JSON null inside objects
 * disappears (Lua cannot store nil); a top-level `null` gives a lone nil.
 */
export const jsonDecode: LuaFunction = markUntimed((L) => {
  const type = lua_type(L, 1);
  if (type !== LUA_TSTRING && type !== LUA_TNUMBER) {
    return pushNilError(L, `json_decode expects a string, got ${typeName(L, 1)}`);
  }
  const maxItems = stateLimits(L).maxItems;
  const text: Uint8Array = lua_tolstring(L, 1)!;
  if (text.length >= PARSED_TEXT_BYTES) checkBudgetSoon(L);
  // Refused before parsing, by one cheap pass over the bytes: JSON.parse of a 16 MiB `[0,0,...]` alone
  // takes seconds and 350 MiB, and building its first maxItems values as Lua tables a tenth of a second.
  const tooMuch = jsonTextTooLarge(text, maxItems);
  if (tooMuch !== null) return pushNilError(L, `invalid JSON: ${tooMuch}`);
  const top = lua_gettop(L);
  if (pushJsonDocument(L, text, maxItems)) return 1;
  lua_settop(L, top);
  let value: unknown;
  try {
    value = JSON.parse(luaToJsString(text));
  } catch (error) {
    return pushNilError(L, `invalid JSON: ${(error as Error).message}`);
  }
  if (countJsonValues(value, maxItems) > maxItems) {
    return pushNilError(L, `invalid JSON: more than ${maxItems} values (the maxItems limit)`);
  }
  try {
    pushValue(L, value);
  } catch (error) {
    if (!(error instanceof ConversionError)) throw error;
    lua_settop(L, top);
    return pushNilError(L, `invalid JSON: ${error.message}`);
  }
  return 1;
});

/**
 * A cheap look at JSON text before it is parsed: why it surely holds more than `max` values (each `,`
 * outside strings separates two of them) or nests deeper than values.ts can push, else null. One pass
 * over the bytes, a few milliseconds for 16 MiB.
 */
function jsonTextTooLarge(text: Uint8Array, max: number): string | null {
  let separators = 0;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c) i++; // the escaped character cannot end the string
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x2c) {
      if (++separators >= max) return `more than ${max} values (the maxItems limit)`;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) return `value nested deeper than ${MAX_DEPTH} levels`;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return null;
}

/**
 * How many values (scalars, arrays and objects) a parsed JSON value holds, counting up to just past
 * `max`: building them as Lua tables costs about a microsecond each, so a 1 MiB message of `[0,0,…]`
 * would stall the node for half a second.
 */
function countJsonValues(value: unknown, max: number): number {
  let count = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0 && count <= max) {
    const item = stack.pop();
    count++;
    if (item !== null && typeof item === 'object') {
      for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push(child);
    }
  }
  return count;
}

function typeName(L: LuaState, index: number): string {
  return luaToJsString(lua_typename(L, lua_type(L, index)));
}

function luaNumberName(n: number): string {
  return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
}
