import { raise, type LuaState, type LuaFunction } from './fengari/index';
import {
  globalStateOf, hookBeforeNextInstruction, guardConcat, concatBytesExact, raiseRuntimeError, afterHostCalls, capBuffers,
  countPatternSteps, guardCompare, guardBulkInstructions, chargeInstructions,
} from './fengari/runtime-patches';
import { monotonicMs } from '../wire/clock';

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
 * | `maxStringSize` | 16 MiB | bytes of any string a script builds: `string.rep`, `table.concat`, the `..` operator, every string the string library assembles (`string.format`, `gsub`, `char`, `pack`, `utf8.char`, `%q`, `upper`...); also the JSON text of `mix.json_encode`/`mix.queue.push`, the result of `mix.base64_encode`, the string bytes of a table stored with `conn:set_context[_value]` (each reference to the same string counts), and the strings of one `redis:command` reply together (mix/redis.ts). |
 * | `maxPatternSteps` | 2,000,000 | subject positions one `string.find`/`match`/`gsub` call, or one step of a `gmatch` iterator, may examine, backtracking included (each byte `gsub` writes counts as one too). Backtracking patterns (`.-.-.-b`, `a*b`, `%b()` on long subjects) fail with "pattern too complex" instead of running for minutes. Plain finds (the `plain` flag, or no magic characters) use a linear-time search and are not counted. |
 * | `maxItems` | 100,000 | elements one call may walk, move or return: `table.concat`, `table.unpack`, `table.move`, `table.sort`, the shift of a positional `table.insert`/`table.remove`, results of `string.byte`/`utf8.codepoint`, arguments of `string.char`/`utf8.char`, bytes of a `string.pack`/`unpack`/`packsize` format, pieces of `mix.str_split`, values of a `mix.json_decode` document (about 1 µs each to build in Fengari). |
 * | `maxLoadSize` | 1 MiB | bytes of source one `load`/`loadstring` call compiles (a string, or the pieces a reader function returns); Fengari parses about 1 MiB a second. Entry files and `require`d modules are not affected. |
 * | `waitTimeout` | 60 | seconds one `conn:wait_context_value` waits before it returns `nil, err` (mix/conn.ts). |
 * | `maxMemory` | 256 MiB | estimated bytes the state may hold across calls, with the context values of the connections it wrote (fengari/memory.ts, mix/conn.ts; enforced by vm.ts, which replaces a state past twice it by a fresh one). |
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

/** Limits by Fengari global state (shared by the main thread and all its coroutines). */
const registry = new WeakMap<object, Required<SandboxLimits>>();
/** The smallest maxStringSize of any registered state: `..` below it needs no registry lookup. */
let smallestStringCap = Infinity;

/** The limits of the state `L` belongs to, or undefined for a state without any. */
export function limitsOf(L: LuaState | null | undefined): Required<SandboxLimits> | undefined {
  return L ? registry.get(globalStateOf(L)) : undefined;
}

/** The limits of the state `L` belongs to; the defaults for a state made without any. */
export function stateLimits(L: LuaState): Required<SandboxLimits> {
  return limitsOf(L) ?? DEFAULT_LIMITS;
}

/**
 * Makes the budget hook of thread `L` run before its next instruction, so the time a slow library
 * call just used is checked against the budget at once rather than up to 1000 instructions later.
 */
export function checkBudgetSoon(L: LuaState): void {
  if (hookBeforeNextInstruction(L)) slowCallPending.add(L);
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
  registry.set(globalStateOf(L), limits);
  smallestStringCap = Math.min(smallestStringCap, limits.maxStringSize);
}

/* ------------------------------------------------------------------------------------------------ */
/* The policy of the runtime patches (their mechanics: src/lua/fengari/runtime-patches.ts)          */
/* ------------------------------------------------------------------------------------------------ */

/** Strings from this size on take long enough to copy or scan that the budget is checked after them. */
export const LARGE_BYTES = 65_536;
/**
 * Text from this size on, when a host function parses it into Lua values (a table slot or string per
 * byte or two), asks for a budget check: such functions are not timed, and below it they take microseconds.
 */
export const PARSED_TEXT_BYTES = 1024;
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
  // First, since it alone may fail after building a state: nothing is patched yet if it does.
  countPatternSteps({
    maxSteps: (L) => limitsOf(L)?.maxPatternSteps ?? Infinity,
    checkpointSteps: PATTERN_CHECK_STEPS,
    checkpoint: checkBudgetSoon,
    tooMany: (L, max) => raise(L, `pattern too complex: more than ${max} matching steps`),
  });
  guardConcat(NUMBER_TEXT, checkConcat);
  guardCompare(checkBudgetSoon, LARGE_BYTES); // a `==`, `<` or `<=` reading long strings
  guardBulkInstructions(chargeBulk);
  afterHostCalls(untimed, lookAtClock);
  capBuffers({
    maxBytes: (L) => limitsOf(L)?.maxStringSize ?? Infinity,
    allocated: (L, size) => {
      if (size >= LARGE_BYTES) checkBudgetSoon(L);
    },
    tooLarge: (L, size, max) => raiseTooLarge(L, 'string', size, max),
  });
  patched = true;
}

/**
 * Raises the error for a string past the `max`-byte cap: `what` names it ("string", "string.rep: result"),
 * `size` is its length, or null when the call stopped before knowing it.
 */
export function raiseTooLarge(L: LuaState, what: string, size: number | null, max: number): never {
  return raise(L, `${what}${size === null ? '' : ` of ${size} bytes`} exceeds the ${max}-byte limit`);
}

/** A `..` of operands adding up to `bytes` (numbers counted as NUMBER_TEXT) is about to run on `L`. */
function checkConcat(L: LuaState, bytes: number): void {
  if (bytes < CONCAT_CHECK_BYTES && bytes <= smallestStringCap) return;
  if (bytes >= CONCAT_CHECK_BYTES) checkBudgetSoon(L);
  const limits = limitsOf(L);
  if (!limits || bytes <= limits.maxStringSize) return;
  // Near the limit, count numbers exactly.
  const exact = concatBytesExact(L);
  if (exact > limits.maxStringSize) {
    raiseRuntimeError(L, `string concatenation of ${exact} bytes exceeds the ${limits.maxStringSize}-byte limit`);
  }
}

/** Values below this many an instruction moves in the time of a few instructions: not worth a charge. */
const BULK_VALUES = 64;

/**
 * An instruction about to walk `values` stack values or table entries: it counts as that many
 * instructions towards the next budget check, so a loop of them is stopped as soon as a loop of
 * ordinary instructions doing the same work would be.
 */
function chargeBulk(L: LuaState, values: number): void {
  if (values >= BULK_VALUES) chargeInstructions(L, values);
}

/** Host functions that are cheap or request budget checks themselves: calls to them are not timed. */
const untimed = new WeakSet<object>();

/** Marks a host function as not worth timing (constant-time, or it calls checkBudgetSoon itself). */
export function markUntimed(fn: LuaFunction): LuaFunction {
  untimed.add(fn);
  return fn;
}

let lastLook = monotonicMs();

/**
 * After each timed host call: when a millisecond or more passed since the last look at the clock, have
 * the hook check the budget before the next instruction. A loop of slow calls then stops within its
 * budget plus one call. One clock read per call (~70 ns here), none for the cheap library functions.
 */
function lookAtClock(L: LuaState): void {
  const now = monotonicMs();
  if (now - lastLook >= SLOW_CALL_MS) checkBudgetSoon(L);
  lastLook = now;
}
