import { lua, lauxlib, K, raise, type LuaState, type LuaFunction } from './fengari/index';
import { setField, setGlobal } from './sandbox';
import { stateLimits, markUntimed, raiseTooLarge } from './limits';
import { openMath51 } from './math51';

const { LUA_TTABLE, LUA_TNUMBER, LUA_TSTRING, lua_pushinteger, lua_pushnumber, lua_rawlen, lua_next, lua_pushnil, lua_pop,
  lua_type, lua_tonumber, lua_gettop, lua_pushstring } = lua;
const { luaL_checktype, luaL_checknumber, luaL_optinteger, luaL_newlib, luaL_loadbufferx, luaL_checklstring } = lauxlib;

/**
 * The Lua 5.1 surface CONNMIX scripts were written for (CONNMIX runs gopher-lua 5.1), installed on a
 * Lua 5.3 state: table.getn/maxn, unpack, loadstring, math.pow and the 5.1 math functions (./math51),
 * string.gfind, string.char and string.format as gopher-lua has them, and the LuaBitOp
 * `bit` module (returned by `bitModule` for `require "bit"`). setfenv/getfenv cannot be emulated on
 * 5.3 and raise a clear error instead of misbehaving.
 */
export function openCompat51(L: LuaState): void {
  setField(L, 'table', 'getn', markUntimed((L) => {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushinteger(L, lua_rawlen(L, 1));
    return 1;
  }));
  setField(L, 'table', 'maxn', tableMaxn);
  wrapField(L, 'string', 'format', format51);
  wrapField(L, 'string', 'char', markUntimed(char51));
  setField(L, 'math', 'pow', (L) => {
    lua_pushnumber(L, Math.pow(luaL_checknumber(L, 1), luaL_checknumber(L, 2)));
    return 1;
  });
  openMath51(L);
  for (const name of ['setfenv', 'getfenv', 'module']) {
    setGlobal(L, name, (L) => raise(L, `${name} is not supported: scripts run on Lua 5.3 (use load's env argument)`));
  }
  const prelude = `
    unpack = table.unpack
    string.gfind = string.gmatch
    local load = load
    function loadstring(s, chunkname) return load(s, chunkname) end
  `;
  if (luaL_loadbufferx(L, Buffer.from(prelude), null, K('=compat51'), K('t')) !== lua.LUA_OK) {
    throw new Error('compat51 prelude failed to compile');
  }
  lua.lua_call(L, 0, 0);
}

const PERCENT = 0x25;
const FLAGS = new Set([0x2d, 0x2b, 0x20, 0x23, 0x30]); // - + space # 0
const isDigit = (byte: number) => byte >= 0x30 && byte <= 0x39;
const INT32 = 2 ** 31;

/**
 * `string.format` as Lua 5.1 had it for `%d`, `%i` and `%c`: a float argument is truncated (5.1 cast
 * it to an integer; 5.3 raises "number has no integer representation"), and a whole number beyond
 * Fengari's 32-bit integers (a millisecond timestamp) is printed in full through `%.0f`. Everything else
 * goes to the stock function unchanged.
 */
const format51: LuaFunction = (L) => {
  const fmt: Uint8Array = luaL_checklstring(L, 1);
  /**
   * Conversion letters to replace, in order: `d`/`i` to print as `.0f` (whole numbers too large for an
   * integer), and `q` of a string already quoted here to print as `s`.
   */
  const edits: Array<{ at: number; text: Uint8Array }> = [];
  let arg = 1;
  for (let i = 0; i < fmt.length; i++) {
    if (fmt[i] !== PERCENT) continue;
    if (fmt[i + 1] === PERCENT) {
      i++;
      continue;
    }
    arg++;
    let j = i + 1;
    while (FLAGS.has(fmt[j])) j++;
    while (isDigit(fmt[j])) j++;
    const hasPrecision = fmt[j] === 0x2e;
    if (hasPrecision) for (j++; isDigit(fmt[j]); j++);
    const conversion = fmt[j];
    // Fengari read past the end for a format ending in "%" and named `undefined` as the option.
    if (conversion === undefined) return raise(L, `invalid conversion '${Buffer.from(fmt.subarray(i)).toString('latin1')}' to 'format'`);
    if (conversion === 0x71 && j === i + 1 && lua_type(L, arg) === LUA_TSTRING) { // a bare %q of a string
      lua_pushstring(L, quoted(L, lua.lua_tolstring(L, arg)!));
      lua.lua_replace(L, arg);
      edits.push({ at: j, text: LETTER_S });
    }
    i = j;
    const integral = conversion === 0x64 || conversion === 0x69 || conversion === 0x63; // d i c
    if (!integral || lua_type(L, arg) !== LUA_TNUMBER || lua.lua_isinteger(L, arg)) continue;
    const value = Math.trunc(lua_tonumber(L, arg));
    if (!Number.isFinite(value)) continue;
    if (value >= -INT32 && value < INT32) {
      lua.lua_pushinteger(L, value);
      lua.lua_replace(L, arg);
    } else if (conversion !== 0x63 && !hasPrecision) {
      lua_pushnumber(L, value);
      lua.lua_replace(L, arg);
      edits.push({ at: j, text: WIDE });
    }
  }
  if (edits.length > 0) {
    const parts: Uint8Array[] = [];
    let from = 0;
    for (const { at, text } of edits) {
      parts.push(fmt.subarray(from, at), text);
      from = at + 1;
    }
    parts.push(fmt.subarray(from));
    lua_pushstring(L, Buffer.concat(parts));
    lua.lua_replace(L, 1);
  }
  return callWrapped(L);
};

/**
 * `string.char` as gopher-lua has it: each argument is truncated to an integer and wrapped to a byte
 * (`string.char(256)` is "\0", `string.char(65.9)` is "A"), where Lua 5.3 raises. Past maxItems
 * arguments the wrapped function's own limit answers.
 */
const char51: LuaFunction = (L) => {
  const nargs = lua_gettop(L);
  if (nargs <= stateLimits(L).maxItems) {
    for (let i = 1; i <= nargs; i++) {
      lua_pushinteger(L, Math.trunc(luaL_checknumber(L, i)) & 0xff);
      lua.lua_replace(L, i);
    }
  }
  return callWrapped(L);
};

/** Replaces `_G[table][name]` by `fn`, a closure whose upvalue is the function it replaces. */
function wrapField(L: LuaState, table: string, name: string, fn: LuaFunction): void {
  lua.lua_getglobal(L, K(table));
  lua.lua_getfield(L, -1, K(name));
  lua.lua_pushjsclosure(L, fn, 1);
  lua.lua_setfield(L, -2, K(name));
  lua.lua_pop(L, 1);
}

/** Calls the replaced function (upvalue 1) with the stack's arguments; one result. */
function callWrapped(L: LuaState): number {
  const nargs = lua_gettop(L);
  lua.lua_pushvalue(L, lua.lua_upvalueindex(1));
  lua.lua_insert(L, 1);
  lua.lua_call(L, nargs, 1);
  return 1;
}

/** `%d` of a whole number beyond 32 bits becomes `%.0f`. */
const WIDE = Buffer.from('.0f');
const LETTER_S = Buffer.from('s');

const isControl = (byte: number) => byte <= 0x1f || byte === 0x7f;

/**
 * `s` quoted as `%q` does (Lua 5.3: `"`, `\` and newline escaped by a backslash, other control bytes
 * as `\ddd`, padded to three digits before a digit). Fengari's own loop takes about a microsecond per
 * byte, so a `%q` of 8 MiB held the node for 12 s; this takes milliseconds, and the result is checked
 * against maxStringSize before it is built.
 */
function quoted(L: LuaState, s: Uint8Array): Buffer {
  let size = 2;
  for (let i = 0; i < s.length; i++) {
    const b = s[i];
    if (b === 0x22 || b === 0x5c || b === 0x0a) size += 2;
    else if (isControl(b)) size += isDigit(s[i + 1]) ? 4 : 1 + String(b).length;
    else size++;
  }
  const max = stateLimits(L).maxStringSize;
  if (size > max) return raiseTooLarge(L, 'string', size, max);
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  out[o++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const b = s[i];
    if (b === 0x22 || b === 0x5c || b === 0x0a) {
      out[o++] = 0x5c;
      out[o++] = b;
    } else if (isControl(b)) {
      const digits = isDigit(s[i + 1]) ? String(b).padStart(3, '0') : String(b);
      out[o++] = 0x5c;
      for (let k = 0; k < digits.length; k++) out[o++] = digits.charCodeAt(k);
    } else {
      out[o++] = b;
    }
  }
  out[o] = 0x22;
  return out;
}

const tableMaxn: LuaFunction = (L) => {
  luaL_checktype(L, 1, LUA_TTABLE);
  const maxItems = stateLimits(L).maxItems;
  let max = 0;
  let walked = 0;
  lua_pushnil(L);
  while (lua_next(L, 1) !== 0) {
    lua_pop(L, 1);
    if (++walked > maxItems) return raise(L, `table.maxn: more than ${maxItems} entries (the maxItems limit)`);
    if (lua_type(L, -1) === LUA_TNUMBER) max = Math.max(max, lua_tonumber(L, -1));
  }
  lua_pushnumber(L, max);
  return 1;
};

/** LuaBitOp's tobit: the number modulo 2^32 as a signed 32-bit integer (JS ToInt32 does exactly that). */
function bitArg(L: LuaState, index: number): number {
  return luaL_checknumber(L, index) | 0;
}

function bitFold(op: (a: number, b: number) => number): LuaFunction {
  return (L) => {
    let acc = bitArg(L, 1);
    for (let i = 2, n = lua_gettop(L); i <= n; i++) acc = op(acc, bitArg(L, i));
    lua_pushnumber(L, acc | 0);
    return 1;
  };
}

function bitShift(op: (a: number, n: number) => number): LuaFunction {
  return (L) => {
    lua_pushnumber(L, op(bitArg(L, 1), bitArg(L, 2) & 31) | 0);
    return 1;
  };
}

const BIT_FUNCTIONS: Record<string, LuaFunction> = {
  tobit: (L) => { lua_pushnumber(L, bitArg(L, 1)); return 1; },
  bnot: (L) => { lua_pushnumber(L, ~bitArg(L, 1)); return 1; },
  band: bitFold((a, b) => a & b),
  bor: bitFold((a, b) => a | b),
  bxor: bitFold((a, b) => a ^ b),
  lshift: bitShift((a, n) => a << n),
  rshift: bitShift((a, n) => a >>> n),
  arshift: bitShift((a, n) => a >> n),
  rol: bitShift((a, n) => (a << n) | (a >>> (32 - n))),
  ror: bitShift((a, n) => (a >>> n) | (a << (32 - n))),
  bswap: (L) => {
    const a = bitArg(L, 1);
    lua_pushnumber(L, ((a >>> 24) | ((a >> 8) & 0xff00) | ((a & 0xff00) << 8) | (a << 24)) | 0);
    return 1;
  },
  tohex: (L) => {
    let digits = luaL_optinteger(L, 2, 8);
    const upper = digits < 0;
    digits = Math.min(Math.abs(digits), 8);
    let hex = (bitArg(L, 1) >>> 0).toString(16).padStart(8, '0').slice(8 - digits);
    if (upper) hex = hex.toUpperCase();
    lua_pushstring(L, Buffer.from(hex));
    return 1;
  },
};

/** Pushes a new `bit` module table (LuaBitOp API). */
export function bitModule(L: LuaState): void {
  luaL_newlib(L, BIT_FUNCTIONS);
}
