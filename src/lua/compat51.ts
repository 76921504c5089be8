import { lua, lauxlib, K, raise, type LuaState, type LuaFunction } from './fengari/index';
import { setField, setGlobal } from './sandbox';
import { stateLimits, markUntimed } from './limits';
import { openMath51 } from './math51';
import { openString51 } from './string51';

const { LUA_TTABLE, LUA_TNUMBER, lua_pushinteger, lua_pushnumber, lua_rawlen, lua_next, lua_pushnil, lua_pop,
  lua_type, lua_tonumber, lua_gettop, lua_pushstring } = lua;
const { luaL_checktype, luaL_checknumber, luaL_optinteger, luaL_newlib, luaL_loadbufferx } = lauxlib;

/**
 * The Lua 5.1 surface CONNMIX scripts were written for (CONNMIX runs gopher-lua 5.1), installed on a
 * Lua 5.3 state: table.getn/maxn, unpack, loadstring, math.pow and the 5.1 math functions (./math51),
 * string.gfind, string.char and string.format as gopher-lua has them (./string51), and the LuaBitOp
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
  openString51(L);
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
