import { stringModule, SHORT_STRING_MAX } from './lstring';
import { MATCHES_51 } from './matches51';
import { EXACT_INTEGER_ARITHMETIC, GOPHER_NUMBER_TO_STRING, TRUNCATING_CHECKINTEGER } from './numbers';

/**
 * Every change we make to fengari 0.1.5, with its reason and the test that fails without it.
 *
 * Source patches and replaced modules are applied while ./load compiles our private copy of fengari
 * (the published package is never modified). Runtime patches are installed on that same private copy
 * at run time (they need per-state limits): their mechanics live in ./runtime-patches, and
 * the numbers, counters and error texts they enforce are passed in by src/lua/limits.ts.
 * test/lua/fengari-pin.test.ts fails when fengari's source files differ from the reviewed ones.
 */

/** A textual change to one or more of fengari's source files. */
export interface SourcePatch {
  name: string;
  /** Why the change is needed. */
  reason: string;
  /** The test (file: title) that fails without it. */
  test: string;
  /** What is replaced (a global regular expression). */
  find: RegExp;
  replace(...match: string[]): string;
  /** Files the patch changes, and how many places in each: any other count fails the load. */
  files: Record<string, number>;
}

/** The places of ltable.js that remove, find and count entries, and what each becomes. */
const TOMBSTONE_CHECK = 'let e = t.strong.get(hash);\n    if (e && e.value === void 0) {\n        t.tombstones--;\n        e = void 0;\n    }\n    if (e) {\n';
const TOMBSTONES: Record<string, string> = {
  'this.strong = new Map();': 'this.strong = new Map();\n        this.tombstones = 0;',
  't.strong.delete(hash);': [
    'if (++t.tombstones > 16 + t.strong.size / 2) {',
    '            for (const [key, entry] of t.strong) if (entry.value === void 0) t.strong.delete(key);',
    '            t.tombstones = 0;',
    '        }',
  ].join('\n'),
  '    if (e) {\n        e.key.setdeadvalue();': '    if (e && e.value !== void 0) {\n        e.key.setdeadvalue();',
  'let e = t.strong.get(hash);\n    if (e) {\n        let tv = e.value;': `${TOMBSTONE_CHECK}        let tv = e.value;`,
  'let e = t.strong.get(hash);\n    if (e) {\n        e.value.setfrom(value);': `${TOMBSTONE_CHECK}        e.value.setfrom(value);`,
  'return v ? v.value : lobject.luaO_nilobject;': 'return v && v.value !== void 0 ? v.value : lobject.luaO_nilobject;',
  '        if (entry) {\n            entry = entry.n;': '        if (entry && entry.value !== void 0) {\n            entry = entry.n;',
  'let j = t.strong.size + 1;': 'let j = t.strong.size - t.tombstones + 1;',
};

/** The four uses of a table's dead-key map in ltable.js, and what each becomes. */
const DEAD_STRONG_ON_DEMAND: Record<string, string> = {
  'this.dead_strong = new Map();': 'this.dead_strong = void 0;',
  't.dead_strong.clear();': 't.dead_strong = void 0;',
  't.dead_strong.set(hash, e);': '(t.dead_strong || (t.dead_strong = new Map())).set(hash, e);',
  'table.dead_strong.get(hash)': '(table.dead_strong && table.dead_strong.get(hash))',
};

/**
 * The places where luaV_execute starts a Lua frame, and the module tail that lets ./compile in: the
 * frame runner (null until installed) runs compiled frames until one returns to luaV_execute's caller
 * (true) or an interpreted frame is on top (false). Compiled code is evaluated in this module's scope,
 * so the cases it is made from see the same helpers.
 */
export const ENTER_COMPILED = 'if (frameRunner !== null) { if (frameRunner(L)) return; ci = L.ci; }';
const COMPILED_FRAMES: Record<string, string> = {
  'ci.callstatus |= lstate.CIST_FRESH;\n    newframe:': `ci.callstatus |= lstate.CIST_FRESH;\n    ${ENTER_COMPILED}\n    newframe:`,
  'continue newframe;': `${ENTER_COMPILED} continue newframe;`,
  'module.exports.tonumber         = tonumber;': [
    'module.exports.tonumber         = tonumber;',
    'let frameRunner = null;',
    'module.exports.luaV_setFrameRunner = function(run) { frameRunner = run; };',
    'module.exports.luaV_execute_source = luaV_execute.toString();',
    'module.exports.luaV_evalInScope = function(source) { return eval(source); };',
  ].join('\n'),
  'this.source = null;       // used for debug information': [
    'this.source = null;       // used for debug information',
    '        this.compiled = null;     // connmix-ts: the compiled function (./compile), false if it cannot be',
    '        this.calls = 0;           // connmix-ts: frames started before it is compiled',
  ].join('\n'),
};

/** Short results of `..` are built in one scratch array (see "short concatenations in place"). */
const SHORT_CONCAT: Record<string, string> = {
  '            let buff = new Uint8Array(tl);\n            copy2buff(L, top, n, buff);\n            let ts = luaS_bless(L, buff);': [
    '            let ts;',
    '            if (tl <= concatScratch.length) {',
    '                copy2buff(L, top, n, concatScratch);',
    '                ts = luaS_newrange(L, concatScratch, 0, tl);',
    '            } else {',
    '                let buff = new Uint8Array(tl);',
    '                copy2buff(L, top, n, buff);',
    '                ts = luaS_bless(L, buff);',
    '            }',
  ].join('\n'),
  '    luaS_bless,\n    luaS_eqlngstr,': '    luaS_bless,\n    luaS_newrange,\n    luaS_eqlngstr,',
  'const MAXTAGLOOP = 2000;': `const concatScratch = new Uint8Array(${SHORT_STRING_MAX});\n\nconst MAXTAGLOOP = 2000;`,
};

export const SOURCE_PATCHES: readonly SourcePatch[] = [
  {
    name: 'integral floats print as integers',
    reason:
      'Host numbers reach Lua as floats; CONNMIX scripts (Lua 5.1) expect `"video:" .. 100001` to give ' +
      '`video:100001`, not `video:100001.0`. Fengari reads this setting (LUA_COMPAT_FLOATSTRING) from ' +
      'FENGARICONF; our copy gets it without touching process.env, on top of any FENGARICONF given.',
    test: 'test/lua/vm.test.ts: Lua 5.1 surface: getn, unpack, loadstring, math.pow, bit',
    find: /const conf = \(process\.env\.FENGARICONF \? JSON\.parse\(process\.env\.FENGARICONF\) : \{\}\);/g,
    replace: () =>
      'const conf = Object.assign(process.env.FENGARICONF ? JSON.parse(process.env.FENGARICONF) : {}, { LUA_COMPAT_FLOATSTRING: true });',
    files: { 'luaconf.js': 1 },
  },
  {
    name: 'stack slots reused',
    reason:
      'Fengari drops every stack slot above the top after each call and allocates a new value object for ' +
      'each slot it refills: after every host call a Lua function makes, its whole frame above the call. ' +
      'That was the largest part of a hook call\'s garbage (a third of its bytes). Slots are now set to nil in ' +
      'place and refilled in place, as PUC Lua reuses its stack. This is safe because a slot object is ' +
      'shared only with the closures that captured it while its local is live, and fengari replaces ' +
      'those objects (luaF_close) before the local\'s slot can go above the top. Slots past REUSED_SLOTS ' +
      'are still dropped, so a deep recursion does not keep its objects.',
    test: 'test/lua/fengari-patches.test.ts: stack slots above the top are reused in place, and closures keep their upvalues (stack slots reused)',
    find: /const adjust_top = function\(L, newtop\) \{[^]*?\n\};|for \(let i=L\.top; i>=\(res \+ nres\); i--\)\n\s*delete L\.stack\[i\];|for \(let i=L\.top; i>=newtop; i--\)\n\s*delete L\.stack\[i\];|L\.stack\[L\.top\+\+\] = new lobject\.TValue\(LUA_TNIL, null\); \/\/ complete missing arguments|module\.exports\.adjust_top {11}= adjust_top;/g,
    replace: (found: string) => {
      if (found.startsWith('const adjust_top')) return ADJUST_TOP_REUSING_SLOTS;
      if (found.startsWith('module.exports')) return `${found}\nmodule.exports.clear_slot = clear_slot;`;
      if (found.includes('(res + nres)')) return 'clear_slots(L, res + nres, L.top);';
      if (found.includes('newtop')) return 'clear_slots(L, newtop, L.top);';
      return 'nil_slot(L, L.top++);';
    },
    files: { 'ldo.js': 5 },
  },
  {
    name: 'call frames reused',
    reason:
      'Fengari makes a new CallInfo for every call and unlinks it on return. A returning frame now stays ' +
      'linked as its caller\'s spare and serves the next call at that depth, as PUC Lua\'s next_ci does; ' +
      'every field a call reads is set again by luaD_precall (continuations by lua_callk and lua_yieldk), ' +
      'and a frame drops the spares beyond its own on return, so at most one is kept past the top frame.',
    test: 'test/lua/fengari-patches.test.ts: a call at the same depth reuses the returned frame, and coroutines, pcall and tail calls still unwind right (call frames reused)',
    find: /let ci = new CallInfo\(\);\n\s*L\.ci\.next = ci;\n\s*ci\.previous = L\.ci;\n\s*ci\.next = null;|L\.ci = ci\.previous;\n\s*L\.ci\.next = null;|\n\s*oci\.next = null;/g,
    replace: (found: string) => {
      if (found.startsWith('let ci')) return 'let ci = L.ci.next;\n    if (ci === null) {\n        ci = new CallInfo();\n        L.ci.next = ci;\n        ci.previous = L.ci;\n        ci.next = null;\n    }';
      if (found.startsWith('L.ci')) return 'L.ci = ci.previous;\n    ci.next = null;';
      return '';
    },
    files: { 'lstate.js': 1, 'ldo.js': 1, 'lvm.js': 1 },
  },
  {
    name: 'popped slots kept',
    reason:
      'The C API pops values (lua_setfield, lua_rawset, lua_rawseti, lua_pop...) and `..` its operands ' +
      'by dropping their slots, so the next Lua frame that covers them allocates new value objects (see ' +
      '"stack slots reused"): every host function that builds a table paid for it again after the call. ' +
      'lapi and lvm now set popped slots to nil in place. Each of those pops comes after its value was ' +
      'copied (into a table, an upvalue, a register), so nothing still reads the object.',
    test: 'test/lua/fengari-patches.test.ts: a value popped by the C API leaves its slot in place, set to nil (popped slots kept)',
    find: /delete (\w+)\.stack\[([^\]]+)\]/g,
    replace: (_pop: string, state: string, index: string) => `ldo.clear_slot(${state}, ${index})`,
    files: { 'lapi.js': 18, 'lvm.js': 3 },
  },
  {
    name: 'stack pops are stores',
    reason:
      'Fengari empties stack slots with `delete L.stack[i]`, which punches holes in a JS array: V8 then ' +
      'runs every Lua call and return 5-8 times slower. Storing `undefined` instead is the same to ' +
      'fengari (nothing in it tells a hole from undefined). The pops of lapi and lvm keep their slots ' +
      '(see "popped slots kept").',
    test: 'test/lua/fengari-patches.test.ts: popped stack slots are stored as undefined, not deleted (stack pops are stores)',
    find: /delete (\w+)\.stack\[([^\]]+)\]/g,
    replace: (_pop: string, state: string, index: string) => `${state}.stack[${index}] = void 0`,
    files: { 'ldebug.js': 1, 'ldo.js': 2, 'lparser.js': 1, 'ltm.js': 1 },
  },
  {
    name: 'removed keys leave tombstones',
    reason:
      'Fengari keeps a table\'s entries in a JS Map, and V8 keeps a deleted Map key in its bucket\'s chain ' +
      'until the Map is rebuilt: a key removed and set again and again (a presence table a client toggles ' +
      'by joining and leaving) made each insert walk every dead copy: 120 µs per toggle at 20,000 keys in ' +
      '`npm run bench:churn`. A removed key now keeps its Map entry, with no value, and is set again in place; tombstones ' +
      'are purged once they outnumber the live entries (plus 32), so a table never holds more than twice ' +
      'its entries. Reads, `next` and `#` treat a tombstone as absent.',
    test: 'test/lua/fengari-patches.test.ts: a key removed and set again thousands of times leaves one tombstone, and get, pairs, next and # see the table as before (removed keys leave tombstones)',
    ...replacing(TOMBSTONES),
    files: { 'ltable.js': 8 },
  },
  {
    name: 'dead-key maps on demand',
    reason:
      'Every fengari table allocates a second Map for keys removed during a traversal (`next` must still ' +
      'find them), and clears it on every insertion. Hook calls build a few tables each (the message, a ' +
      'decoded JSON document, a split): the Map is created only when a key is first removed, and dropped ' +
      'instead of cleared.',
    test: 'test/lua/fengari-patches.test.ts: a table gets its dead-key map only when a key is removed, and pairs() still survives removals (dead-key maps on demand)',
    ...replacing(DEAD_STRONG_ON_DEMAND),
    files: { 'ltable.js': 4 },
  },
  {
    name: 'pcall keeps hooks allowed in coroutines',
    reason:
      'Inside a coroutine, lua_pcallk (what pcall and xpcall call) records whether hooks were allowed with ' +
      '`callstatus &= ~CIST_OAH | allowhook`, which never sets the bit: once a pcall caught an error the ' +
      'coroutine ran with hooks off for good, so the budget hook never fired again and ' +
      '`while true do pcall(error) end` ran forever. The line becomes what PUC Lua does.',
    test: 'test/lua/fengari-patches.test.ts: pcall of an error inside a coroutine keeps the budget hook (pcall escape)',
    find: /ci\.callstatus &= ~lstate\.CIST_OAH \| L\.allowhook;/g,
    replace: () => 'ci.callstatus = (ci.callstatus & ~lstate.CIST_OAH) | L.allowhook;',
    files: { 'lapi.js': 1 },
  },
  {
    name: 'integer results past 32 bits become floats',
    reason:
      'CONNMIX runs gopher-lua, whose numbers are all float64; fengari\'s integers are 32 bits and wrap: ' +
      '`100000 * 100000` gave 1410065408, a running sum past 2^31 turned negative, `0xffffffff` was -1, and a ' +
      'for loop whose last step passed 2^31 never ended. Such results are now the exact floats (see ./numbers).',
    test: 'test/lua/fengari-patches.test.ts: integer arithmetic past 32 bits gives the float64 results gopher-lua gives (integer results past 32 bits become floats)',
    ...replacing(EXACT_INTEGER_ARITHMETIC),
    files: { 'lvm.js': 8, 'lobject.js': 7, 'lbaselib.js': 3 },
  },
  {
    name: 'integer arguments truncate floats',
    reason:
      'Library functions that take an integer (string.sub, string.rep, select, table.insert, math.random, ' +
      'unpack) raised "number has no integer representation" for a float with a fraction, so ' +
      '`s:sub(1, #s / 2)` failed on odd lengths; gopher-lua truncates it (see ./numbers).',
    test: 'test/lua/fengari-patches.test.ts: library functions truncate a float where they take an integer, as gopher-lua does (integer arguments truncate floats)',
    ...replacing(TRUNCATING_CHECKINTEGER),
    files: { 'lauxlib.js': 1 },
  },
  {
    name: 'empty matches after a match count, as in Lua 5.1',
    reason:
      'Lua 5.3.6 skips an empty match that ends where the previous match ended; Lua 5.1 and gopher-lua ' +
      '(CONNMIX) take it: `string.gsub("a b  c", "%s*", "_")` is "_a__b__c_" there and was "_a_b_c_" here, ' +
      'and gmatch yielded one item less.',
    test: 'test/lua/fengari-patches.test.ts: gsub and gmatch take an empty match right after a match, as Lua 5.1 and gopher-lua do (empty matches after a match count, as in Lua 5.1)',
    ...replacing(MATCHES_51),
    files: { 'lstrlib.js': 2 },
  },
  {
    name: 'numbers print as gopher-lua prints them',
    reason:
      'fengari printed floats with 14 significant digits, so an integral float past 14 digits (an id from ' +
      'JSON, a product) printed with other digits: 123456789012345 as "123456789012350". gopher-lua prints ' +
      'integral numbers in full and others as Go\'s shortest %g (see ./numbers).',
    test: 'test/lua/fengari-patches.test.ts: numbers print in full, as gopher-lua prints them (numbers print as gopher-lua prints them)',
    find: /const lua_number2str = function\(n\) \{\n\s*return String\(Number\(n\.toPrecision\(14\)\)\);[^\n]*\n\};/g,
    replace: () => GOPHER_NUMBER_TO_STRING,
    files: { 'luaconf.js': 1 },
  },
  {
    name: 'hot functions run compiled',
    reason:
      'Fengari runs every instruction through one big switch: it fetches and decodes the instruction, ' +
      'reloads the frame (closure, constants, base) and goes through the hook check, before doing the ' +
      'instruction\'s own work. ./compile turns a function, at its second call, into JS of its ' +
      'own, made from this same switch\'s cases with the operands written in; the VM hands it the frame ' +
      'wherever a Lua frame starts or resumes (a call, a return to it, a resumed coroutine), and gets the ' +
      'frame back at each call to or return from another Lua function. Nothing is compiled until ' +
      'installFrameCompiler runs.',
    test: 'test/lua/fengari-compile.test.ts: compiled functions give the same results as the interpreter: loops, closures, varargs, tail calls and tables (hot functions run compiled)',
    ...replacing(COMPILED_FRAMES),
    files: { 'lvm.js': 5, 'lfunc.js': 1 },
  },
  {
    name: 'short concatenations in place',
    reason:
      'Fengari builds every `..` result in a new array, which for a short result (40 bytes or less) is ' +
      'then mostly dropped for the shared string with those bytes (see the string module): a channel ' +
      'name a hook builds on each call (`"video:" .. id`) allocated its bytes each time. Short results ' +
      'are now built in one scratch array, from which the shared string module copies only a string it ' +
      'does not have yet.',
    test: 'test/lua/fengari-patches.test.ts: short concatenations are built in one scratch array and give strings of their own bytes (short concatenations in place)',
    ...replacing(SHORT_CONCAT),
    files: { 'lvm.js': 3 },
  },
];

/** A patch's find and replace for a map of literal texts to what each becomes. */
function replacing(map: Readonly<Record<string, string>>): Pick<SourcePatch, 'find' | 'replace'> {
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return { find: new RegExp(Object.keys(map).map(literal).join('|'), 'g'), replace: (found: string) => map[found] };
}

/** Stack slots past this index are dropped as fengari does, not kept for reuse. */
const REUSED_SLOTS = 1000;

/** fengari's adjust_top, refilling and emptying slots in place (see "stack slots reused"), and its helpers. */
const ADJUST_TOP_REUSING_SLOTS = `const adjust_top = function(L, newtop) {
    if (L.top < newtop) {
        while (L.top < newtop) nil_slot(L, L.top++);
    } else if (L.top > newtop) {
        clear_slots(L, newtop, L.top - 1);
        L.top = newtop;
    }
};
const nil_slot = function(L, i) {
    const slot = L.stack[i];
    if (slot === undefined) L.stack[i] = new lobject.TValue(LUA_TNIL, null);
    else slot.setnilvalue();
};
const clear_slot = function(L, i) {
    const slot = L.stack[i];
    if (slot === undefined) return;
    if (i < ${REUSED_SLOTS}) slot.setnilvalue();
    else L.stack[i] = void 0;
};
const clear_slots = function(L, from, to) {
    for (let i = to; i >= from; i--) clear_slot(L, i);
};`;

/** Fengari modules replaced whole by ours: each builds the module's exports from the copy's other modules. */
export const REPLACED_MODULES: Readonly<Record<string, (load: (name: string) => Record<string, unknown>) => object>> = {
  /**
   * String keys: fengari keys tables by "|" plus each byte in hex without padding, so "\1\35" and
   * "\18\3" were one key and compared equal, and building the key cost ~10% of a short hook call.
   * Test: test/lua/vm.test.ts: strings with bytes below 0x10 are distinct table keys and compare by
   * their bytes (fengari alone gets both wrong).
   * The module also interns the host's constant names (K()): one Lua string each, its key built and
   * hashed once, instead of a new one per lua_setfield/lua_getfield/lua_pushstring. Test:
   * test/lua/fengari-patches.test.ts: a K() name is one Lua string, however often the host passes it (interned names).
   * And it shares short strings (40 bytes or less), as real Lua does: one made again with the same bytes
   * (a decoded "op", a split piece, a concatenation) is the last one made, from a bounded table, instead
   * of a new string of 250 bytes of heap whose table key is built again. Test:
   * test/lua/fengari-patches.test.ts: short strings with the same bytes are one Lua string, whoever makes them, and never another string (shared short strings).
   */
  'lstring.js': stringModule,
};

/** Changes installed at run time on the private copy; listed here so every change is in one list. */
export const RUNTIME_PATCHES: ReadonlyArray<{ name: string; where: string; reason: string; test: string }> = [
  {
    name: 'concat guard',
    where: 'src/lua/fengari/runtime-patches.ts guardConcat (wraps ldebug.luaG_traceexec; policy: src/lua/limits.ts)',
    reason: '`..` sizes and copies its whole result in one JS call, out of the count hook\'s reach: its length is checked first.',
    test: 'test/lua-limits.test.ts: every way to build a string is capped at maxStringSize, pcall-catchable, and the state goes on',
  },
  {
    name: 'compare guard',
    where: 'src/lua/fengari/runtime-patches.ts guardCompare (wraps ldebug.luaG_traceexec; policy: src/lua/limits.ts)',
    reason: '`==`, `<` and `<=` of two long strings read their bytes in one JS call: a loop of them on 16 MiB strings ran for a minute between budget checks.',
    test: 'test/script-fault-isolation.test.ts: loops of compares or tostring over huge strings are stopped by the budget (1011 script timeout), not after seconds of node time',
  },
  {
    name: 'bulk instructions count their values',
    where: 'src/lua/fengari/runtime-patches.ts guardBulkInstructions (wraps ldebug.luaG_traceexec; policy: src/lua/limits.ts)',
    reason: '`...`, `f(...)`, `return ...`, `{...}` and `#t` of a crafted table walk up to 100,000 values in one instruction: a loop of them ran for minutes between budget checks.',
    test: 'test/script-fault-isolation.test.ts: loops of instructions that move 100,000 values ({...}, f(...), the length of a crafted table) are stopped by the budget (1011 script timeout), not after seconds of node time',
  },
  {
    name: 'slow host calls ask for a budget check',
    where: 'src/lua/fengari/runtime-patches.ts afterHostCalls (wraps ldo.luaD_precall; policy: src/lua/limits.ts)',
    reason: 'Library calls run without the hook; a loop of slow calls would run about 1000 of them between two checks.',
    test: 'test/lua-limits.test.ts: a loop of slow calls is stopped by the budget, not after a thousand instructions of them',
  },
  {
    name: 'capped string buffers',
    where: 'src/lua/fengari/runtime-patches.ts capBuffers (accessors on lauxlib.luaL_Buffer.prototype; policy: src/lua/limits.ts)',
    reason: 'The string library builds results in a luaL_Buffer with no size limit and no allocator hook.',
    test: 'test/lua-limits.test.ts: every way to build a string is capped at maxStringSize, pcall-catchable, and the state goes on',
  },
  {
    name: 'counted pattern steps',
    where: 'src/lua/fengari/runtime-patches.ts countPatternSteps (accessors on lstrlib MatchState.prototype; policy: src/lua/limits.ts)',
    reason: 'Backtracking patterns run for minutes inside one library call.',
    test: 'test/lua-limits.test.ts: backtracking patterns are stopped by maxPatternSteps instead of running for minutes',
  },
  {
    name: 'budget errors skip message handlers',
    where: 'src/lua/fengari/runtime-patches.ts throwPastHandlers (calls ldo.luaD_throw; used by src/lua/vm.ts)',
    reason: 'A hook runs with hooks off: an xpcall handler called from it ran without a budget.',
    test: 'test/script-fault-isolation.test.ts: the budget holds in error handlers and metamethods: each loop costs its connection (1011 script timeout), never the node',
  },
];
