import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { lua, lauxlib, lualib, K, luaToJsString, type LuaState, type LuaDebug } from '../../src/lua/fengari/index';
import { installFrameCompiler, uninstallFrameCompiler, isCompiled, type FrameCompilerOptions } from '../../src/lua/fengari/compile';
import { estimateStateBytes } from '../../src/lua/fengari/memory';

/**
 * Compiled functions (src/lua/fengari/compile.ts) must be indistinguishable from fengari's interpreter.
 * Each program here runs twice on fresh states, interpreted and compiled, and everything observable is
 * compared: results, error messages (with their lines and variable names), coroutine hand-offs, and
 * where a count or line hook fires. Compiled runs compile every function at its first call, the main
 * chunk included, so that everything a program runs, runs compiled.
 */

interface Run {
  results: string[];
  /** What the hook saw, when one was set. */
  trace: string[];
  compiled: boolean;
}

function newState(): LuaState {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  return L;
}

/** A fresh state that ran `chunk` (its one result left on the stack) with the compiler installed with `options`. */
function stateAfter(chunk: string, options: FrameCompilerOptions): LuaState {
  installFrameCompiler(options);
  try {
    const L = newState();
    assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=chunk'), K('t')), lua.LUA_OK);
    lua.lua_call(L, 0, 1);
    return L;
  } finally {
    installFrameCompiler();
  }
}

/** Runs `chunk` on a fresh state, compiled or interpreted; `hook` sets a hook of that mask and count. */
function run(chunk: string, compiled: boolean, hook?: { mask: number; count: number }): Run {
  if (compiled) installFrameCompiler({ compileAtCall: 1 });
  else uninstallFrameCompiler();
  try {
    const L = newState();
    for (const name of ['ud1', 'ud2']) {
      lua.lua_newuserdata(L, 0);
      lua.lua_setglobal(L, K(name));
    }
    const trace: string[] = [];
    if (hook) {
      lua.lua_sethook(L, (H: LuaState, ar: LuaDebug) => {
        lua.lua_getinfo(H, K('Sl'), ar);
        trace.push(`${ar.event}:${ar.currentline}`);
      }, hook.mask, hook.count);
    }
    assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=program'), K('t')), lua.LUA_OK, 'the program compiles');
    const status = lua.lua_pcall(L, 0, lua.LUA_MULTRET, 0);
    const results = [`status ${status}`];
    for (let i = 1, n = lua.lua_gettop(L); i <= n; i++) {
      results.push(luaToJsString(lauxlib.luaL_tolstring(L, i)));
      lua.lua_pop(L, 1);
    }
    lua.lua_settop(L, 0);
    lua.lua_getglobal(L, K('probe'));
    return { results, trace, compiled: isCompiled(L) };
  } finally {
    installFrameCompiler();
  }
}

/** Runs `chunk` both ways and checks that they agree; returns the compiled run. */
function same(chunk: string, hook?: { mask: number; count: number }): Run {
  const interpreted = run(chunk, false, hook);
  const compiled = run(chunk, true, hook);
  assert.equal(interpreted.compiled, false);
  assert.deepEqual(compiled.results, interpreted.results);
  assert.deepEqual(compiled.trace, interpreted.trace);
  return compiled;
}

const ARITHMETIC = `
function probe(a, b) return a + b end
local out = {}
local function add(x) out[#out + 1] = tostring(x) end
local i, f, s = 7, 2.5, "10"
add(i + 3) add(i - 10) add(i * 3) add(i % 3) add(-i % 3) add(i ^ 2) add(i / 2) add(i // 2) add(-i // 2)
add(f + i) add(f * f) add(s + 1) add(s * "2") add(i & 3) add(i | 8) add(i ~ 5) add(i << 3) add(i >> 1)
add(-i) add(~i) add(not i) add(#"hello") add(#out) add(100000 * 100000) add(2147483647 + 1) add(0xffffffff)
add(i % 0) add(f % 0) add(1 / 0) add(-1 / 0) add(probe(1, 2)) add(probe(1.5, 2)) add(3 == 3.0) add("a" .. 1 .. 2.5)
local mt = {
  __add = function(a, b) return "add" end, __unm = function(a) return "unm" end, __len = function() return 42 end,
  __concat = function(a, b) return "cat" end, __eq = function() return true end, __lt = function() return true end,
  __le = function() return false end, __index = function(t, k) return k .. "?" end, __call = function(self, x) return x * 2 end,
  __newindex = function(t, k, v) rawset(t, k, v .. "!") end,
}
local a, b = setmetatable({}, mt), setmetatable({}, mt)
add(a + 1) add(-a) add(#a) add(a .. "x") add(a == b) add(a < b) add(a <= b) add(a.foo) add(a(21))
a.bar = "v" add(rawget(a, "bar"))
return table.concat(out, " ")
`;

const CONTROL = `
function probe() end
probe()
local out = {}
for i = 1, 5 do out[#out + 1] = i end
for i = 10, 1, -3 do out[#out + 1] = i end
for x = 0.5, 2, 0.5 do out[#out + 1] = x end
for i = 1, 0 do out[#out + 1] = "never" end
for k, v in ipairs({"a", "b", "c"}) do out[#out + 1] = k .. v end
local keys = {} for k in pairs({x = 1, y = 2, z = 3}) do keys[#keys + 1] = k end table.sort(keys)
out[#out + 1] = table.concat(keys)
local function range(n) return function(_, i) if i < n then return i + 1 end end, nil, 0 end
for i in range(3) do out[#out + 1] = "r" .. i end
local n = 0 while true do n = n + 1 if n > 4 then break end end out[#out + 1] = n
repeat n = n - 1 until n == 0
for i = 1, 3 do for j = 1, 3 do if j == 2 then goto continue end out[#out + 1] = i * 10 + j ::continue:: end end
local fns = {} for i = 1, 3 do fns[i] = function() return i end end
out[#out + 1] = fns[1]() + fns[2]() * 10 + fns[3]() * 100
local function count(n) if n == 0 then return "done" end return count(n - 1) end
out[#out + 1] = count(20000)
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
out[#out + 1] = fib(20)
local function va(...) local t = {...} return select("#", ...), #t, ... end
out[#out + 1] = table.concat({va(1, nil, 3)}, ",", 1, 3)
local big = {} for i = 1, 120 do big[i] = i end
local packed = {table.unpack(big)} out[#out + 1] = #packed
local x, y, z = (function() return 1, 2 end)() out[#out + 1] = tostring(z)
local t = {1, 2, 3, [10] = 10, k = "v", (function() return 4, 5 end)()}
out[#out + 1] = #t .. t.k .. t[10]
local ok = true and nil or "or" out[#out + 1] = ok
local s = "" for i = 1, 10 do s = s .. i .. (i % 2 == 0 and "e" or "o") end out[#out + 1] = s
out[#out + 1] = ("b" > "a") and ("abc" <= "abd") and not ("x" == "y")
return table.concat(out, " ")
`;

const TABLE_READS = `
function probe() end
local out = {}
local function add(x) out[#out + 1] = tostring(x) end
local t = {name = "n", [1] = "one", [2.5] = "float", [-0] = "zero", flag = false}
add(t.name) add(t[1]) add(t[2.5]) add(t[0]) add(t.flag) add(t.missing) add(t[3])
t.name = nil add(t.name) t.name = "again" add(t.name)
for i = 1, 40 do t["k" .. i] = i t["k" .. i] = nil end add(t.k7)
local base = {inherited = "from base", name = "base name"}
local child = setmetatable({name = "own"}, {__index = base})
add(child.name) add(child.inherited) add(child.nothing)
local calls = 0
local lazy = setmetatable({}, {__index = function(_, k) calls = calls + 1 return k .. "!" end})
add(lazy.a) add(lazy[1]) rawset(lazy, "a", "set") add(lazy.a) add(calls)
local s = "text" add(s.len) add(("x").upper)
add(math.pi) add(string.format) add(_ENV.table ~= nil)
local odd = {["a\\"b\\\\c\\n\\0d"] = 1, ["'); throw 1; ('"] = 2, ["\\255\\128"] = 3, [1e300] = 4}
add(odd["a\\"b\\\\c\\n\\0d"]) add(odd["'); throw 1; ('"]) add(odd["\\255\\128"]) add(odd[1e300]) add(odd["a"])
odd["${'long'.repeat(40)}"] = 5 add(odd["${'long'.repeat(40)}"])
local obj = {n = 3} function obj:twice() return self.n * 2 end add(obj:twice())
local proto = {greet = function(self, who) return self.name .. " greets " .. who end}
local inst = setmetatable({name = "inst"}, {__index = proto}) add(inst:greet("you"))
local dyn = setmetatable({}, {__index = function(_, k) return function(self, x) return k .. x end end}) add(dyn:any("!"))
add(("abc"):upper()) add(("x"):rep(3))
add(pcall(function() return obj:missing() end))
add(pcall(function() local n = 5 return n:method() end))
add(pcall(function() return coroutine.running():status() end))
debug.setmetatable(ud1, {__index = {get = function(self, x) return "got " .. x end}})
debug.setmetatable(ud2, {__index = function(self, k) return function(_, x) return k .. "=" .. x end end})
add(ud1:get(1)) add(ud2:dynamic(2)) add(pcall(function() return ud1:nothing() end)) add(ud1.get ~= nil)
return table.concat(out, " ")
`;

const ERRORS = [
  'local t = nil; return t.x',
  'local t = {}; return t.x.y',
  'return undefined_global()',
  'local a; return a + 1',
  'return {} < 1',
  'return "a" < 1',
  'for i = 1, "x" do end',
  'for i = 1, 10, {} do end',
  'local s = "x" .. {}',
  'error("plain")',
  'error({code = 7})',
  'error("no position", 0)',
  'local t = setmetatable({}, {__index = function() error("deep") end}); return t.k',
  'return #nil',
  'return -{}',
  'local function f() return f() + 1 end return f()',
  'string.rep()',
  'return 1 // 0',
  'return ("x"):bad()',
  'local n = 5; return n.field',
  'local t = setmetatable({}, {__index = 7}); return t.k',
];

test('compiled functions give the same results as the interpreter: arithmetic, coercions and metamethods', () => {
  assert.equal(same(ARITHMETIC).compiled, true, 'the probe function was compiled');
});

test('compiled functions give the same results as the interpreter: loops, closures, varargs, tail calls and tables (hot functions run compiled)', () => {
  assert.equal(same(CONTROL).compiled, true);
});

test('compiled functions read tables and call methods by constant keys as the interpreter does: present, absent, removed, inherited, on strings and userdata', () => {
  same(TABLE_READS);
});

test('compiled functions raise the same errors as the interpreter, with the same lines and variable names', () => {
  for (const body of ERRORS) {
    const chunk = `function probe() end probe()\nlocal function f()\n${body}\nend\nlocal ok, err = pcall(f)\nreturn ok, type(err) == "table" and err.code or err`;
    const compiled = same(chunk);
    assert.equal(compiled.results[1], 'false', body);
  }
});

test('compiled functions hand coroutines over as the interpreter does: yields from nested calls, loops and pcall', () => {
  const chunk = `
    function probe() end probe()
    local log = {}
    local function inner(x) local y = coroutine.yield(x * 2) return y + 1 end
    local function middle(x) local r = inner(x) for i = 1, 2 do r = r + coroutine.yield("loop" .. i) end return r end
    local co = coroutine.create(function(a)
      local ok, v = pcall(function() return middle(a) end)
      local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
      local sum = 0 for v2 in gen do sum = sum + v2 end
      error("after " .. tostring(v) .. " " .. sum)
    end)
    local input = 5
    while true do
      local ok, v = coroutine.resume(co, input)
      log[#log + 1] = tostring(ok) .. ":" .. tostring(v)
      if coroutine.status(co) == "dead" then break end
      input = input + 10
    end
    return table.concat(log, " | ")`;
  const compiled = same(chunk);
  assert.match(compiled.results[1], /after 76 6$/);
});

test('a count hook fires at the same instructions and lines, compiled or not', () => {
  const chunk = `
    function probe() end probe()
    local function work(n)
      local s = 0
      for i = 1, n do
        if i % 3 == 0 then s = s + i else s = s - 1 end
      end
      return s
    end
    local t = {}
    for i = 1, 5 do t[i] = work(i * 4) end
    return table.concat(t, ",")`;
  for (const count of [1, 3, 7, 20]) {
    const compiled = same(chunk, { mask: lua.LUA_MASKCOUNT, count });
    assert.ok(compiled.trace.length >= 10, `count ${count}: ${compiled.trace.length} hooks`);
  }
  same(chunk, { mask: lua.LUA_MASKLINE, count: 0 });
  same(chunk, { mask: lua.LUA_MASKCALL | lua.LUA_MASKRET, count: 0 });
});

test('a function longer than the limit stays interpreted, and still runs right', () => {
  const long = `function probe() local x = 0 ${'x = x + 1 '.repeat(50)} return x end return probe()`;
  const L = stateAfter(long, { compileAtCall: 1, maxInstructions: 40 });
  assert.equal(lua.lua_tonumber(L, -1), 50);
  lua.lua_getglobal(L, K('probe'));
  assert.equal(isCompiled(L), false);
  assert.equal(same(long).compiled, true, 'under the default limit it is compiled');
});

test('by default a function is compiled at its second call, a chunk run once never, and compiled code counts in the memory estimate', () => {
  const L = newState();
  const chunk = 'function twice(n) local s = 0 for i = 1, n do s = s + i end return s end function once() return 1 end';
  assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=policy'), K('t')), lua.LUA_OK);
  lua.lua_pushvalue(L, -1);
  lua.lua_call(L, 0, 0);
  assert.equal(isCompiled(L), false, 'the main chunk, run once');
  lua.lua_pop(L, 1);
  const compiledNot = estimateStateBytes(L);
  const call = (name: string) => {
    lua.lua_getglobal(L, K(name));
    lua.lua_pushinteger(L, 10);
    lua.lua_call(L, 1, 1);
    assert.ok(lua.lua_tonumber(L, -1) > 0);
    lua.lua_pop(L, 1);
    lua.lua_getglobal(L, K(name));
    const compiled = isCompiled(L);
    lua.lua_pop(L, 1);
    return compiled;
  };
  assert.equal(call('twice'), false, 'after one call');
  assert.equal(call('once'), false);
  assert.equal(call('twice'), true, 'after two calls');
  assert.ok(estimateStateBytes(L) > compiledNot + 5000, 'the compiled function\'s code is counted');
});

test('a long constant key is not written into compiled code: its size stays that of the instructions', () => {
  const key = 'k'.repeat(10_000);
  const chunk = `local t = {["${key}"] = 1} function probe() local s = 0 ${`s = s + t["${key}"] `.repeat(100)} return s end return probe() + probe()`;
  const L = stateAfter(chunk, { compileAtCall: 1 });
  assert.equal(lua.lua_tonumber(L, -1), 200);
  lua.lua_getglobal(L, K('probe'));
  assert.equal(isCompiled(L), true);
  const thread = L as unknown as { stack: Array<{ value: { p: { compiled: () => void } } }>; top: number };
  const code = String(thread.stack[thread.top - 1].value.p.compiled);
  // Written in once per read, the key alone would be 100 * 10,000 characters.
  assert.ok(code.length < (100 * key.length) / 2, `${code.length} characters of compiled code`);
});
