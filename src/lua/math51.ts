import { lua, lauxlib, K, type LuaState, type LuaFunction } from './fengari/index';
import { setField } from './sandbox';
import { markUntimed } from './limits';

const { lua_pushnumber, lua_pushinteger } = lua;
const { luaL_checknumber } = lauxlib;

/**
 * The math functions of Lua 5.1 that Lua 5.3 dropped, as gopher-lua (CONNMIX's Lua) has them:
 * `atan2`, `cosh`, `sinh`, `tanh`, `frexp`, `ldexp`, `log10`, and `mod`. gopher-lua's `mod` is
 * Lua's `%` (the result takes the divisor's sign: `math.mod(-5, 3)` is 1), not C's `fmod`. Its
 * `math.huge` is the largest float (1.7976931348623157e+308), not infinity.
 */
export function openMath51(L: LuaState): void {
  for (const [name, fn] of Object.entries(MATH51)) setField(L, 'math', name, markUntimed(fn));
  lua.lua_getglobal(L, K('math'));
  lua_pushnumber(L, Number.MAX_VALUE);
  lua.lua_setfield(L, -2, K('huge'));
  lua.lua_pop(L, 1);
}

const unary = (fn: (x: number) => number): LuaFunction => (L) => {
  lua_pushnumber(L, fn(luaL_checknumber(L, 1)));
  return 1;
};

const MATH51: Record<string, LuaFunction> = {
  atan2: (L) => {
    lua_pushnumber(L, Math.atan2(luaL_checknumber(L, 1), luaL_checknumber(L, 2)));
    return 1;
  },
  cosh: unary(Math.cosh),
  sinh: unary(Math.sinh),
  tanh: unary(Math.tanh),
  log10: unary(Math.log10),
  frexp: (L) => {
    const [mantissa, exponent] = frexp(luaL_checknumber(L, 1));
    lua_pushnumber(L, mantissa);
    lua_pushinteger(L, exponent);
    return 2;
  },
  ldexp: (L) => {
    // gopher-lua reads the exponent as an integer, truncating a fraction.
    lua_pushnumber(L, ldexp(luaL_checknumber(L, 1), Math.trunc(luaL_checknumber(L, 2))));
    return 1;
  },
  mod: (L) => {
    const divisor = luaL_checknumber(L, 2);
    let rest = luaL_checknumber(L, 1) % divisor;
    if ((divisor > 0 && rest < 0) || (divisor < 0 && rest > 0)) rest += divisor;
    lua_pushnumber(L, rest);
    return 1;
  },
};

/** `m * 2^e` in steps, so that neither a power of two nor a partial product overflows first. */
export function ldexp(m: number, e: number): number {
  if (m === 0 || !Number.isFinite(m) || Number.isNaN(e)) return m;
  let exponent = Math.max(-2200, Math.min(2200, e));
  let value = m;
  while (exponent > 1023) {
    value *= 2 ** 1023;
    exponent -= 1023;
  }
  while (exponent < -1022) {
    value *= 2 ** -1022;
    exponent += 1022;
  }
  return value * 2 ** exponent;
}

/** `[m, e]` with `x = m * 2^e` and 0.5 <= |m| < 1; zero, infinities and NaN give `[x, 0]`, as C's frexp. */
export function frexp(x: number): [number, number] {
  if (x === 0 || !Number.isFinite(x)) return [x, 0];
  let exponent = Math.max(-1073, Math.floor(Math.log2(Math.abs(x))) + 1);
  let mantissa = ldexp(x, -exponent);
  // log2 can be off by one near powers of two.
  while (Math.abs(mantissa) < 0.5) {
    mantissa *= 2;
    exponent--;
  }
  while (Math.abs(mantissa) >= 1) {
    mantissa /= 2;
    exponent++;
  }
  return [mantissa, exponent];
}
