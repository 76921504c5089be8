/**
 * Lua functions compiled to JS (see ./patches, "hot functions run compiled").
 *
 * For every instruction, fengari's luaV_execute fetches and decodes the instruction object, reloads
 * the frame's closure, constants and base, dispatches on the opcode and goes through the hook check:
 * most of the time of a simple instruction (an arithmetic loop runs twice as fast without it). A
 * compiled function is one JS function per Lua function, a `switch` on the program counter whose cases
 * are fengari's own cases of that switch, read from luaV_execute's source, with each instruction's
 * operands written in as numbers (its constants, registers and jump targets). Consecutive
 * instructions fall through from one case to the next; a jump sets the counter and dispatches again.
 * Reads by a constant key (`t.k`, `t[1]`) look the key up in the table first (`constantKeyRead`).
 * A function is compiled at its second call (`installFrameCompiler`).
 *
 * The interpreter's contract is kept instruction by instruction, so nothing else in fengari (or in
 * the sandbox's runtime patches) can tell the difference:
 * - `ci.l_savedpc` is set before each instruction, as the interpreter's fetch leaves it: error
 *   messages name the right line and variable, and the count hook (budgets, the `..` and compare
 *   guards) runs before each instruction through luaG_traceexec whenever it is armed.
 * - Calls to and returns from Lua functions go back to the frame runner, which continues with the new
 *   frame (compiled or not) as luaV_execute would: no JS recursion per Lua call, and a yield (which
 *   unwinds the JS stack) resumes by entering the compiled function again at `ci.l_savedpc`.
 * Functions longer than MAX_INSTRUCTIONS stay interpreted: V8 does not optimise very large functions,
 * and a long main chunk runs once anyway.
 */
import { privateFengari } from './load';
import { ENTER_COMPILED } from './patches';
import { instructionWatch, watchMask } from './runtime-patches';
import type { LuaState } from './api';

/** A function prototype as fengari keeps it, with the two fields ./patches adds. */
interface Proto {
  code: Instruction[];
  k: Constant[];
  /** The compiled function, null before it is tried, false when it stays interpreted. */
  compiled: CompiledFrame | null | false;
  /** Frames of it started while it was not compiled. */
  calls: number;
}

interface Instruction {
  opcode: number;
  A: number;
  B: number;
  C: number;
  Bx: number;
  sBx: number;
  Ax: number;
}

/** A constant of a function (a TValue). */
interface Constant {
  type: number;
  value: unknown;
  ttisstring(): boolean;
  vslen(): number;
}

interface Frame {
  func: { value: { p: Proto } };
}

/** Runs its frame until a Lua call or return changes frames: RETURNED_FRESH when it returned to luaV_execute's caller. */
type CompiledFrame = (L: LuaState, ci: Frame) => number;
const RETURNED_FRESH = 0;
const FRAME_CHANGED = 1;

/** What installFrameCompiler takes. */
export interface FrameCompilerOptions {
  /** A function is compiled when a frame of it starts for this many times (default COMPILE_AT_CALL). */
  compileAtCall?: number;
  /** Longer functions stay interpreted (default MAX_INSTRUCTIONS). */
  maxInstructions?: number;
}

const MAX_INSTRUCTIONS = 400;
const COMPILE_AT_CALL = 2;

const lvm = privateFengari().module('lvm.js') as {
  luaV_setFrameRunner(run: ((L: LuaState) => boolean) | null): void;
  luaV_execute_source: string;
  luaV_evalInScope(source: string): unknown;
};
const lopcodes = privateFengari().module('lopcodes.js') as { OpCodes: string[]; ISK(x: number): number; INDEXK(x: number): number };
/** Opcode names as luaV_execute's cases name them (OP_MOVE...), by opcode number. */
const OPCODE_NAMES = lopcodes.OpCodes.map((name) => `OP_${name}`);
const defs = privateFengari().module('defs.js') as {
  LUA_MASKLINE: number;
  LUA_MASKCOUNT: number;
  constant_types: Record<string, number>;
};
const { luaS_hashlongstr } = privateFengari().module('lstring.js') as { luaS_hashlongstr(ts: unknown): string };

/**
 * Makes every Lua frame that starts from now on run compiled, its function compiled when a frame of it
 * starts for the second time (by default): compiling costs about ten times what running a function once
 * costs, which a main chunk (or a string `load`ed and run once) would pay for nothing. A second call only
 * changes the options. `uninstallFrameCompiler` goes back to interpreting every frame (functions
 * already compiled keep their code for a later install).
 */
export function installFrameCompiler(options: FrameCompilerOptions = {}): void {
  const compileAtCall = options.compileAtCall ?? COMPILE_AT_CALL;
  const maxInstructions = options.maxInstructions ?? MAX_INSTRUCTIONS;
  const cases = opcodeCases();
  lvm.luaV_setFrameRunner((L) => {
    for (;;) {
      const ci = (L as unknown as { ci: Frame }).ci;
      const p = ci.func.value.p;
      let run = p.compiled;
      if (run === null) {
        if (++p.calls < compileAtCall) return false;
        run = p.compiled = p.code.length <= maxInstructions ? compileOrInterpret(p, cases) : false;
      }
      if (run === false) return false;
      if (run(L, ci) === RETURNED_FRESH) return true;
    }
  });
}

export function uninstallFrameCompiler(): void {
  lvm.luaV_setFrameRunner(null);
}

/** Whether the function on top of `L`'s stack has been compiled (for tests). */
export function isCompiled(L: LuaState): boolean {
  const thread = L as unknown as { stack: Array<{ value: { p?: Proto } }>; top: number };
  return typeof thread.stack[thread.top - 1]?.value?.p?.compiled === 'function';
}

/** The body of each of luaV_execute's cases, by opcode name. */
type Cases = ReadonlyMap<string, string>;

let parsedCases: Cases | undefined;

/** Reads luaV_execute's cases from its (patched) source; throws if they are not what this module expects. */
function opcodeCases(): Cases {
  if (parsedCases) return parsedCases;
  const source = lvm.luaV_execute_source;
  const start = source.indexOf('switch (opcode) {');
  if (start < 0) throw new Error('fengari internals changed: luaV_execute has no `switch (opcode)`');
  const cases = new Map<string, string>();
  const label = /case (OP_[A-Z]+): \{/g;
  label.lastIndex = start;
  for (let match = label.exec(source); match; match = label.exec(source)) {
    const open = match.index + match[0].length;
    const close = matchingBrace(source, open);
    // Without comments, whose words ("continue execution") would read as code below.
    cases.set(match[1], source.slice(open, close).replace(/\/\*[^]*?\*\/|\/\/[^\n]*/g, ''));
    label.lastIndex = close;
  }
  for (const name of OPCODE_NAMES) {
    if (!cases.has(name)) throw new Error(`fengari internals changed: luaV_execute has no case for ${name}`);
  }
  parsedCases = cases;
  return cases;
}

/** The index of the `}` closing the block whose `{` is just before `from`. */
function matchingBrace(source: string, from: number): number {
  let depth = 1;
  for (let at = from; at < source.length; at++) {
    const c = source[at];
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return at;
  }
  throw new Error('fengari internals changed: unbalanced luaV_execute');
}

/** Where TFORCALL's case fetches the TFORLOOP after it, which a compiled TFORCALL runs itself. */
const TFORCALL_FETCH = 'i = ci.l_code[ci.l_savedpc++];';
const HOOK_MASK = defs.LUA_MASKLINE | defs.LUA_MASKCOUNT;

/**
 * `compile`, or false (interpret it) if that throws: a shape of code this module does not expect must
 * cost speed, never a script's call. test/lua/fengari-compile.test.ts checks that functions do compile.
 */
function compileOrInterpret(p: Proto, cases: Cases): CompiledFrame | false {
  try {
    return compile(p, cases);
  } catch {
    return false;
  }
}

/** Compiles `p`, or returns false when one of its instructions is not one this compiler takes. */
function compile(p: Proto, cases: Cases): CompiledFrame | false {
  const parts: string[] = [];
  for (let pc = 0; pc < p.code.length; pc++) {
    const body = instructionBody(p.code, p.k, pc, cases);
    if (body === null) return false;
    parts.push(`case ${pc}: ci.l_savedpc = ${pc + 1};\n${hookCheck(p.code[pc], p.k)}\n${body}`);
  }
  const source = `(function (watched) { return function compiledFrame(L, ci) {
    const cl = ci.func.value;
    const k = cl.p.k;
    const code = cl.p.code;
    const base = ci.l_base;
    let ra, i, pc = ci.l_savedpc;
    dispatch: for (;;) {
      switch (pc) {
${parts.join('\n')}
      }
      throw Error('compiled frame: no instruction ' + pc);
    }
  }; })`;
  return (lvm.luaV_evalInScope(source) as (watched: Uint8Array) => CompiledFrame)(instructionWatch());
}

/**
 * What luaV_execute does before each instruction while a hook is armed: luaG_traceexec (behind the
 * sandbox's instruction checks). Most of the time that call only counts the instruction down, and
 * the compiled code does that itself; it calls luaG_traceexec when the count is about to run out,
 * when a line hook is set, or when a check is installed for the instruction's opcode.
 */
function hookCheck(i: Instruction, k: Constant[]): string {
  const full = `(watched[${i.opcode}] & ${watchMask(i, k)}) !== 0 || (L.hookmask & ${defs.LUA_MASKLINE}) !== 0 || L.hookcount <= 1`;
  return `if (L.hookmask & ${HOOK_MASK}) { if (${full}) ldebug.luaG_traceexec(L); else L.hookcount--; }`;
}

/** The JS of instruction `pc` (after its hook check), or null if it cannot be compiled. */
function instructionBody(code: Instruction[], constants: Constant[], pc: number, cases: Cases): string | null {
  const i = code[pc];
  const name = OPCODE_NAMES[i.opcode];
  let template = cases.get(name);
  if (template === undefined) return null;
  let tail = '';
  if (name === 'OP_TFORCALL') {
    // Fengari fetches the TFORLOOP that always follows and runs it without a hook check; so does this.
    const cut = template.indexOf(TFORCALL_FETCH);
    const next = code[pc + 1];
    if (cut < 0 || next === undefined || OPCODE_NAMES[next.opcode] !== 'OP_TFORLOOP') return null;
    const loop = operands(cases.get('OP_TFORLOOP')!, next);
    if (loop === null) return null;
    template = template.slice(0, cut);
    tail = `ci.l_savedpc = ${pc + 2};\n${registers(loop, next, pc + 1)}`;
  }
  let body = operands(template, i);
  if (body === null) return null;
  const read = constantKeyRead(i, name, constants);
  if (read !== null) body = `${read} else {${body}}`;
  const jumps = /l_savedpc|dojump|donextjump/.test(body + tail);
  return `${registers(body, i, pc)}\n${tail}\n${jumps ? 'pc = ci.l_savedpc; continue dispatch;' : ''}`;
}

/** Longest string key (in the characters of fengari's table key, "|" and one per byte) written into compiled code. */
const MAX_WRITTEN_KEY = 64;

const { LUA_TTABLE, LUA_TNIL, LUA_TSHRSTR, LUA_TLNGSTR, LUA_TNUMINT, LUA_TNUMFLT } = defs.constant_types;

/**
 * `t.k` and `t[1]` (GETTABLE or GETTABUP with a constant string or number key) on a table that holds a
 * value there: read straight from the table's map, with the key fengari would compute for it written in,
 * as the condition-and-action of an `if` whose `else` is fengari's case (a missing key, a metatable's
 * `__index`, a value that is not a table, its errors). Null for any other instruction.
 */
function constantKeyRead(i: Instruction, name: string, constants: Constant[]): string | null {
  if ((name !== 'OP_GETTABLE' && name !== 'OP_GETTABUP') || !lopcodes.ISK(i.C)) return null;
  const key = constants[lopcodes.INDEXK(i.C)];
  let hash: string;
  if (key.type === LUA_TSHRSTR || key.type === LUA_TLNGSTR) {
    // The key is written into the code once per read: a long one (a script's 1 MiB literal, read by
    // each of 400 instructions) would make the code that long, so only short keys are.
    const text = luaS_hashlongstr(key.value);
    if (text.length > MAX_WRITTEN_KEY) return null;
    hash = JSON.stringify(text);
  } else if ((key.type === LUA_TNUMINT || key.type === LUA_TNUMFLT) && Number.isFinite(key.value)) hash = String(key.value);
  else return null;
  const table = name === 'OP_GETTABUP' ? `cl.upvals[${i.B}]` : `L.stack[base + ${i.B}]`;
  return `const t = ${table}; const e = t.type === ${LUA_TTABLE} ? t.value.strong.get(${hash}) : undefined;
    if (e !== undefined && e.value !== undefined && e.value.type !== ${LUA_TNIL}) L.stack[base + ${i.A}].setfrom(e.value);`;
}

/** `body` in a block, after setting the variables it reads of its instruction (`ra`, `i`). */
function registers(body: string, i: Instruction, pc: number): string {
  const ra = /\bra\b/.test(body) ? `ra = base + ${i.A}; ` : '';
  const instruction = /(?<![.\w])i\b/.test(body) ? `i = code[${pc}]; ` : '';
  return `${ra}${instruction}{${body}}`;
}

/**
 * A case's body with instruction `i`'s operands written in, its end (`break`) dropped and its frame
 * changes made returns; null when the body has a shape this does not rewrite safely.
 */
function operands(template: string, i: Instruction): string | null {
  const rk = (x: number) => (lopcodes.ISK(x) ? `k[${lopcodes.INDEXK(x)}]` : `L.stack[base + ${x}]`);
  let body = template
    .split(`${ENTER_COMPILED} continue newframe;`).join(`return ${FRAME_CHANGED};`)
    .replace(/\breturn;/g, `return ${RETURNED_FRESH};`)
    .replace(/RA\(L, base, i\)/g, `(base + ${i.A})`)
    .replace(/RB\(L, base, i\)/g, `(base + ${i.B})`)
    .replace(/RKB\(L, base, k, i\)/g, rk(i.B))
    .replace(/RKC\(L, base, k, i\)/g, rk(i.C))
    .replace(/\bi\.(A|B|C|Bx|sBx|Ax)\b/g, (_field, field: keyof Instruction) => String(i[field]));
  // The case's own `break` ends it; any other would leave the compiled switch instead.
  body = body.replace(/\bbreak;\s*$/, '');
  if (/\bbreak\b|\bcontinue\b|newframe|(?<!\.)\bopcode\b/.test(body)) return null;
  return body;
}
