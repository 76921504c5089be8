/**
 * The runtime patches of ./patches, and the few reads of a thread's internals the sandbox needs: the
 * fengari side of the sandbox limits and budget. Each function here reaches
 * into our private copy's internals and takes the policy (numbers, counters, error texts) as parameters;
 * src/lua/limits.ts and src/lua/vm.ts hold that policy. Install each patch once per process: a second
 * call would wrap the first. Each fails loudly when the internals it needs are not fengari 0.1.5's.
 */
import { lua, lauxlib, lualib, K, luaString, type LuaState } from './index';
import {
  ldo, ldebug, lobject, ltable, threadOf, OP_CONCAT, OP_EQ, OP_LT, OP_LE, OP_RETURN, OP_VARARG, OP_CALL, OP_TAILCALL,
  OP_SETLIST, OP_LEN, LUA_TLCL, LUA_TLCF, type Thread, type TableObject,
} from './internals';

/** The object a state shares with all its coroutines (fengari's global_State): a key for per-state data. */
export function globalStateOf(L: LuaState): object {
  return threadOf(L).l_G;
}

/** If the count hook of `L` is armed, makes it fire before the next instruction; returns whether it was armed. */
export function hookBeforeNextInstruction(L: LuaState): boolean {
  const thread = threadOf(L);
  if (!(thread.hookmask & lua.LUA_MASKCOUNT)) return false;
  thread.hookcount = 1;
  return true;
}

/** Whether the value on top of the stack is a Lua function whose first instruction returns no value. */
export function isEmptyLuaFunction(L: LuaState): boolean {
  const thread = threadOf(L);
  const closure = thread.stack[thread.top - 1]?.value as { p?: { code: Array<{ opcode: number; B: number }> } } | undefined;
  const first = closure?.p?.code[0];
  // RETURN with B = 1 returns nothing (B - 1 values).
  return first !== undefined && first.opcode === OP_RETURN && first.B === 1;
}

/**
 * Raises `message` (with the script position, as luaL_error) without running any message handler. A
 * hook runs with hooks off, so an `xpcall` handler called from it (as lua_error would) ran without a
 * budget: one that looped froze the node for good. Thrown by luaD_throw, past the handlers, the error
 * unwinds to the nearest pcall, where the caller's re-armed hook raises it again on the next instruction.
 */
export function throwPastHandlers(L: LuaState, message: string): never {
  lauxlib.luaL_where(L, 1);
  lua.lua_pushstring(L, Buffer.from(message));
  lua.lua_concat(L, 2);
  return ldo.luaD_throw(L, lua.LUA_ERRRUN);
}

/** Raises `message` as a runtime error of the running Lua function (with its position). */
export function raiseRuntimeError(L: LuaState, message: string): never {
  return ldebug.luaG_runerror(L, luaString(message));
}

/**
 * `..`: fengari's luaV_concat sizes and copies the whole result in one JS call, out of the count hook's
 * reach. Its OP_CONCAT instruction passes through luaG_traceexec first (whenever the count hook is
 * armed), so `check(L, bytes)` runs there, before anything is allocated, with the operands' length:
 * strings by their bytes, numbers as `numberBytes` each (an upper bound; `concatBytesExact` counts them
 * exactly), other operands not at all (they go through __concat).
 */
export function guardConcat(numberBytes: number, check: (L: LuaState, bytes: number) => void): void {
  watchInstructions(OP_CONCAT, (state, L, ci, instruction) => {
    check(state, concatBytes(L, ci.l_base + instruction.B, ci.l_base + instruction.C, numberBytes));
  });
}

/**
 * `==`, `<` and `<=` of two strings compare their bytes in one JS call (fengari's luastring_eq is a
 * byte loop): two equal 16 MiB strings take milliseconds, and a loop of such compares ran hundreds
 * of them between two looks of the count hook. `check(L, bytes)` runs before a compare of two strings
 * whose bytes it would have to read, when that is `fromBytes` or more: the shorter one's length
 * (strings of different lengths are unequal at once for `==`). A compare with a constant operand that
 * is not such a string never needs it, and compiled code skips it (see `watchMask`).
 */
export function guardCompare(check: (L: LuaState, bytes: number) => void, fromBytes: number): void {
  compareFromBytes = fromBytes;
  for (const op of [OP_EQ, OP_LT, OP_LE]) {
    watchInstructions(op, (state, L, ci, instruction) => {
      const k = ci.func.value.p?.k ?? [];
      const b = instruction.B & RK_CONSTANT ? k[instruction.B & ~RK_CONSTANT] : L.stack[ci.l_base + instruction.B];
      const c = instruction.C & RK_CONSTANT ? k[instruction.C & ~RK_CONSTANT] : L.stack[ci.l_base + instruction.C];
      if (!b?.ttisstring() || !c?.ttisstring()) return;
      const left = b.vslen();
      const right = c.vslen();
      if (op === OP_EQ && left !== right) return;
      const bytes = Math.min(left, right);
      if (bytes >= compareFromBytes) check(state, bytes);
    }, LONG_STRINGS);
  }
}

/** The `fromBytes` of guardCompare; until it is installed, any string may be long. */
let compareFromBytes = 0;

/** An RK operand with this bit set names a constant of the running function (lopcodes BITRK). */
const RK_CONSTANT = 1 << 8;

/**
 * Instructions whose work grows with the values they move: `...` (OP_VARARG), a call or return of a
 * run of values (`f(...)`, `return ...`, B = 0), a table constructor of one (`{...}`, OP_SETLIST), and
 * `#t` of a table built so fengari's border search falls back to a linear scan (it doubles from
 * `t[size + 1]`; a present key there is the sign). 100,000 varargs copied by each of a loop's
 * instructions held the node for 25 s to 7 min between two looks of the count hook. `charge(L, n)`
 * runs before such an instruction with the number of values it will walk (for `#t`, the table's size).
 */
export function guardBulkInstructions(charge: (L: LuaState, values: number) => void): void {
  const run = (L: Thread, first: number) => L.top - first;
  watchInstructions(OP_VARARG, (state, _L, ci) => {
    const count = ci.l_base - ci.funcOff - (ci.func.value.p?.numparams ?? 0) - 1;
    if (count > 0) charge(state, count);
  }, OPEN_RUN);
  for (const op of [OP_CALL, OP_TAILCALL, OP_SETLIST]) {
    watchInstructions(op, (state, L, ci, instruction) => charge(state, run(L, ci.l_base + instruction.A + 1)), OPEN_RUN);
  }
  watchInstructions(OP_RETURN, (state, L, ci, instruction) => charge(state, run(L, ci.l_base + instruction.A)), OPEN_RUN);
  watchInstructions(OP_LEN, (state, L, ci, instruction) => {
    const operand = L.stack[ci.l_base + instruction.B];
    if (!operand?.ttistable()) return;
    const table = operand.value as TableObject;
    const size = table.strong.size - table.tombstones;
    if (!ltable.luaH_getint(table, size + 1).ttisnil()) charge(state, size);
  });
}

/** Makes the count hook of `L` fire `n` instructions sooner: before the next instruction at the latest. */
export function chargeInstructions(L: LuaState, n: number): void {
  const thread = threadOf(L);
  if (thread.hookmask & lua.LUA_MASKCOUNT) thread.hookcount = Math.max(1, thread.hookcount - n);
}

type InstructionCheck = (state: LuaState, L: Thread, ci: Thread['ci'], instruction: { A: number; B: number; C: number }) => void;

/** Checks by opcode, run by the one wrapper of luaG_traceexec before their instruction. */
const instructionChecks: Array<InstructionCheck | undefined> = [];

/**
 * When an opcode's check runs: before every such instruction, only for an open run (B = 0), or only
 * for a compare whose constant operands, if any, are strings of guardCompare's `fromBytes` or more; 0 is never.
 */
const EVERY = 1;
const OPEN_RUN = 2;
const LONG_STRINGS = 4;
/**
 * Each opcode's 0 or one of the kinds above. Every instruction of every call passes the wrapper: most
 * leave after one byte read, and calls and returns of a fixed number of values without calling a check.
 */
const watched = new Uint8Array(64);

interface Operands {
  B: number;
  C: number;
}

/** The constants of a function (fengari's Proto.k), as `watchMask` reads them. */
type Constants = ReadonlyArray<{ ttisstring(): boolean; vslen(): number } | undefined>;

/**
 * The kinds of `watched` whose check runs before instruction `i` of a function with constants `k`: the
 * one rule the wrapper and ./compile (which calls the wrapper only where it has something to do, the
 * mask computed once per instruction) both apply.
 */
export function watchMask(i: Operands, k: Constants): number {
  const mask = i.B === 0 ? EVERY | OPEN_RUN : EVERY;
  return mayBeLongString(i.B, k) && mayBeLongString(i.C, k) ? mask | LONG_STRINGS : mask;
}

/** Whether RK operand `rk` may hold a string of compareFromBytes or more: any register may. */
function mayBeLongString(rk: number, k: Constants): boolean {
  if (!(rk & RK_CONSTANT)) return true;
  const constant = k[rk & ~RK_CONSTANT];
  return constant !== undefined && constant.ttisstring() && constant.vslen() >= compareFromBytes;
}

/** The live table of watched opcodes (see `watchMask`); checks installed later show in it. */
export function instructionWatch(): Uint8Array {
  return watched;
}

/**
 * Runs `check` before instructions of opcode `op` (all of them, or with `when` OPEN_RUN only those
 * moving a run of values up to the top) while the count hook is armed: the VM calls luaG_traceexec
 * before each instruction then. One wrapper serves every opcode, installed with the first check.
 */
function watchInstructions(op: number, check: InstructionCheck, when: typeof EVERY | typeof OPEN_RUN | typeof LONG_STRINGS = EVERY): void {
  if (instructionChecks.length === 0) {
    const traceexec = ldebug.luaG_traceexec;
    if (typeof traceexec !== 'function') throw new Error('fengari internals changed: ldebug.luaG_traceexec is missing');
    ldebug.luaG_traceexec = function instructionGuard(state: LuaState): void {
      const L = threadOf(state);
      const ci = L.ci;
      const instruction = ci.l_code[ci.l_savedpc - 1];
      const when = watched[instruction.opcode];
      if (when !== 0 && (when & watchMask(instruction, ci.func.value.p?.k ?? [])) !== 0) {
        (instructionChecks[instruction.opcode] as InstructionCheck)(state, L, ci, instruction);
      }
      traceexec(state);
    };
  }
  if (!(op >= 0 && op < watched.length)) throw new Error(`fengari internals changed: opcode ${op} out of range`);
  instructionChecks[op] = check;
  watched[op] = when;
}

function concatBytes(L: Thread, first: number, last: number, numberBytes: number): number {
  let total = 0;
  for (let r = first; r <= last; r++) {
    const value = L.stack[r];
    if (value.ttisstring()) total += value.vslen();
    else if (value.ttisnumber()) total += numberBytes;
  }
  return total;
}

/**
 * Inside a `guardConcat` check: the exact length of the `..` about to run. Converts its number operands
 * to strings in place, as luaV_concat is about to do (the operands are temporaries of the instruction).
 */
export function concatBytesExact(state: LuaState): number {
  const L = threadOf(state);
  const ci = L.ci;
  const instruction = ci.l_code[ci.l_savedpc - 1];
  let total = 0;
  for (let r = ci.l_base + instruction.B; r <= ci.l_base + instruction.C; r++) {
    const value = L.stack[r];
    if (value.ttisnumber()) lobject.luaO_tostring(state, value);
    if (value.ttisstring()) total += value.vslen();
  }
  return total;
}

/**
 * Host calls (library and `mix` functions) run without the hook. Calls `after(L)` when each one
 * returns or throws; Lua-to-Lua calls and the JS functions in `skip` go straight through.
 */
export function afterHostCalls(skip: WeakSet<object>, after: (L: LuaState) => void): void {
  const precall = ldo.luaD_precall;
  if (typeof precall !== 'function') throw new Error('fengari internals changed: ldo.luaD_precall is missing');
  ldo.luaD_precall = function timedPrecall(L: LuaState, off: number, nresults: number): boolean {
    const func = threadOf(L).stack[off];
    if (func.type === LUA_TLCL || (func.type === LUA_TLCF && skip.has(func.value as object))) {
      return precall(L, off, nresults);
    }
    try {
      return precall(L, off, nresults);
    } finally {
      after(L);
    }
  };
}

/** Writes into any luaL_Buffer so far: `countPatternSteps` counts the ones `gsub` makes as matching steps. */
let bufferWrites = 0;

/** What `capBuffers` asks of the limits. */
export interface BufferCaps {
  /** The most bytes a buffer of `L` may hold (Infinity: no cap); read when a library call starts one. */
  maxBytes(L: LuaState | null): number;
  /** A buffer of `L` allocated room for `size` bytes. */
  allocated(L: LuaState, size: number): void;
  /** Raises the error for a buffer of `L` that would hold `size` bytes, past `max`. */
  tooLarge(L: LuaState, size: number, max: number): never;
}

interface CappedBuffer {
  _L: LuaState | null;
  _b: Uint8Array;
  _n: number;
  _max: number;
}

/**
 * The string library builds its results in a luaL_Buffer (`format`, `gsub`, `char`, `pack`,
 * `utf8.char`, `table.concat`, ...), with no size limit. Accessors on its prototype see every growth:
 * the content length `n` may not pass `maxBytes`, nor the allocation twice that (fengari doubles a
 * buffer as it grows).
 */
export function capBuffers(caps: BufferCaps): void {
  const proto = lauxlib.luaL_Buffer?.prototype as object | undefined;
  if (!proto) throw new Error('fengari internals changed: lauxlib.luaL_Buffer is missing');
  const tooLarge = (buffer: CappedBuffer, size: number): never => {
    const max = buffer._max;
    buffer._max = Infinity; // the buffer is dropped with the error; do not fail again on its way out
    return caps.tooLarge(buffer._L as LuaState, size, max);
  };
  watchWrites<CappedBuffer, LuaState | null>(proto, 'L', (buffer, L) => {
    buffer._max = caps.maxBytes(L);
  });
  watchWrites<CappedBuffer, number>(proto, 'n', (buffer, n) => {
    bufferWrites++;
    if (n > buffer._max) tooLarge(buffer, n);
  });
  watchWrites<CappedBuffer, Uint8Array>(proto, 'b', (buffer, b) => {
    if (b.length > 2 * buffer._max + 64) tooLarge(buffer, b.length);
    if (buffer._L) caps.allocated(buffer._L, b.length);
  });
}

/**
 * Turns field `name` of the objects of `proto` into an accessor over `_<name>`: `beforeWrite` sees every
 * value written to it (and may throw to refuse it) before it is stored.
 */
function watchWrites<T, V>(proto: object, name: string, beforeWrite: (target: T, value: V) => void): void {
  const field = `_${name}`;
  Object.defineProperty(proto, name, {
    configurable: true,
    get(this: Record<string, V>) {
      return this[field];
    },
    set(this: Record<string, V>, value: V) {
      beforeWrite(this as unknown as T, value);
      this[field] = value;
    },
  });
}

/** What `countPatternSteps` asks of the limits. */
export interface PatternCaps {
  /** The most steps one pattern call of `L` may take (Infinity: no cap). */
  maxSteps(L: LuaState | undefined): number;
  /** After this many steps of one call (when under its max), `checkpoint` runs once. */
  checkpointSteps: number;
  checkpoint(L: LuaState): void;
  /** Raises the error for a call of `L` past `max` steps. */
  tooMany(L: LuaState, max: number): never;
}

interface CountedMatch {
  _L: LuaState | undefined;
  _end: number;
  _steps: number;
  _limit: number;
  /** Step count at which `stepsReached` runs next. */
  _next: number;
  /** bufferWrites when the call started. */
  _base: number;
}

/**
 * The pattern matcher (lstrlib `match` and friends) reads `ms.src_end` for every subject position it
 * examines, backtracking included. An accessor on MatchState counts those reads per call (the counter
 * restarts whenever a call sets `ms.L`), plus the buffer writes `gsub` makes for its replacements.
 */
export function countPatternSteps(caps: PatternCaps): void {
  const proto = matchStatePrototype();
  const stepsReached = (ms: CountedMatch): void => {
    if (ms._steps + (bufferWrites - ms._base) <= ms._limit) {
      if (ms._L) caps.checkpoint(ms._L);
      ms._next = ms._limit;
      return;
    }
    const limit = ms._limit;
    ms._limit = ms._next = Infinity;
    caps.tooMany(ms._L as LuaState, limit);
  };
  watchWrites<CountedMatch, LuaState | undefined>(proto, 'L', (ms, L) => {
    ms._steps = 0;
    ms._base = bufferWrites;
    ms._limit = caps.maxSteps(L);
    ms._next = Math.min(ms._limit, caps.checkpointSteps);
  });
  Object.defineProperty(proto, 'src_end', {
    configurable: true,
    get(this: CountedMatch) {
      if (++this._steps + (bufferWrites - this._base) > this._next) stepsReached(this);
      return this._end;
    },
    set(this: CountedMatch, end: number) {
      this._end = end;
    },
  });
}

/**
 * MatchState is private to fengari's lstrlib; `string.gmatch` keeps one in its iterator's third
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
