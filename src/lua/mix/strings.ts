/** `mix.str_split` and `mix.bytes_tostring`: binary-safe string helpers. */
import { lua, lauxlib, raise, pushStringRange, type LuaFunction } from '../fengari/index';
import { stateLimits, markUntimed, checkBudgetSoon, PARSED_TEXT_BYTES } from '../limits';
import { searchBytes } from '../sandbox';

const {
  LUA_TNUMBER, LUA_TTABLE, lua_type, lua_tonumber, lua_pop, lua_pushstring, lua_createtable, lua_rawseti,
  lua_rawgeti, lua_rawlen,
} = lua;
const { luaL_checklstring, luaL_checktype, luaL_argerror } = lauxlib;

/**
 * `mix.str_split(s, sep)` → 1-indexed table of the pieces between plain (not pattern) occurrences of
 * `sep`, empty pieces kept (`"@user"` → `{"", "user"}`), binary-safe. An empty `sep` raises, and so
 * does a split into more than maxItems pieces (each costs a Lua string and a table slot).
 */
export const strSplit: LuaFunction = markUntimed((L) => {
  const s: Uint8Array = luaL_checklstring(L, 1);
  const sep: Uint8Array = luaL_checklstring(L, 2);
  if (sep.length === 0) return luaL_argerror(L, 2, 'separator must not be empty');
  if (s.length >= PARSED_TEXT_BYTES) checkBudgetSoon(L);
  const maxItems = stateLimits(L).maxItems;
  lua_createtable(L, 0, 0);
  let start = 0;
  let n = 0;
  for (;;) {
    const at = searchBytes(s, sep, start); // linear time, unlike Buffer#indexOf on long separators
    const end = at < 0 ? s.length : at;
    if (n >= maxItems) return raise(L, `str_split: more than ${maxItems} pieces (the maxItems limit)`);
    pushStringRange(L, s, start, end);
    lua_rawseti(L, -2, ++n);
    if (at < 0) return 1;
    start = at + sep.length;
  }
});

/** `mix.bytes_tostring(tb)` → the string of the byte values tb[1..#tb]; anything but 0..255 raises. */
export const bytesToString: LuaFunction = (L) => {
  luaL_checktype(L, 1, LUA_TTABLE);
  const length: number = lua_rawlen(L, 1);
  const maxItems = stateLimits(L).maxItems;
  if (length > maxItems) return raise(L, `bytes_tostring: more than ${maxItems} bytes (the maxItems limit)`);
  const out = Buffer.allocUnsafe(length);
  for (let i = 1; i <= length; i++) {
    lua_rawgeti(L, 1, i);
    const ok = lua_type(L, -1) === LUA_TNUMBER;
    const byte: number = ok ? lua_tonumber(L, -1) : NaN;
    lua_pop(L, 1);
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) {
      return luaL_argerror(L, 1, `element ${i} is not a byte (an integer 0..255)`);
    }
    out[i - 1] = byte;
  }
  lua_pushstring(L, out);
  return 1;
};
