import { lua, lauxlib, lualib, K, raise, luaToJsString, bytesView, type LuaState, type LuaFunction } from './fengari/index';
import { installFrameCompiler } from './fengari/compile';
import { installLimits, resolveLimits, limitsOf, markUntimed, checkBudgetSoon, raiseTooLarge, LARGE_BYTES, type SandboxLimits } from './limits';

const {
  LUA_REGISTRYINDEX, LUA_TTABLE, LUA_TSTRING, LUA_TNUMBER, LUA_TFUNCTION,
  lua_pop, lua_pushnil, lua_setglobal, lua_getglobal, lua_setfield, lua_getfield, lua_pushjsfunction,
  lua_pushjsclosure, lua_pushvalue, lua_upvalueindex, lua_call, lua_gettop, lua_pushnumber,
  lua_pushstring, lua_newtable, lua_settop, lua_isnoneornil, lua_rawgeti, lua_type, lua_tolstring,
  lua_tocfunction, lua_getupvalue, lua_pushinteger, lua_replace, lua_toboolean, lua_rawlen,
} = lua;
const {
  luaL_requiref, luaL_checkinteger, luaL_checklstring, luaL_optlstring, luaL_tolstring,
  luaL_checktype, luaL_optinteger, luaL_len,
} = lauxlib;

export { DEFAULT_LIMITS, type SandboxLimits } from './limits';

/**
 * Opens the safe standard libraries and removes every way out of the sandbox: no io, no package
 * search path, no debug, no file loading, no bytecode, no string.dump. `os` keeps only its clock
 * functions, and `print` goes to the host's log. `limits` (defaults in limits.ts) cap what one library
 * call may build or scan, since no hook can interrupt a single call. Lua functions run compiled to JS
 * (fengari/compile.ts), with the interpreter's behaviour.
 */
export function openSandbox(L: LuaState, print: (line: string) => void, options: SandboxLimits = {}): void {
  const limits = resolveLimits(options);
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
  setGlobal(L, 'load', textOnlyLoad(limits.maxLoadSize));
  setGlobal(L, 'collectgarbage', () => 0);
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
  installLimits(L, limits);
  installFrameCompiler();
  setField(L, 'string', 'rep', cappedRep(limits.maxStringSize));
  guardField(L, 'string', 'find', plainFind);
  guardField(L, 'string', 'byte', sliceGuard('string.byte', limits.maxItems));
  guardField(L, 'utf8', 'codepoint', sliceGuard('utf8.codepoint', limits.maxItems));
  guardField(L, 'string', 'char', argCountGuard('string.char', limits.maxItems));
  guardField(L, 'utf8', 'char', argCountGuard('utf8.char', limits.maxItems));
  for (const name of ['pack', 'unpack', 'packsize']) guardField(L, 'string', name, formatGuard(`string.${name}`, limits.maxItems));
  guardField(L, 'table', 'concat', cappedConcatGuard(limits.maxStringSize, limits.maxItems));
  guardField(L, 'table', 'unpack', unpackGuard(limits.maxItems));
  guardField(L, 'table', 'move', moveGuard(limits.maxItems));
  guardField(L, 'table', 'sort', sortGuard(limits.maxItems));
  guardField(L, 'table', 'insert', shiftGuard('table.insert', 3, 1, limits.maxItems));
  guardField(L, 'table', 'remove', shiftGuard('table.remove', 2, 0, limits.maxItems));
  for (const name of ['sub', 'upper', 'lower', 'reverse']) guardField(L, 'string', name, undefined, largeResultCheck);
  guardField(L, '_G', 'tonumber', undefined, largeArgumentCheck);
  // A metatable's __name goes into the result whole: a 16 MiB name made each call copy 16 MiB.
  guardField(L, '_G', 'tostring', undefined, largeResultCheck);
  for (const [table, names] of Object.entries(UNTIMED)) {
    lua_getglobal(L, K(table));
    for (const name of names) {
      lua_getfield(L, -1, K(name));
      const fn = lua_tocfunction(L, -1) as LuaFunction | null;
      if (fn) markUntimed(fn);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

/**
 * Library functions whose calls are not timed (see limits.ts patchSlowCalls): constant time, or
 * asking for a budget check themselves when their input or output is large (the string buffer, the
 * pattern matcher, the guards here). Not `rawequal`: it compares two strings byte by byte.
 */
const UNTIMED: Record<string, string[]> = {
  _G: ['type', 'select', 'rawget', 'rawset', 'rawlen', 'next', 'ipairs', 'pairs', 'tonumber',
    'tostring', 'getmetatable', 'setmetatable', 'assert', 'error'],
  string: ['byte', 'char', 'len', 'sub', 'upper', 'lower', 'reverse', 'format', 'find', 'match', 'gmatch', 'gsub', 'rep'],
  math: ['abs', 'ceil', 'floor', 'fmod', 'max', 'min', 'modf', 'random', 'randomseed', 'sqrt', 'tointeger', 'type',
    'ult', 'exp', 'log', 'sin', 'cos', 'tan', 'asin', 'acos', 'atan'],
  os: ['time', 'clock', 'difftime'],
};

/** After a call: a large string result asks for a budget check (building it took a while). */
function largeResultCheck(L: LuaState): void {
  if (lua_type(L, -1) === LUA_TSTRING && lua_rawlen(L, -1) >= LARGE_BYTES) checkBudgetSoon(L);
}

/** After a call: a large string argument asks for a budget check (reading it took a while). */
function largeArgumentCheck(L: LuaState): void {
  if (lua_type(L, 1) === LUA_TSTRING && lua_rawlen(L, 1) >= LARGE_BYTES) checkBudgetSoon(L);
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

/**
 * Replaces the library function `_G[table][name]` by one that runs `guard` first and `after` last.
 * The guard returns undefined to let the stock function run on the same stack frame (so its error
 * messages still name the function), or a result count when it has answered the call itself.
 * Returns the function installed.
 */
export function guardField(L: LuaState, table: string, name: string, guard?: (L: LuaState) => number | undefined,
  after?: (L: LuaState) => void): LuaFunction {
  lua_getglobal(L, K(table));
  lua_getfield(L, -1, K(name));
  const stock = lua_tocfunction(L, -1) as LuaFunction | null;
  if (!stock || lua_getupvalue(L, -1, 1) !== null) throw new Error(`sandbox: ${table}.${name} is not a plain library function`);
  lua_pop(L, 1);
  const guarded = (L: LuaState) => {
    const answered = guard?.(L);
    if (answered !== undefined) return answered;
    const results = stock(L);
    after?.(L);
    return results;
  };
  lua_pushjsfunction(L, guarded);
  lua_setfield(L, -2, K(name));
  lua_pop(L, 1);
  return guarded;
}

/** Where the stock `load` is kept: a registry field, out of scripts' reach. */
const STOCK_LOAD = K('connmix.load');

/**
 * `load` that refuses precompiled chunks (user code is always text) and sources over `maxSize`
 * bytes: Fengari's parser is one JS call the budget cannot interrupt (1 MiB parses in about a second).
 * A reader function is wrapped so the pieces it returns are counted.
 */
function textOnlyLoad(maxSize: number): LuaFunction {
  return (L) => {
    // Forward the caller's arguments with the mode forced to text; an explicit nil env must stay explicit.
    const nargs = lua_gettop(L);
    lua_settop(L, 4);
    if (lua_type(L, 1) === LUA_TSTRING && lua_tolstring(L, 1)!.length > maxSize) {
      lua_pushnil(L);
      lua_pushstring(L, Buffer.from(`chunk of ${lua_tolstring(L, 1)!.length} bytes exceeds the ${maxSize}-byte load limit`));
      return 2;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, STOCK_LOAD);
    if (lua_type(L, 1) === LUA_TFUNCTION) {
      lua_pushvalue(L, 1);
      lua_pushjsclosure(L, countedReader(maxSize), 1);
    } else {
      lua_pushvalue(L, 1);
    }
    lua_pushvalue(L, 2);
    lua_pushstring(L, K('t'));
    if (nargs >= 4) lua_pushvalue(L, 4);
    lua_call(L, nargs >= 4 ? 4 : 3, 2);
    return 2;
  };
}

/** A `load` reader that calls the script's reader (upvalue 1) and fails once the pieces pass `maxSize`. */
function countedReader(maxSize: number): LuaFunction {
  let total = 0;
  return (L) => {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, 1);
    if (lua_type(L, -1) === LUA_TSTRING) {
      total += lua_tolstring(L, -1)!.length;
      if (total > maxSize) return raise(L, `chunk exceeds the ${maxSize}-byte load limit`);
    }
    return 1;
  };
}

/** `os` with only its clock functions; `os.time()` is a float so `os.time() * 1000` does not wrap. */
function openOs(L: LuaState): void {
  lua_newtable(L);
  luaL_requiref(L, K('os'), lualib.luaopen_os, 0);
  for (const name of ['clock', 'difftime']) {
    lua_getfield(L, -1, K(name));
    lua_setfield(L, -3, K(name));
  }
  lua_getfield(L, -1, K('date'));
  lua_pushjsclosure(L, osDate, 1);
  lua_setfield(L, -3, K('date'));
  lua_pop(L, 1);
  lua_pushjsfunction(L, osTime);
  lua_setfield(L, -2, K('time'));
  lua_setglobal(L, K('os'));
}

/**
 * `os.date(format, time)`: each distinct conversion of `format` is formatted once by Fengari's os.date
 * and reused. Fengari formats every `%c` afresh (about 25 us each), so a 1 MB format of them held the
 * node for seconds; now a call is one pass over the format, and its result is capped at maxStringSize.
 */
const osDate: LuaFunction = (L) => {
  const format: Uint8Array = luaL_optlstring(L, 1, K('%c'));
  if (!lua_isnoneornil(L, 2)) luaL_checkinteger(L, 2); // as Fengari checks it, even for a format without conversions
  const utc = format[0] === 0x21; // '!'
  const start = utc ? 1 : 0;
  if (format[start] === 0x2a && format[start + 1] === 0x74) return callOriginalDate(L, format); // "*t"
  const max = limitsOf(L)?.maxStringSize ?? Infinity;
  const conversions = new Map<number, Uint8Array>();
  const parts: Uint8Array[] = [];
  let size = 0;
  let from = start;
  for (let i = start; i < format.length; i++) {
    if (format[i] !== 0x25) continue; // '%'
    parts.push(format.subarray(from, i));
    const letter = format[i + 1] ?? -1;
    let text = conversions.get(letter);
    if (text === undefined) {
      // One conversion through Fengari (which also rejects an invalid or missing letter).
      const spec = letter < 0 ? [0x25] : [0x25, letter];
      text = Uint8Array.from(callOriginalDateText(L, Uint8Array.from(utc ? [0x21, ...spec] : spec)));
      // Fengari copies the '!' into its result; C Lua does not.
      if (utc && text[0] === 0x21) text = text.subarray(1);
      conversions.set(letter, text);
    }
    parts.push(text);
    size += i - from + text.length;
    if (size > max) return raiseTooLarge(L, 'os.date: result', null, max);
    i++;
    from = i + 1;
  }
  parts.push(format.subarray(Math.min(from, format.length)));
  lua_pushstring(L, Buffer.concat(parts));
  return 1;
};

/** Calls Fengari's os.date (upvalue 1) with `format` and this call's time argument; leaves its result. */
function callOriginalDate(L: LuaState, format: Uint8Array): number {
  const now = lua_isnoneornil(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushstring(L, format);
  if (now) lua_pushnil(L);
  else lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

function callOriginalDateText(L: LuaState, format: Uint8Array): Uint8Array {
  callOriginalDate(L, format);
  const text: Uint8Array = lua_tolstring(L, -1)!;
  lua_pop(L, 1);
  return text;
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

/** `string.rep` that refuses to build a string larger than `max` bytes, and fills it natively. */
function cappedRep(max: number): LuaFunction {
  return (L) => {
    const s: Uint8Array = luaL_checklstring(L, 1);
    const n: number = luaL_checkinteger(L, 2);
    const sep: Uint8Array = luaL_optlstring(L, 3, new Uint8Array(0));
    const total = n <= 0 ? 0 : n * s.length + (n - 1) * sep.length;
    if (total > max) return raiseTooLarge(L, 'string.rep: result', total, max);
    if (total === 0) {
      lua_pushstring(L, new Uint8Array(0));
      return 1;
    }
    if (total >= LARGE_BYTES) checkBudgetSoon(L);
    const out = Buffer.allocUnsafe(total);
    // fill() repeats its pattern and cuts the last copy short: s, sep, s, ..., s.
    out.fill(sep.length === 0 ? s : Buffer.concat([s, sep]));
    lua_pushstring(L, out);
    return 1;
  };
}

/** Checks the size `table.concat` would build, and how many items it would walk, before it starts. */
function cappedConcatGuard(max: number, maxItems: number): (L: LuaState) => undefined {
  return (L) => {
    luaL_checktype(L, 1, LUA_TTABLE);
    const sep: Uint8Array = luaL_optlstring(L, 2, new Uint8Array(0));
    const first: number = luaL_optinteger(L, 3, 1);
    const last: number = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
    checkItems(L, 'table.concat', last - first + 1, maxItems);
    let total = 0;
    for (let i = first; i <= last; i++) {
      lua_rawgeti(L, 1, i);
      const type = lua_type(L, -1);
      if (type === LUA_TSTRING || type === LUA_TNUMBER) total += lua_tolstring(L, -1)!.length;
      lua_pop(L, 1);
      if (i > first) total += sep.length;
      if (total > max) raiseTooLarge(L, 'table.concat: result', null, max);
    }
    return undefined;
  };
}

function checkItems(L: LuaState, name: string, count: number, max: number): void {
  if (count > max) raise(L, `${name}: ${count} elements exceed the ${max}-element limit`);
}

/** `table.unpack(t, i, j)`: at most `max` results. Passes `j` on, so `__len` runs once. */
function unpackGuard(max: number): (L: LuaState) => undefined {
  return (L) => {
    const first: number = luaL_optinteger(L, 2, 1);
    const last: number = lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
    checkItems(L, 'table.unpack', last - first + 1, max);
    lua_settop(L, 3);
    lua_pushinteger(L, last);
    lua_replace(L, 3);
    return undefined;
  };
}

/** `table.move(a1, f, e, t)`: moves `e - f + 1` elements, one by one. */
function moveGuard(max: number): (L: LuaState) => undefined {
  return (L) => {
    const first: number = luaL_checkinteger(L, 2);
    const last: number = luaL_checkinteger(L, 3);
    checkItems(L, 'table.move', last - first + 1, max);
    return undefined;
  };
}

/** `table.sort(t)`: n log n comparisons in one call. */
function sortGuard(max: number): (L: LuaState) => undefined {
  return (L) => {
    if (lua_type(L, 1) === LUA_TTABLE) checkItems(L, 'table.sort', luaL_len(L, 1), max);
    return undefined;
  };
}

/**
 * Positional `table.insert(t, pos, v)` / `table.remove(t, pos)` shift every element after `pos`;
 * `extra` is 1 for insert (the list grows by one). Appending and removing the last element are free.
 */
function shiftGuard(name: string, positionalArgs: number, extra: number, max: number): (L: LuaState) => undefined {
  return (L) => {
    if (lua_gettop(L) !== positionalArgs || lua_type(L, 1) !== LUA_TTABLE || lua_type(L, 2) !== LUA_TNUMBER) return undefined;
    const size = luaL_len(L, 1) + extra;
    const position = lua.lua_tonumber(L, 2) as number;
    checkItems(L, name, size - position, max);
    return undefined;
  };
}

/** Lua's posrelat: a negative position counts from the end. */
function relativePosition(position: number, length: number): number {
  if (position >= 0) return position;
  if (-position > length) return 0;
  return length + position + 1;
}

/** `string.byte(s, i, j)` and `utf8.codepoint(s, i, j)` return one value per position in i..j. */
function sliceGuard(name: string, max: number): (L: LuaState) => undefined {
  return (L) => {
    if (lua_gettop(L) < 3) return undefined; // without j, one value
    const length = (luaL_checklstring(L, 1) as Uint8Array).length;
    const first = relativePosition(luaL_optinteger(L, 2, 1), length);
    const last = relativePosition(luaL_optinteger(L, 3, first), length);
    const count = Math.min(last, length) - Math.max(first, 1) + 1;
    checkItems(L, name, count, max);
    if (count >= 10_000) checkBudgetSoon(L);
    return undefined;
  };
}

/**
 * `string.pack`, `unpack` and `packsize` read their format option by option (about 2 us each in
 * Fengari, 20 us for an unpacked result): a 16 MiB format held the node for seconds. Each option is
 * at least one byte of the format, and gives `unpack` one result at most.
 */
function formatGuard(name: string, max: number): (L: LuaState) => undefined {
  return (L) => {
    checkItems(L, name, (luaL_checklstring(L, 1) as Uint8Array).length, max);
    return undefined;
  };
}

/** `string.char(...)` and `utf8.char(...)` take one argument per character. */
function argCountGuard(name: string, max: number): (L: LuaState) => undefined {
  return (L) => {
    checkItems(L, name, lua_gettop(L), max);
    return undefined;
  };
}

/** Lua pattern magic characters: a pattern without any is searched for as plain text. */
const SPECIALS = new Set(Array.from('^$*+?.([%-', (c) => c.charCodeAt(0)));

/**
 * `string.find` of plain text (the `plain` flag, or a pattern without magic characters) in linear
 * time. Fengari, like Buffer#indexOf, compares byte by byte from every candidate position, which
 * takes seconds for a 100 KB subject and a 50 KB needle; patterns go to the stock function.
 */
const plainFind = (L: LuaState): number | undefined => {
  const s: Uint8Array = luaL_checklstring(L, 1);
  const p: Uint8Array = luaL_checklstring(L, 2);
  if (!lua_toboolean(L, 4) && p.some((byte) => SPECIALS.has(byte))) return undefined;
  let init = relativePosition(luaL_optinteger(L, 3, 1), s.length);
  if (init < 1) init = 1;
  if (init > s.length + 1) {
    lua_pushnil(L);
    return 1;
  }
  const at = searchBytes(s, p, init - 1);
  if ((at < 0 ? s.length : at) - init >= LARGE_BYTES) checkBudgetSoon(L); // a long scan
  if (at < 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, at + 1);
  lua_pushinteger(L, at + p.length);
  return 2;
};

/** Where `needle` first occurs in `haystack` at or after `from`, or -1; O(n + m) in the worst case. */
export function searchBytes(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const m = needle.length;
  if (m === 0) return from;
  // Tiny inputs (a channel name split at "@"): a plain loop, no Buffer views to make.
  if ((haystack.length - from) * m <= 256) {
    outer: for (let i = from; i <= haystack.length - m; i++) {
      for (let j = 0; j < m; j++) if (haystack[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  }
  // Short needles or small inputs: the native search is fastest and its worst case is small.
  if (m <= 16 || (haystack.length - from) * m <= 1 << 22) return bytesView(haystack).indexOf(bytesView(needle), from);
  // Knuth-Morris-Pratt.
  const fail = new Int32Array(m);
  for (let i = 1, k = 0; i < m; i++) {
    while (k > 0 && needle[i] !== needle[k]) k = fail[k - 1];
    if (needle[i] === needle[k]) k++;
    fail[i] = k;
  }
  for (let i = from, k = 0; i < haystack.length; i++) {
    while (k > 0 && haystack[i] !== needle[k]) k = fail[k - 1];
    if (haystack[i] === needle[k]) k++;
    if (k === m) return i - m + 1;
  }
  return -1;
}
