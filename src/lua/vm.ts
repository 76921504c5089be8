import * as fs from 'node:fs';
import * as path from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { lua, lauxlib, K, raise, luaToJsString, stackSlots, type LuaState, type LuaFunction } from './fengari/index';
import { isEmptyLuaFunction, throwPastHandlers, globalStateOf } from './fengari/runtime-patches';
import { openSandbox, DEFAULT_LIMITS, type SandboxLimits } from './sandbox';
import { stateLimits, tookSlowCall } from './limits';
import { estimateStateBytes } from './fengari/memory';
import { threadCpuMs } from './thread-clock';
import { openCompat51, bitModule } from './compat51';
import { openRequire, forgetModules, type BuiltinModule } from './require';
import { loadLua51 } from './syntax51';
import type { Logger } from '../log';
import { monotonicMs } from '../wire/clock';

const {
  LUA_OK, LUA_YIELD, LUA_REGISTRYINDEX, LUA_MASKCOUNT, LUA_TFUNCTION, LUA_TSTRING, LUA_TNUMBER,
  lua_newthread, lua_resume, lua_sethook, lua_atnativeerror, lua_isyieldable, lua_yield, lua_pushstring,
  lua_settop, lua_gettop, lua_rawgeti, lua_getglobal, lua_type, lua_pushjsfunction, lua_pcall, lua_tolstring,
  lua_touserdata, lua_pushnil, lua_typename, lua_pop,
} = lua;
const { luaL_newstate, luaL_ref, luaL_unref, luaL_traceback } = lauxlib;

/** Instructions between two budget checks: small enough to stop a runaway loop within a millisecond. */
const HOOK_INTERVAL = 1000;
/** Hook firings a call must have run before its budget can stop it (MIN_TICKS x HOOK_INTERVAL instructions). */
const MIN_TICKS = 20;
/** What a check right after a slow library call counts for (a loop of them stops after four). */
const SLOW_CALL_TICKS = 5;
/**
 * Off-CPU time (ms) below which a late call is not forgiven: the CPU clock lags by up to a scheduler
 * tick (10 ms at HZ=100), and a runaway loop must never gain time from the clocks' disagreement.
 */
const OFF_CPU_SLACK_MS = 20;
/**
 * Off-CPU time one call may be forgiven, in budgets: where the CPU clock stops short of the truth (a
 * tickless CPU), a runaway loop still ends after this many more budgets of wall time.
 */
const MAX_FORGIVEN_BUDGETS = 10;
/** Top-level code of an entry file (run at load) gets this budget instead of the per-call one. */
const LOAD_BUDGET_MS = 10_000;
/** Hook calls between two looks at the heap when none reaches the budget hook (a look costs ~0.2 us). */
const CALLS_PER_LOOK = 16;
/** Finished coroutines kept for reuse, at most. */
const MAX_IDLE_THREADS = 8;
/** A coroutine whose stack grew past this many slots is not reused (its stack would stay that big). */
const MAX_RECYCLED_STACK = 1000;
/** Heap growth (bytes) that has the state walked again, at least. */
const MIN_WALK_AFTER = 16 * 2 ** 20;
/**
 * A state whose own estimate (contexts aside) passes this many times maxMemory is replaced by a fresh one.
 * Stopping the calls that grow it does not undo what they kept, and each walk lets it grow a quarter
 * more: a script appending to a global table took the node past 2 GB within a minute.
 */
const RESET_FACTOR = 2;

/** The process heap, JS objects plus external memory (where long Lua strings' bytes live). One cheap call. */
function heapBytes(): number {
  const heap = getHeapStatistics();
  return heap.used_heap_size + heap.external_memory;
}

/** Heap spaces whose objects are young: what a script keeps moves out of them within two collections. */
const YOUNG_SPACES = new Set(['new_space', 'new_large_object_space']);

/**
 * The part of heapBytes a state can have grown: JS objects that survived the young generation, plus
 * external memory. Young objects are left out: a busy server's short-lived garbage filled them by
 * megabytes between two looks, and had the state walked for nothing. About three times heapBytes' cost.
 */
function keptHeapBytes(): number {
  let old = 0;
  for (const space of getHeapSpaceStatistics()) if (!YOUNG_SPACES.has(space.space_name)) old += space.space_used_size;
  return old + getHeapStatistics().external_memory;
}

export interface LuaVmOptions<Owner = unknown> {
  /** Absolute path of the entry file; `require` is limited to its folder. */
  entry: string;
  /** Hooks the entry must define. */
  hooks: readonly string[];
  /** Hooks the entry may define (calling one it does not define does nothing). */
  optionalHooks?: readonly string[];
  /** Older names of required hooks: an entry that defines `older` and not `hook` gets `older` called as `hook`. */
  hookAliases?: Readonly<Record<string, string>>;
  /** Milliseconds of Lua execution one hook call may use. */
  callBudget: number;
  log: Logger;
  limits?: SandboxLimits;
  /** Installs host modules (the `mix` table) into a fresh state. */
  install?: (vm: LuaVM<Owner>) => void;
  /** Extra modules served by `require` before any file. */
  builtins?: Record<string, BuiltinModule>;
}

/** A hook call that failed: a Lua error, a native error or an exhausted budget, with its traceback. */
export class LuaHookError extends Error {
  constructor(
    readonly hook: string,
    readonly traceback: string,
    readonly timedOut: boolean,
  ) {
    super(`${hook}: ${traceback}`);
  }
}

/** The entry (or a changed file at reload) failed to compile, run, or define its hooks. */
export class LuaLoadError extends Error {}

/** Pushes the arguments of a hook call onto the coroutine and returns how many it pushed. */
export type PushArgs = (L: LuaState) => number;

/** A call suspended in a host function, and how to end its wait early. */
interface Wait<Owner> {
  readonly call: Call<Owner>;
  readonly pushError: (L: LuaState, error: Error) => number;
  readonly cancel?: () => void;
}

/** One hook call in progress: its coroutine, owner, and the Lua time it has used so far. */
interface Call<Owner> {
  readonly hook: string;
  /** Null for a call no connection made (`init`). */
  readonly owner: Owner | null;
  readonly thread: LuaState;
  readonly done: (error: LuaHookError | null) => void;
  used: number;
  timedOut: boolean;
  /** The state grew past engine.luavm.limits.maxMemory during this call: it is being stopped. */
  overMemory: boolean;
  /** Whoever made the call reads the coroutine's results after `done` (SocketHooks: protocol_decode). */
  readonly keepsThread: boolean;
}

/**
 * One Lua state for one business server. Each hook call runs in a coroutine of its own, so a host
 * function that waits (`suspend`) pauses that call only. A count hook enforces a per-call budget of
 * Lua time; once it is spent the hook fires on every instruction, so a `pcall` cannot swallow it.
 * The same hook stops a call that grows the state past its memory budget (memory.ts estimates it).
 * A call that yields without a host wait is a script error: nothing would ever resume it.
 */
export class LuaVM<Owner = unknown> {
  private state: LuaState;
  /** Counts the states this VM has run: a fresh one after a reset (see resetState) has the next number. */
  private stateNumber = 1;
  /** The state's own estimate passed RESET_FACTOR x maxMemory: it is replaced once the running call ends. */
  private resetPending = false;
  readonly entry: string;
  readonly chunkName: string;
  private readonly hookRefs = new Map<string, number>();
  /** Hooks whose first instruction returns nothing (see isEmptyHook). */
  private emptyHooks = new Set<string>();
  private running: Call<Owner> | null = null;
  /** Suspended calls by owner (an owner's events run one at a time, so it has one at most). */
  private readonly waits = new Map<Owner | null, Wait<Owner>>();
  private deadline = Infinity;
  /** Budget hook firings (HOOK_INTERVAL instructions each) since the running call last resumed. */
  private ticks = 0;
  /** The thread's CPU time and the wall time at a long call's last look at both (see forgaveOffCpu); NaN before. */
  private cpuMark = NaN;
  private wallMark = 0;
  /** Wall time (ms) of the running call not counted against its budget: the thread was off the CPU. */
  private forgiven = 0;
  /** What the `.lua` files looked like at the last (re)load; a change triggers a reload. */
  private loadedFiles = '';
  /** engine.luavm.limits.maxMemory: estimated bytes the state may hold. */
  private readonly maxMemory: number;
  /** Process heap (JS + external) when the state was last walked, or the lowest seen since. */
  private heapAtWalk = heapBytes();
  /** keptHeapBytes() then, or its lowest since. */
  private keptAtWalk = keptHeapBytes();
  /** Heap growth after which the state is walked again. */
  private walkAfter = MIN_WALK_AFTER;
  /** The state's estimated size at the last walk. */
  private estimate = 0;
  /** Above this estimate a call is stopped: maxMemory, or the last estimate that was over it. */
  private memoryMark: number;
  /** Calls finished since the last look at the heap. */
  private callsSinceLook = 0;
  /** Coroutines of finished calls, ready for the next (see releaseThread). */
  private readonly idleThreads: LuaState[] = [];
  /** What the host keeps for the script outside the state (connection contexts): see countAlso. */
  private readonly heldOutside: Array<() => number> = [];

  constructor(private readonly options: LuaVmOptions<Owner>) {
    this.entry = options.entry;
    this.chunkName = displayPath(options.entry);
    this.state = this.newState();
    this.maxMemory = this.memoryMark = stateLimits(this.state).maxMemory;
  }

  /** The Lua state; a fresh one after a reset (`generation` tells them apart). */
  get L(): LuaState {
    return this.state;
  }

  /** Which state `L` is: host values made for an earlier one (a connection's userdata) are made again. */
  get generation(): number {
    return this.stateNumber;
  }

  /** Whether thread `L` belongs to the current state (not to one replaced while a call of it waited). */
  inCurrentState(L: LuaState): boolean {
    return globalStateOf(L) === globalStateOf(this.state);
  }

  /** A state with the sandbox, the 5.1 surface, `require` and the host's modules, the entry not yet run. */
  private newState(): LuaState {
    const options = this.options;
    const L = (this.state = luaL_newstate());
    lua_atnativeerror(L, (L: LuaState) => {
      const error = lua_touserdata(L, 1) as Error | undefined;
      options.log.error('native error in a Lua host function', { stack: error?.stack ?? String(error) });
      lua_pushstring(L, Buffer.from(`host error: ${error?.message ?? String(error)}`));
      return 1;
    });
    openSandbox(L, (line) => options.log.info(line, { lua: this.chunkName }), options.limits ?? DEFAULT_LIMITS);
    openCompat51(L);
    openRequire(L, moduleRoots(options.entry), { bit: bitModule, ...options.builtins });
    options.install?.(this);
    lua_sethook(L, this.budgetHook, LUA_MASKCOUNT, HOOK_INTERVAL);
    return L;
  }

  /**
   * Replaces a state that grew past RESET_FACTOR x maxMemory by a fresh one running the entry, as at
   * start: the script's globals and modules are gone, connections and their contexts stay. Calls that
   * wait on a host call finish in the old state, which is freed after them. If the entry no longer
   * loads, the old state goes on serving.
   */
  private resetState(): void {
    this.resetPending = false;
    const old = { state: this.state, hookRefs: new Map(this.hookRefs), emptyHooks: this.emptyHooks, heldOutside: [...this.heldOutside] };
    const estimate = this.estimate;
    this.heldOutside.length = 0;
    this.hookRefs.clear();
    try {
      this.newState();
      this.runChunk(this.compile(fs.readFileSync(this.entry)));
      this.resolveHooks();
    } catch (error) {
      this.state = old.state;
      this.hookRefs.clear();
      for (const [hook, ref] of old.hookRefs) this.hookRefs.set(hook, ref);
      this.emptyHooks = old.emptyHooks;
      this.heldOutside.length = 0;
      this.heldOutside.push(...old.heldOutside);
      this.options.log.error('Lua state reset failed, the old state keeps serving', { lua: this.chunkName, error: (error as Error).message });
      return;
    }
    this.stateNumber++;
    this.idleThreads.length = 0;
    this.estimate = 0;
    this.memoryMark = this.maxMemory;
    this.walkAfter = MIN_WALK_AFTER;
    this.heapAtWalk = heapBytes();
    this.keptAtWalk = keptHeapBytes();
    this.options.log.error('Lua state reset: it held more than twice its memory budget', {
      lua: this.chunkName,
      estimated_bytes: estimate,
      max_memory: this.maxMemory,
    });
  }

  /**
   * Counts the bytes `source` reports in the state's memory estimate: what the host keeps on the
   * script's behalf (connection contexts), which the walk of the state cannot see.
   */
  countAlso(source: () => number): void {
    this.heldOutside.push(source);
  }

  /** The owner (connection) whose hook is running right now, or null outside hook calls. */
  get current(): Owner | null {
    return this.running ? this.running.owner : null;
  }

  /** Compiles and runs the entry file, then checks that every required hook is a function. */
  load(): void {
    this.loadedFiles = luaFilesSignature(luaFiles(scriptsRoot(this.entry)));
    this.runChunk(this.compile(fs.readFileSync(this.entry)));
    this.resolveHooks();
    // Past its budget from the start, the state would have the first look at the heap stop some
    // connection's innocent call, then be replaced by a fresh one just as large: refused here instead.
    const held = estimateStateBytes(this.L);
    if (held > this.maxMemory) {
      throw new LuaLoadError(`${this.chunkName} holds about ${sizeText(held)} once loaded, more than ` +
        `engine.luavm.limits.maxMemory (${sizeText(this.maxMemory)}): raise maxMemory, or keep less at load`);
    }
  }

  /**
   * Reloads the entry (and, lazily, its modules) if any `.lua` file under its folder changed since the
   * last load. A file that fails to compile leaves the previous code serving. Returns whether it reloaded.
   */
  reloadIfChanged(): boolean {
    // Reading the files can fail for a while (EMFILE while clients fill the descriptor table): the
    // check is then logged and made again next time, with the previous code serving meanwhile.
    let files: string;
    let listed: string[];
    try {
      listed = luaFiles(scriptsRoot(this.entry));
      files = luaFilesSignature(listed);
      if (files === this.loadedFiles) return false;
    } catch (error) {
      this.options.log.warn('Lua reload check failed, retrying at the next check', { error: (error as Error).message });
      return false;
    }
    const previous = this.loadedFiles;
    this.loadedFiles = files;
    let chunk: number;
    try {
      chunk = this.compile(fs.readFileSync(this.entry));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EMFILE' || code === 'ENFILE') this.loadedFiles = previous;
      this.options.log.error('Lua reload failed, previous code keeps serving', { error: (error as Error).message });
      return false;
    }
    // A module that no longer compiles keeps the previous code too: once forgotten, hooks that require
    // it later would load the broken file.
    const broken = firstCompileError(this.L, listed);
    if (broken) {
      luaL_unref(this.L, LUA_REGISTRYINDEX, chunk);
      this.options.log.error('Lua reload failed, previous code keeps serving', { error: broken });
      return false;
    }
    forgetModules(this.L);
    try {
      this.runChunk(chunk);
      this.resolveHooks();
      this.options.log.info('Lua code reloaded', { entry: this.chunkName });
      return true;
    } catch (error) {
      this.options.log.error('Lua reload failed', { error: (error as Error).message });
      return false;
    }
  }

  /**
   * Whether `hook` returns at once without a value (its body is empty, like the seed's on_handshake):
   * a caller that ignores results need not call it, nor build its arguments.
   */
  isEmptyHook(hook: string): boolean {
    return this.emptyHooks.has(hook);
  }

  hasHook(hook: string): boolean {
    return this.hookRefs.has(hook);
  }

  /**
   * Calls global `hook` with the arguments `pushArgs` pushes, in a coroutine of its own owned by `owner`.
   * `done` runs when the call finishes, possibly later if the hook waits on a host function. Unless
   * `keepsThread`, the coroutine is reused once `done` returns, so `done` must read its results at once.
   */
  call(owner: Owner | null, hook: string, pushArgs: PushArgs, done: (error: LuaHookError | null) => void,
    keepsThread = false): void {
    const ref = this.hookRefs.get(hook);
    if (ref === undefined) {
      done(null);
      return;
    }
    const thread = this.idleThreads.pop() ?? this.newThread();
    lua_rawgeti(thread, LUA_REGISTRYINDEX, ref);
    let nargs: number;
    try {
      nargs = pushArgs(thread);
    } catch (error) {
      done(new LuaHookError(hook, `cannot pass arguments: ${(error as Error).message}`, false));
      return;
    }
    const call: Call<Owner> = { hook, owner, thread, done, used: 0, timedOut: false, overMemory: false, keepsThread };
    this.resume(call, nargs);
  }

  private newThread(): LuaState {
    // Fengari's objects live as long as JS holds them: the Call keeps its coroutine alive, so it is not
    // anchored in the registry (a registry ref per call made every call slower as refs piled up).
    const thread = lua_newthread(this.L) as LuaState;
    lua_pop(this.L, 1);
    return thread;
  }

  /**
   * Keeps the coroutine of a call that returned normally for the next call: making one costs a state
   * object and its stack, about a fifth of an empty hook call. resume hands back every such call's
   * coroutine but a `keepsThread` one, whose caller hands it back once it has read the results (only
   * once, and only for a call that ended without error). One whose stack grew deep would keep its
   * memory; a few idle ones are enough, as calls run one at a time.
   */
  releaseThread(thread: LuaState): void {
    if (this.idleThreads.length >= MAX_IDLE_THREADS || stackSlots(thread) > MAX_RECYCLED_STACK) return;
    if (!this.inCurrentState(thread)) return; // a coroutine of a state since reset
    lua_settop(thread, 0);
    this.idleThreads.push(thread);
  }

  /**
   * For host functions that wait: pauses the running hook call until `work` settles, then resumes it
   * with the values `pushResult` pushes. Raises a Lua error where waiting is impossible (the main
   * chunk, a metamethod, a sort comparator, or a coroutine the script made itself).
   */
  suspend<T>(L: LuaState, work: Promise<T>, pushResult: (L: LuaState, value: T) => number,
    pushError: (L: LuaState, error: Error) => number, cancel?: () => void): number {
    const call = this.running;
    if (!call || call.thread !== L || !lua_isyieldable(L)) {
      work.catch(() => undefined);
      return raise(L, 'cannot wait here (only directly inside a hook, not in the main chunk, a metamethod or a coroutine)');
    }
    const wait: Wait<Owner> = { call, pushError, cancel };
    this.waits.set(call.owner, wait);
    const settled = (push: (thread: LuaState) => number): void => {
      if (this.waits.get(call.owner) !== wait) return; // released meanwhile
      this.waits.delete(call.owner);
      this.resumeWith(call, push);
    };
    work.then(
      (value) => settled((thread) => pushResult(thread, value)),
      (error: Error) => settled((thread) => pushError(thread, error)),
    );
    lua_yield(L, 0);
    return 0;
  }

  /**
   * The owner is gone (its connection closed): a call of its that waits resumes now with the error
   * "connection closed", and the work it waited for is cancelled where that is possible (an HTTP
   * request is aborted; a Redis command already sent runs to its end, unheard). Its later hooks, such
   * as on_close, then run without waiting for the work.
   */
  release(owner: Owner): void {
    const wait = this.waits.get(owner);
    if (!wait) return;
    this.waits.delete(owner);
    wait.cancel?.();
    this.resumeWith(wait.call, (thread) => wait.pushError(thread, new Error('connection closed')));
  }

  private resumeWith(call: Call<Owner>, push: (thread: LuaState) => number): void {
    let nresults: number;
    try {
      nresults = push(call.thread);
    } catch (error) {
      lua_settop(call.thread, 0);
      lua_pushnil(call.thread);
      lua_pushstring(call.thread, Buffer.from(String((error as Error).message)));
      nresults = 2;
    }
    this.resume(call, nresults);
  }

  private resume(call: Call<Owner>, nargs: number): void {
    const outer = this.running;
    const outerDeadline = this.deadline;
    const outerForgiven = this.forgiven;
    this.running = call;
    const started = monotonicMs();
    this.deadline = started + this.options.callBudget - call.used;
    this.ticks = 0;
    this.cpuMark = NaN;
    this.forgiven = 0;
    let status = -1;
    try {
      status = lua_resume(call.thread, null, nargs);
    } catch (error) {
      lua_settop(call.thread, 0);
      lua_pushstring(call.thread, Buffer.from(`host error: ${(error as Error).message}`));
    } finally {
      // Only a call that waits runs again, with what is left of its budget: the others need no second clock read.
      if (status === LUA_YIELD) call.used += monotonicMs() - started - this.forgiven;
      this.running = outer;
      this.deadline = outerDeadline;
      this.forgiven = outerForgiven;
      this.cpuMark = NaN;
    }
    if (status === LUA_YIELD) {
      if (this.waits.get(call.owner)?.call === call) return;
      // A bare coroutine.yield(): nothing would ever resume this call, and its connection would hold its
      // place (and a maxConnections slot) for good. It is a script error, like any other.
      call.done(new LuaHookError(call.hook, 'attempt to yield from a hook without waiting on a host call ' +
        '(coroutine.yield belongs inside a coroutine the script created)', false));
      return;
    }
    let error = status === LUA_OK ? null : new LuaHookError(call.hook, this.traceback(call.thread), call.timedOut);
    // Calls too short to reach the budget hook still add up: every few of them, a look at the heap.
    if (!error && ++this.callsSinceLook >= CALLS_PER_LOOK) {
      this.callsSinceLook = 0;
      if (this.grewPastMemoryLimit()) error = new LuaHookError(call.hook, this.memoryMessage(), false);
    }
    call.done(error);
    if (error === null && status === LUA_OK && !call.keepsThread) this.releaseThread(call.thread);
    if (this.resetPending && this.running === null) this.resetState();
  }

  /** The error on top of a dead coroutine, with the coroutine's traceback. */
  private traceback(thread: LuaState): string {
    luaL_traceback(this.L, thread, Buffer.from(describeError(thread, -1)), 0);
    const text = luaToJsString(lua_tolstring(this.L, -1)!);
    lua_settop(this.L, 0);
    return text;
  }

  private readonly budgetHook = (L: LuaState): void => {
    const call = this.running;
    if (call && (call.overMemory || this.grewPastMemoryLimit())) {
      call.overMemory = true;
      lua_sethook(L, this.budgetHook, LUA_MASKCOUNT, 1); // as for the budget: no pcall goes on
      throwPastHandlers(L, this.memoryMessage());
    }
    // A call that ran only a few thousand instructions is not runaway, however late the clock says it
    // is: the process was descheduled (a busy machine), and stopping it would be a false alarm.
    this.ticks += tookSlowCall(L) ? SLOW_CALL_TICKS : 1;
    if (this.ticks < MIN_TICKS) return;
    const now = monotonicMs();
    if (Number.isNaN(this.cpuMark)) this.markCpu(now);
    if (now <= this.deadline || this.forgaveOffCpu(now)) return;
    if (this.running) this.running.timedOut = true;
    // Fire again on the very next instruction, so a pcall that catches this error cannot go on.
    lua_sethook(L, this.budgetHook, LUA_MASKCOUNT, 1);
    throwPastHandlers(L, `exceeded its budget of ${this.running ? this.options.callBudget : LOAD_BUDGET_MS} ms of Lua time`);
  };

  private markCpu(now: number): void {
    this.cpuMark = threadCpuMs();
    this.wallMark = now;
  }

  /**
   * The wall clock says the call is past its budget. The budget is Lua time, so time the thread spent
   * off the CPU since the last mark (a busy machine ran other processes, or the process was stopped)
   * moves the deadline, when there was more of it than the clocks' slack. True if the call may go on.
   * Only calls past MIN_TICKS get here: a short call never pays for reading the CPU clock.
   */
  private forgaveOffCpu(now: number): boolean {
    const before = this.cpuMark;
    const since = this.wallMark;
    this.markCpu(now);
    const budget = this.running ? this.options.callBudget : LOAD_BUDGET_MS;
    const offCpu = Math.min(now - since - (this.cpuMark - before), MAX_FORGIVEN_BUDGETS * budget - this.forgiven);
    if (!(offCpu > OFF_CPU_SLACK_MS)) return false; // NaN (no CPU clock here) forgives nothing
    this.deadline += offCpu;
    this.forgiven += offCpu;
    return now <= this.deadline;
  }

  /**
   * Whether the state has grown past maxMemory (and past what it held at the last look that found it
   * over, so a state that stays over but stops growing does not cost every later call its connection).
   * Cheap unless the process heap grew by walkAfter bytes since the last walk: then the state is walked
   * (memory.ts), in time proportional to its size.
   */
  private grewPastMemoryLimit(): boolean {
    const heap = heapBytes();
    if (heap < this.heapAtWalk) this.heapAtWalk = heap; // collected since: count growth from the low
    if (heap - this.heapAtWalk < this.walkAfter) return false;
    // The heap grew: by what the state may keep, or only by young garbage?
    const kept = keptHeapBytes();
    if (kept < this.keptAtWalk) this.keptAtWalk = kept;
    if (kept - this.keptAtWalk < this.walkAfter) return false;
    // Calls still waiting in a state since reset hold only that state's values.
    const waiting = [...this.waits.values()].map((wait) => wait.call.thread)
      .filter((thread) => this.inCurrentState(thread));
    // A whole walk, not one that stops past the mark: a partial count as the new mark would have the
    // next whole walk blame a call that added nothing.
    const started = monotonicMs();
    const own = estimateStateBytes(this.L, waiting);
    let estimate = own;
    for (const source of this.heldOutside) estimate += source();
    if (own > RESET_FACTOR * this.maxMemory) this.resetPending = true;
    // The walk is the host's work, not the running call's: it does not count against its budget.
    this.deadline += monotonicMs() - started;
    this.heapAtWalk = heapBytes();
    this.keptAtWalk = keptHeapBytes();
    this.walkAfter = Math.max(MIN_WALK_AFTER, estimate / 4);
    this.estimate = estimate;
    if (estimate <= this.memoryMark) {
      this.memoryMark = Math.max(this.maxMemory, estimate);
      return false;
    }
    this.memoryMark = estimate;
    this.options.log.warn('Lua state over its memory budget', {
      lua: this.chunkName,
      estimated_bytes: estimate,
      max_memory: this.maxMemory,
    });
    return true;
  }

  private memoryMessage(): string {
    return `the Lua state holds about ${sizeText(this.estimate)}, more than engine.luavm.limits.maxMemory (${sizeText(this.maxMemory)})`;
  }

  /** Compiles `source` as the entry chunk and anchors it; returns its registry ref. */
  private compile(source: Buffer): number {
    const L = this.L;
    if (loadLua51(L, source, `@${this.chunkName}`) !== LUA_OK) {
      const message = luaToJsString(lua_tolstring(L, -1)!);
      lua_settop(L, 0);
      throw new LuaLoadError(message);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
  }

  /** Runs a compiled chunk on the main thread, under the load budget. */
  private runChunk(chunk: number): void {
    const L = this.L;
    lua_pushjsfunction(L, messageHandler);
    lua_rawgeti(L, LUA_REGISTRYINDEX, chunk);
    luaL_unref(L, LUA_REGISTRYINDEX, chunk);
    this.deadline = monotonicMs() + LOAD_BUDGET_MS;
    this.ticks = 0;
    this.cpuMark = NaN;
    this.forgiven = 0;
    let status: number;
    try {
      status = lua_pcall(L, 0, 0, 1);
    } finally {
      this.deadline = Infinity;
      lua_sethook(L, this.budgetHook, LUA_MASKCOUNT, HOOK_INTERVAL);
    }
    if (status !== LUA_OK) {
      const message = luaToJsString(lua_tolstring(L, -1) ?? K('(no message)'));
      lua_settop(L, 0);
      throw new LuaLoadError(message);
    }
    lua_settop(L, 0);
  }

  private resolveHooks(): void {
    const L = this.L;
    const refs = new Map<string, number>();
    const empty = new Set<string>();
    for (const hook of this.options.hooks) {
      lua_getglobal(L, K(hook));
      const older = this.options.hookAliases?.[hook];
      if (lua_type(L, -1) !== LUA_TFUNCTION && older !== undefined) {
        lua_pop(L, 1);
        lua_getglobal(L, K(older));
      }
      if (lua_type(L, -1) !== LUA_TFUNCTION) {
        lua_settop(L, 0);
        for (const ref of refs.values()) luaL_unref(L, LUA_REGISTRYINDEX, ref);
        throw new LuaLoadError(`${this.chunkName}: hook '${hook}' is not defined (it must be a global function)`);
      }
      if (isEmptyLuaFunction(L)) empty.add(hook);
      refs.set(hook, luaL_ref(L, LUA_REGISTRYINDEX));
    }
    for (const hook of this.options.optionalHooks ?? []) {
      lua_getglobal(L, K(hook));
      if (lua_type(L, -1) === LUA_TFUNCTION) refs.set(hook, luaL_ref(L, LUA_REGISTRYINDEX));
      else lua_pop(L, 1);
    }
    for (const ref of this.hookRefs.values()) luaL_unref(L, LUA_REGISTRYINDEX, ref);
    this.hookRefs.clear();
    for (const [hook, ref] of refs) this.hookRefs.set(hook, ref);
    this.emptyHooks = empty;
  }

  /** Main-stack height; stays 0 between calls (useful to tests that look for leaks). */
  stackHeight(): number {
    return lua_gettop(this.L);
  }
}


/** The message handler for protected calls on the main thread: the error plus a traceback. */
const messageHandler: LuaFunction = (L) => {
  luaL_traceback(L, L, Buffer.from(describeError(L, 1)), 1);
  return 1;
};

/**
 * Bytes of an error message kept in its traceback and log line (a line holds 16,384 characters): a
 * script's `error(s)` with a 16 MiB `s` took the node over half a second to decode and copy whole.
 */
const MAX_ERROR_TEXT = 8192;

/**
 * An error value as text without running any Lua (no __tostring: the budget may be spent, and a
 * dead coroutine cannot run code).
 */
function describeError(L: LuaState, index: number): string {
  const type = lua_type(L, index);
  if (type === LUA_TSTRING || type === LUA_TNUMBER) {
    const text: Uint8Array = lua_tolstring(L, index)!;
    if (text.length <= MAX_ERROR_TEXT) return luaToJsString(text);
    return `${luaToJsString(text.subarray(0, MAX_ERROR_TEXT))}… (an error message of ${text.length} bytes)`;
  }
  return `(error object is a ${luaToJsString(lua_typename(L, type))} value)`;
}

/**
 * The folder `require` may load from: the nearest folder named `lua` that holds the entry (so
 * `lua/examples/entry.lua` can `require("protocols.text")` from `lua/protocols/`), else the entry's own folder.
 */
function scriptsRoot(entry: string): string {
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (path.basename(dir) === 'lua') return dir;
  }
  return path.dirname(entry);
}

/**
 * Where `require` looks, in order: the entry's own folder (so an example kept with its own `protocols/`
 * uses those), then the scripts folder.
 */
function moduleRoots(entry: string): string[] {
  return [...new Set([path.dirname(entry), scriptsRoot(entry)])];
}

/** A path relative to the working directory when it lies inside it, as Lua chunk names read best. */
function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

/** The `.lua` files under `dir`, at any depth. */
function luaFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.lua'))
    .map((entry) => path.join(entry.parentPath ?? entry.path, entry.name));
}

/**
 * Names, sizes and modification times of `files` (as listed by luaFiles). Compared as a whole rather than
 * against a load time, because file times come from a coarse clock that lags the wall clock by milliseconds.
 */
function luaFilesSignature(files: string[]): string {
  const parts: string[] = [];
  for (const file of files) {
    try {
      const stat = fs.statSync(file);
      parts.push(`${file}:${stat.size}:${stat.mtimeMs}`);
    } catch {
      // removed between listing and stat
    }
  }
  return parts.sort().join('\n');
}

/** The compile error of the first of `files` that does not compile (text chunks only), or null. */
function firstCompileError(L: LuaState, files: string[]): string | null {
  for (const file of files) {
    let source: Buffer;
    try {
      source = fs.readFileSync(file);
    } catch {
      continue; // removed since it was listed
    }
    const failed = loadLua51(L, source, `@${displayPath(file)}`) !== LUA_OK;
    const message = failed ? luaToJsString(lua_tolstring(L, -1)!) : null;
    lua_pop(L, 1);
    if (message) return message;
  }
  return null;
}

/** Pushes `nil, message`: the `result, err` convention of every CONNMIX API. */
export function pushNilError(L: LuaState, message: string): number {
  lua_pushnil(L);
  lua_pushstring(L, Buffer.from(message));
  return 2;
}

function sizeText(bytes: number): string {
  return bytes < 2 ** 20 ? `${(bytes / 2 ** 10).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
