/**
 * What compiled functions (src/lua/fengari/compile.ts) do for Lua that computes: four workloads, each a
 * function called again and again in a sandboxed state with a count hook armed as the VM arms its
 * budget hook, timed interpreted and compiled in turn (the pairs interleaved, so that the machine's
 * drift hits both), each row the median of `--rounds`.
 *
 *   node dist/bench/lua-compute.js [--rounds 5]
 *
 * - `fib`: recursive calls and compares (`fib(20)`).
 * - `arithmetic loop`: a numeric for loop of integer arithmetic (300,000 steps).
 * - `string building`: concatenation and a table of short strings (20,000 pieces).
 * - `table fields`: small tables built and read by field (30,000 of them).
 */
import { lua, lauxlib, K, luaToJsString } from '../src/lua/fengari/index';
import { openSandbox } from '../src/lua/sandbox';
import { installFrameCompiler, uninstallFrameCompiler } from '../src/lua/fengari/compile';
import { median } from './lib/stats';

const WORKLOADS: Record<string, string> = {
  'fib': 'local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end return function() return fib(20) end',
  'arithmetic loop': 'return function() local s = 0 for i = 1, 300000 do s = s + (i % 7) * 2 - 1 end return s end',
  'string building': 'return function() local t = {} for i = 1, 20000 do t[#t + 1] = "k" .. (i % 50) end return #table.concat(t) end',
  'table fields': 'return function() local c = 0 for i = 1, 30000 do local o = {a = i, b = "x"} c = c + o.a end return c end',
};
/** Calls of a workload before it is timed: compiled at the second, then warmed up by V8. */
const WARM_UP_CALLS = 20;
/** Instructions between two runs of the hook, as the VM's budget hook (src/lua/vm.ts HOOK_INTERVAL). */
const HOOK_INTERVAL = 1000;

/** Milliseconds of one call of `workload` on a fresh sandboxed state, after the warm-up calls. */
function time(workload: string, compiled: boolean): number {
  try {
    const L = lauxlib.luaL_newstate();
    openSandbox(L, () => undefined);
    lua.lua_sethook(L, () => undefined, lua.LUA_MASKCOUNT, HOOK_INTERVAL);
    // After openSandbox, which installs the compiler.
    if (compiled) installFrameCompiler();
    else uninstallFrameCompiler();
    if (lauxlib.luaL_loadbufferx(L, K(workload), null, K('=workload'), K('t')) !== lua.LUA_OK) throw new Error(luaToJsString(lua.lua_tolstring(L, -1)!));
    lua.lua_call(L, 0, 1);
    const call = () => {
      lua.lua_pushvalue(L, -1);
      lua.lua_call(L, 0, 0);
    };
    for (let i = 0; i < WARM_UP_CALLS; i++) call();
    const started = process.hrtime.bigint();
    call();
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    installFrameCompiler();
  }
}

function main(): void {
  const at = process.argv.indexOf('--rounds');
  const rounds = at > 0 ? Number(process.argv[at + 1]) : 5;
  for (const [name, workload] of Object.entries(WORKLOADS)) {
    const interpreted: number[] = [];
    const compiled: number[] = [];
    for (let round = 0; round < rounds; round++) {
      interpreted.push(time(workload, false));
      compiled.push(time(workload, true));
    }
    const [i, c] = [median(interpreted), median(compiled)];
    console.log(JSON.stringify({ workload: name, interpretedMs: Math.round(i * 100) / 100, compiledMs: Math.round(c * 100) / 100, speedup: Math.round((i / c) * 100) / 100 }));
  }
}

main();
