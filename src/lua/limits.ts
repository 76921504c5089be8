import { performance } from 'node:perf_hooks';
import { lua, lauxlib, lualib, K, raise, luaString, type LuaState, type LuaFunction } from './fengari/index';
import { ldo, ldebug, lobject, OP_CONCAT, LUA_TLCL, LUA_TLCF } from './fengari/internals';

/**
 * Caps on what one Lua library call may build or scan. The count hook that enforces
 * `engine.luavm.callBudget` runs between VM instructions, so it cannot stop a single library call
 * (Fengari runs each one as a plain JS loop), and Fengari has no allocator hook to cap memory (its
 * values are JS objects the V8 collector owns). These caps keep every single call short and small.
 * `installLimits` also has the budget hook look at the clock right after a slow or large call
 * (instead of up to 1000 instructions later), so a loop of calls that each stay under the caps still stops within its budget.
 *
 * | limit | default | what it caps |
 * | --- | --- | --- |
 * | `maxStringSize` | 16 MiB | bytes of any string a script builds: `string.rep`, `table.concat`, the `..` operator, every string the string library assembles (`string.format`, `gsub`, `char`, `pack`, `utf8.char`, `%q`, `upper`...); also the JSON text of `mix.json_encode`/`mix.queue.push`, and the string bytes of a table stored with `conn:set_context[_value]` (each reference to the same string counts). |
 * | `maxPatternSteps` | 2,000,000 | subject positions one `string.find`/`match`/`gsub` call, or one step of a `gmatch` iterator, may examine, backtracking included (each byte `gsub` writes counts as one too). Backtracking patterns (`.-.-.-b`, `a*b`, `%b()` on long subjects) fail with "pattern too complex" instead of running for minutes. Plain finds (the `plain` flag, or no magic characters) use a linear-time search and are not counted. |
 * | `maxItems` | 100,000 | elements one call may walk, move or return: `table.concat`, `table.unpack`, `table.move`, `table.sort`, the shift of a positional `table.insert`/`table.remove`, results of `string.byte`/`utf8.codepoint`, arguments of `string.char`/`utf8.char`, pieces of `mix.str_split`, values of a `mix.json_decode` document (about 1 µs each to build in Fengari). |
 * | `maxLoadSize` | 1 MiB | bytes of source one `load`/`loadstring` call compiles (a string, or the pieces a reader function returns); Fengari parses about 1 MiB a second. Entry files and `require`d modules are not affected. |
 * | `waitTimeout` | 60 | seconds one `conn:wait_context_value` waits before it returns `nil, err` (mix/conn.ts). |
 * | `maxMemory` | 256 MiB | estimated bytes the state may hold across calls (memory.ts; enforced by vm.ts). |
 *
 * Measured here (a loaded 2-core box): at the caps, one call takes at most a few hundred ms (a 16 MiB
 * `s:upper()`, 2,000,000 pattern steps of `gsub` replacements); the guards cost about 10% on a tight
 * arithmetic loop (a check per instruction for `..`) and nothing measurable on library-heavy code.
 *
 * `maxItems` also counts the work of host calls that walk their input (mix/php-pack.ts, mix/json.ts, mix/url.ts, mix/strings.ts
 * json, parse_url and bytes_tostring, values.ts toJs for set_context_value, mix/redis.ts replies,
 * mix/http.ts headers and cookies, compat51.ts table.maxn), every visit of a shared subtree included. Not capped: a `__concat` metamethod's result inside a `..` chain (the
 * chain may reach twice `maxStringSize` before it is refused), and strings the C API builds for error
 * messages (`error(s)` adds a position to `s`).
 */
export interface SandboxLimits {
  /** Largest string, in bytes, that a library call or `..` may produce (default 16 MiB). */
  maxStringSize?: number;
  /** Matching steps (subject positions examined) one pattern call may take (default 2,000,000). */
  maxPatternSteps?: number;
  /** Elements one table-library call may walk, move or return (default 100,000). */
  maxItems?: number;
  /** Bytes of source one `load`/`loadstring` call may compile (default 1 MiB). */
  maxLoadSize?: number;
  /** Seconds one `conn:wait_context_value` waits before it returns `nil, err` (default 60). */
  waitTimeout?: number;
  /** Estimated bytes the state may hold across calls (globals, tables, strings; default 256 MiB). */
  maxMemory?: number;
}

export const DEFAULT_LIMITS: Required<SandboxLimits> = {
  maxStringSize: 16 * 1024 * 1024,
  maxPatternSteps: 2_000_000,
  maxItems: 100_000,
  maxLoadSize: 1024 * 1024,
  waitTimeout: 60,
  maxMemory: 256 * 1024 * 1024,
};

/** `limits` completed with the defaults; throws on values that are not positive integers. */
export function resolveLimits(limits: SandboxLimits = {}): Required<SandboxLimits> {
  const resolved = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof SandboxLimits>) {
    const value = limits[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value <= 0) throw new Error(`sandbox limit ${key} must be a positive integer, got ${value}`);
    resolved[key] = value;
  }
  return resolved;
}

/* ------------------------------------------------------------------------------------------------ */
/* Per-state registry                                                                               */
/* ------------------------------------------------------------------------------------------------ */

/** Limits by Fengari global state (`L.l_G`, shared by the main thread and all its coroutines). */
const registry = new WeakMap<object, Required<SandboxLimits>>();
/** The smallest maxStringSize of any registered state: `..` below it needs no registry lookup. */
let smallestStringCap = Infinity;

interface FengariThread {
  l_G: object;
  hookmask: number;
  hookcount: number;
  ci: { l_base: number; l_code: Array<{ opcode: number; B: number; C: number }>; l_savedpc: number };
  stack: Array<{ type: number; value: unknown; ttisstring(): boolean; ttisnumber(): boolean; vslen(): number }>;
}

function internals(L: LuaState): FengariThread {
  return L as unknown as FengariThread;
}

/** The limits of the state `L` belongs to, or undefined for a state without any. */
export function limitsOf(L: LuaState | null | undefined): Required<SandboxLimits> | undefined {
  return L ? registry.get(internals(L).l_G) : undefined;
}

/**
 * Makes the budget hook of thread `L` run before its next instruction, so the time a slow library
 * call just used is checked against the budget at once rather than up to 1000 instructions later.
 */
export function checkBudgetSoon(L: LuaState): void {
  const thread = internals(L);
  if (thread.hookmask & lua.LUA_MASKCOUNT) {
    thread.hookcount = 1;
    slowCallPending.add(L);
  }
}

/** Threads whose next budget check follows a slow library call (see `tookSlowCall`). */
const slowCallPending = new WeakSet<LuaState>();

/**
 * Whether the budget check now running on `L` was asked for by a slow library call: such a check weighs
 * more than an ordinary one, so a loop of slow calls stops soon after its budget while one call that
 * only looked slow (the process was descheduled) cannot stop a short hook alone.
 */
export function tookSlowCall(L: LuaState): boolean {
  return slowCallPending.delete(L);
}

/**
 * Enforces `limits` on the state `L` (and every coroutine it creates). Installs, once per process, the
 * Fengari-level guards they need: the `..` check, the caps inside the string library's buffer and
 * pattern matcher, and the budget check after slow calls. States never passed here are unaffected.
 */
export function installLimits(L: LuaState, limits: Required<SandboxLimits>): void {
  installPatches();
  registry.set(internals(L).l_G, limits);
  smallestStringCap = Math.min(smallestStringCap, limits.maxStringSize);
}

/* ------------------------------------------------------------------------------------------------ */
/* Process-wide patches of Fengari internals (fengari 0.1.5; checked at install, loudly)            */
/* ------------------------------------------------------------------------------------------------ */

// Internals of the same private fengari copy ./fengari runs (see src/lua/fengari/patches.ts, runtime patches).
const threadOf = internals;
/** Strings from this size on take long enough to copy or scan that the budget is checked after them. */
export const LARGE_BYTES = 65_536;
/** Upper bound on the text of a number (`%.14g` or a 32-bit integer). */
const NUMBER_TEXT = 32;
/** A `..` at least this long also asks for a budget check (copying it takes a while). */
const CONCAT_CHECK_BYTES = 256 * 1024;
/** Pattern steps after which a budget check is requested once the call returns. */
const PATTERN_CHECK_STEPS = 65_536;
/** Time (ms) between two looks at the clock after host calls that requests a budget check. */
const SLOW_CALL_MS = 1;

let patched = false;

function installPatches(): void {
  if (patched) return;
  const matchState = matchStatePrototype();
  patchConcat();
  patchSlowCalls();
  patchBuffer();
  patchMatcher(matchState);
  patched = true;
}

/**
 * `..`: Fengari's luaV_concat sizes and copies the whole result in one go, out of the hook's reach.
 * Its OP_CONCAT instruction passes through luaG_traceexec first (the count hook is always armed), so
 * the operands' total length is checked there, before anything is allocated.
 */
function patchConcat(): void {
  const traceexec = ldebug.luaG_traceexec;
  if (typeof traceexec !== 'function') throw new Error('fengari internals changed: ldebug.luaG_traceexec is missing');
  ldebug.luaG_traceexec = function concatGuard(state: LuaState): void {
    const L = threadOf(state);
    const ci = L.ci;
    const instruction = ci.l_code[ci.l_savedpc - 1];
    if (instruction.opcode === OP_CONCAT) checkConcat(L, ci.l_base + instruction.B, ci.l_base + instruction.C);
    traceexec(state);
  };
}

function checkConcat(L: FengariThread, first: number, last: number): void {
  let total = 0;
  for (let r = first; r <= last; r++) {
    const value = L.stack[r];
    if (value.ttisstring()) total += value.vslen();
    else if (value.ttisnumber()) total += NUMBER_TEXT; // at most; made exact below when it matters
    // Other operands go through __concat, whose string results are themselves capped.
  }
  if (total < CONCAT_CHECK_BYTES && total <= smallestStringCap) return;
  if (total >= CONCAT_CHECK_BYTES) checkBudgetSoon(L as unknown as LuaState);
  const limits = registry.get(L.l_G);
  if (!limits || total <= limits.maxStringSize) return;
  // Near the limit, count numbers exactly: convert them in place, as luaV_concat is about to do
  // (the operands are temporaries of the instruction).
  total = 0;
  for (let r = first; r <= last; r++) {
    const value = L.stack[r];
    if (value.ttisnumber()) lobject.luaO_tostring(L as unknown as LuaState, value);
    if (value.ttisstring()) total += value.vslen();
  }
  if (total > limits.maxStringSize) {
    ldebug.luaG_runerror(L as unknown as LuaState, luaString(`string concatenation of ${total} bytes exceeds the ${limits.maxStringSize}-byte limit`));
  }
}

/** Host functions that are cheap or request budget checks themselves: calls to them are not timed. */
const untimed = new WeakSet<object>();

/** Marks a host function as not worth timing (constant-time, or it calls checkBudgetSoon itself). */
export function markUntimed(fn: LuaFunction): void {
  untimed.add(fn);
}

/**
 * Host calls (library and `mix` functions) run without the hook. After each one (Lua-to-Lua calls and
 * functions marked untimed go straight through), look at the clock: when a millisecond or more passed
 * since the last look, have the hook check the budget before the next instruction. A loop of slow calls
 * then stops within its budget plus one call. One clock read per call (~70 ns here), none for the
 * cheap library functions.
 */
function patchSlowCalls(): void {
  const precall = ldo.luaD_precall;
  if (typeof precall !== 'function') throw new Error('fengari internals changed: ldo.luaD_precall is missing');
  let lastLook = performance.now();
  ldo.luaD_precall = function timedPrecall(L: LuaState, off: number, nresults: number): boolean {
    const func = threadOf(L).stack[off];
    if (func.type === LUA_TLCL || (func.type === LUA_TLCF && untimed.has(func.value as object))) {
      return precall(L, off, nresults);
    }
    try {
      return precall(L, off, nresults);
    } finally {
      const now = performance.now();
      if (now - lastLook >= SLOW_CALL_MS) checkBudgetSoon(L);
      lastLook = now;
    }
  };
}

/** Writes into any luaL_Buffer so far: `gsub` counts the ones its replacements make as matching steps. */
let bufferWrites = 0;

interface CappedBuffer {
  _L: LuaState | null;
  _b: Uint8Array;
  _n: number;
  _max: number;
}

/**
 * The string library builds its results in a luaL_Buffer (`format`, `gsub`, `char`, `pack`,
 * `utf8.char`, `table.concat`, ...). Accessors on its prototype see every growth: the content length
 * `n` may not pass maxStringSize, nor the allocation twice that, and a large buffer asks for a budget
 * check after the call.
 */
function patchBuffer(): void {
  const proto = lauxlib.luaL_Buffer?.prototype as object | undefined;
  if (!proto) throw new Error('fengari internals changed: lauxlib.luaL_Buffer is missing');
  Object.defineProperty(proto, 'L', {
    configurable: true,
    get(this: CappedBuffer) {
      return this._L;
    },
    set(this: CappedBuffer, L: LuaState | null) {
      this._L = L;
      this._max = limitsOf(L)?.maxStringSize ?? Infinity;
    },
  });
  Object.defineProperty(proto, 'n', {
    configurable: true,
    get(this: CappedBuffer) {
      return this._n;
    },
    set(this: CappedBuffer, n: number) {
      bufferWrites++;
      if (n > this._max) bufferTooLarge(this, n);
      this._n = n;
    },
  });
  Object.defineProperty(proto, 'b', {
    configurable: true,
    get(this: CappedBuffer) {
      return this._b;
    },
    set(this: CappedBuffer, b: Uint8Array) {
      if (b.length > 2 * this._max + 64) bufferTooLarge(this, b.length);
      if (b.length >= LARGE_BYTES && this._L) checkBudgetSoon(this._L);
      this._b = b;
    },
  });
}

function bufferTooLarge(buffer: CappedBuffer, size: number): never {
  const L = buffer._L as LuaState;
  const max = buffer._max;
  buffer._max = Infinity; // the buffer is dropped with the error; do not fail again on its way out
  return raise(L, `string of ${size} bytes exceeds the ${max}-byte limit`);
}

interface CountedMatch {
  _L: LuaState | undefined;
  _end: number;
  _steps: number;
  _limit: number;
  /** Step count at which patternSteps runs next. */
  _next: number;
  /** bufferWrites when the call started. */
  _base: number;
}

/**
 * The pattern matcher (lstrlib `match` and friends) reads `ms.src_end` for every subject position it
 * examines, backtracking included. An accessor on MatchState counts those reads per call (the counter
 * restarts whenever a call sets `ms.L`), plus the buffer writes `gsub` makes for its replacements, and
 * raises past maxPatternSteps.
 */
function patchMatcher(proto: object): void {
  Object.defineProperty(proto, 'L', {
    configurable: true,
    get(this: CountedMatch) {
      return this._L;
    },
    set(this: CountedMatch, L: LuaState | undefined) {
      this._L = L;
      this._steps = 0;
      this._base = bufferWrites;
      this._limit = limitsOf(L)?.maxPatternSteps ?? Infinity;
      this._next = Math.min(this._limit, PATTERN_CHECK_STEPS);
    },
  });
  Object.defineProperty(proto, 'src_end', {
    configurable: true,
    get(this: CountedMatch) {
      if (++this._steps + (bufferWrites - this._base) > this._next) patternSteps(this);
      return this._end;
    },
    set(this: CountedMatch, end: number) {
      this._end = end;
    },
  });
}

/** Past PATTERN_CHECK_STEPS: ask for a budget check after the call; past the limit: fail the call. */
function patternSteps(ms: CountedMatch): void {
  if (ms._steps + (bufferWrites - ms._base) <= ms._limit) {
    if (ms._L) checkBudgetSoon(ms._L);
    ms._next = ms._limit;
    return;
  }
  const limit = ms._limit;
  ms._limit = ms._next = Infinity;
  raise(ms._L as LuaState, `pattern too complex: more than ${limit} matching steps`);
}

/**
 * MatchState is private to Fengari's lstrlib; `string.gmatch` keeps one in its iterator's third
 * upvalue (a light userdata), which is how its prototype is reached.
 */
function matchStatePrototype(): object {
  const L = lauxlib.luaL_newstate();
  lauxlib.luaL_requiref(L, K('string'), lualib.luaopen_string, 1);
  lua.lua_getfield(L, -1, K('gmatch'));
  lua.lua_pushstring(L, K('x'));
  lua.lua_pushstring(L, K('x'));
  lua.lua_call(L, 2, 1);
  const name = lua.lua_getupvalue(L, -1, 3);
  const state = name === null ? null : (lua.lua_touserdata(L, -1) as { ms?: object } | null);
  const ms = state?.ms;
  const proto = ms ? Object.getPrototypeOf(ms) : null;
  if (!proto || !('src_end' in ms!) || !('matchdepth' in ms!)) {
    throw new Error('fengari internals changed: cannot reach the pattern matcher state (string.gmatch upvalue 3)');
  }
  return proto as object;
}
