import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { scriptVm, type RunResult } from './support/lua-harness';
import { lua, lauxlib, K, type LuaState } from '../src/lua/fengari/index';
import { MIX_UTILS } from '../src/lua/mix/utils';
import { phpPackFn, phpUnpackFn } from '../src/lua/mix/php-pack';
import { pushHttpModule } from '../src/lua/mix/http';
import { searchBytes } from '../src/lua/sandbox';
import { DEFAULT_LIMITS, type SandboxLimits } from '../src/lua/limits';
import { withNode, TestClient, EVAL } from './support/helpers';

/**
 * The sandbox limits of one Lua call: every library call that Fengari runs as one uninterruptible JS
 * loop is capped (src/lua/limits.ts), a loop of such calls is still stopped by the budget, recursion and
 * coroutine bombs end as Lua errors, and the VM stays usable afterwards.
 */

/**
 * A VM with the `mix` utilities, the sandbox limits given, and a slow host function `spin(ms)`. The
 * budget is generous unless a test is about it: the caps, not the budget, must stop these calls.
 */
function hostileVm(limits: SandboxLimits = {}, callBudget = 5000) {
  return scriptVm({
    limits,
    callBudget,
    install: (vm) => {
      lua.lua_newtable(vm.L);
      lauxlib.luaL_setfuncs(vm.L, { ...MIX_UTILS, php_pack: phpPackFn, php_unpack: phpUnpackFn }, 0);
      lua.lua_setglobal(vm.L, K('mix'));
      lua.lua_pushjsfunction(vm.L, (L: LuaState) => {
        const until = Date.now() + (lua.lua_tonumber(L, 1) as number);
        while (Date.now() < until) { /* a host function that takes its time */ }
        return 0;
      });
      lua.lua_setglobal(vm.L, K('spin'));
    },
  });
}

/** Runs `source`, returning the result and how long it took. */
async function timed(exec: (source: string) => Promise<RunResult>, source: string) {
  const started = Date.now();
  const result = await exec(source);
  return { ...result, ms: Date.now() - started };
}

/** Generous bound for "stopped promptly" on a loaded CI machine: a budget and a capped call or two. */
const PROMPT_MS = 10_000;

test('every way to build a string is capped at maxStringSize, pcall-catchable, and the state goes on', async () => {
  const { exec, vm } = hostileVm({ maxStringSize: 4096 });
  const over = {
    'string.rep': 'return string.rep("ab", 3000)',
    'string.rep with sep': 'return string.rep("a", 2000, ",,")',
    '.. of two': 'local s = string.rep("x", 3000) return s .. s',
    '.. chain': 'local s = string.rep("x", 1000) return s .. s .. s .. s .. s',
    '.. with numbers': 'local s = string.rep("x", 4090) return s .. 12345678',
    '.. in a loop': 'local s = "" for i = 1, 10000 do s = s .. "0123456789" end return s',
    'string.format': 'return string.format("%s%s", string.rep("x", 3000), string.rep("y", 3000))',
    'string.format %q': 'return string.format("%q", string.rep("\\0", 3000))',
    'string.gsub growth': 'return (string.gsub(string.rep("x", 1000), ".", "%0%0%0%0%0"))',
    'string.gsub empty match': 'return (string.gsub(string.rep("x", 2000), "", "ab"))',
    'string.char': 'local t = {} for i = 1, 5000 do t[i] = 65 end return string.char(table.unpack(t))',
    'utf8.char': 'local t = {} for i = 1, 2000 do t[i] = 0x10FFFF end return utf8.char(table.unpack(t))',
    'string.pack': 'return string.pack("c5000", "")',
    'table.concat': 'local t = {} for i = 1, 500 do t[i] = "0123456789" end return table.concat(t)',
    'mix.json_encode': 'local s = string.rep("x", 1500) return assert(mix.json_encode({ s, s, s }))',
    'mix.base64_encode': 'return mix.base64_encode(string.rep("x", 3100))',
  };
  for (const [name, source] of Object.entries(over)) {
    const r = await exec(source);
    assert.match(r.error ?? '', /exceeds the 4096-byte limit/, `${name}: ${r.error ?? JSON.stringify(r.values).slice(0, 80)}`);
    const caught = await exec(`return pcall(function() ${source} end)`);
    assert.equal(caught.values[0], false, name);
  }
  const under = await exec(`local s = string.rep("x", 2048) local t = {} for i = 1, 64 do t[i] = "0123456789" end
    return #(s .. s), #string.format("%s|%s", s, s:sub(1, 2000)), #(s:gsub("x", "yy", 1000)), #table.concat(t),
      #string.rep("ab", 2048), select(2, mix.json_encode({ s, s }))`);
  assert.equal(under.error, null, under.error ?? '');
  assert.deepEqual(under.values, [4096, 4049, 3048, 640, 4096, 'JSON text exceeds the 4096-byte limit']);
  assert.deepEqual((await exec('return 1 + 1')).values, [2]);
  assert.equal(vm.stackHeight(), 0);
});

test('at the default limits, a 16 MiB string is fine and anything larger fails fast', async () => {
  const { exec } = hostileVm();
  assert.equal(DEFAULT_LIMITS.maxStringSize, 16 * 1024 * 1024);
  const ok = await timed(exec, 'local s = string.rep("x", 2^23) return #(s .. s), #string.rep("ab", 2^23)');
  assert.deepEqual(ok.values, [2 ** 24, 2 ** 24]);
  for (const source of [
    'local s = string.rep("x", 2^23) return s .. s .. "!"',
    'local s = string.rep("x", 2^24) return s..s..s..s..s..s..s..s..s..s..s..s..s..s..s..s',
    'return string.rep("x", 2^30)',
    'local s = string.rep("x", 2^23) return string.format("%s%s%s", s, s, s)',
    // Many references to one large string: the encoder would otherwise copy it into the JS heap each time.
    'local s = string.rep("x", 2^24) local t = {} for i = 1, 300 do t[i] = s end return assert(mix.json_encode(t))',
    // Control characters escape to six: refused before 96 MiB of text is built.
    'return assert(mix.json_encode(string.rep("\\1", 2^24)))',
    'return mix.base64_encode(string.rep("x", 2^24))',
  ]) {
    const r = await timed(exec, source);
    assert.match(r.error ?? '', /exceeds the 16777216-byte limit/, source);
    assert.ok(r.ms < PROMPT_MS, `${source} took ${r.ms} ms`);
  }
});

test('backtracking patterns are stopped by maxPatternSteps instead of running for minutes', async () => {
  const { exec } = hostileVm();
  for (const source of [
    'return string.find(string.rep("a", 1e4), ".-.-.-.-.-b")',
    'return string.find(string.rep("a", 1e5), "a*b")',
    'return string.match(string.rep("a", 1e5), "(a*)(a*)b")',
    'return string.find(string.rep("(", 1e5), "%b()")',
    'return string.gsub(string.rep("a", 1e4), ".-.-b", "")',
    'for w in string.gmatch(string.rep("a", 1e4), ".-.-b") do end',
    'return string.gsub(string.rep("x", 2^20), ".", "%0%0%0%0")',
  ]) {
    const r = await timed(exec, source);
    assert.match(r.error ?? '', /pattern too complex: more than 2000000 matching steps/, source);
    assert.ok(r.ms < PROMPT_MS, `${source} took ${r.ms} ms`);
  }
  // Ordinary matching on a message-sized string stays within the cap.
  const fine = await exec(`local s = string.rep("hello world ", 20000)
    local n = 0 for w in s:gmatch("%a+") do n = n + 1 end
    return n, (select(2, s:gsub("o", "0"))), s:find("world", 1e5), s:match("^(%a+)"), (s:find("xyz%d"))`);
  assert.equal(fine.error, null, fine.error ?? '');
  assert.deepEqual(fine.values, [40000, 40000, 100003, 'hello', null]);
  const small = hostileVm({ maxPatternSteps: 1000 });
  assert.match((await small.exec('return ("x"):rep(5000):find("y%d")')).error ?? '', /more than 1000 matching steps/);
  assert.deepEqual((await small.exec('return ("x"):rep(100):find("x%a")')).values, [1, 2]);
});

test('plain string.find is linear and agrees with a naive search', async () => {
  const { exec } = hostileVm();
  const slow = await timed(exec, `local s = string.rep("a", 2^20) local p = string.rep("a", 2^19) .. "b"
    return s:find(p, 1, true), s:find(string.rep("a", 2^18) .. "b" .. string.rep("a", 2^18)), s:find(string.rep("a", 40), 2^20 - 40, true)`);
  assert.equal(slow.error, null, slow.error ?? '');
  assert.deepEqual(slow.values, [null, null, 2 ** 20 - 40, 2 ** 20 - 1]);
  assert.ok(slow.ms < PROMPT_MS, `took ${slow.ms} ms`);
  // Differential check of the search itself over small random inputs (seeded).
  let seed = 7;
  const next = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) / 65536;
  for (let i = 0; i < 3000; i++) {
    const hay = Buffer.from(Array.from({ length: Math.floor(next() * 40) }, () => (next() < 0.7 ? 97 : 98)));
    const needle = Buffer.from(Array.from({ length: Math.floor(next() * 6) + (next() < 0.3 ? 20 : 0) }, () => (next() < 0.8 ? 97 : 98)));
    const from = Math.floor(next() * (hay.length + 1));
    let expected = -1;
    for (let at = from; at + needle.length <= hay.length && expected < 0; at++) {
      if (hay.subarray(at, at + needle.length).equals(needle)) expected = at;
    }
    if (needle.length === 0) expected = from;
    assert.equal(searchBytes(hay, needle, from), expected, `hay=${hay} needle=${needle} from=${from}`);
  }
  // And through string.find, with negative and out-of-range init as Lua defines them.
  const r = await exec(`return {("abcabc"):find("bc", -3, true)}, {("abc"):find("", 10, true)}, {("abc"):find("", 4, true)},
    {("a.c"):find(".", 1, true)}, {("abc"):find("c", -100)}, {("abc"):find("x")}, {("a+b"):find("+", 1, true)}, {(""):find("")}`);
  assert.deepEqual(r.values, [[5, 6], {}, [4, 3], [2, 2], [3, 3], {}, [2, 2], [1, 0]]);
});

test('maxItems caps what one table or string call walks, moves or returns', async () => {
  const { exec } = hostileVm({ maxItems: 100 });
  const setup = 'local t = {} for i = 1, 150 do t[i] = i end local s = string.rep("a", 150) ';
  const over = {
    'table.move': 'return table.move({}, 1, 1e8, 2)',
    'table.move of a big list': setup + 'return table.move(t, 1, 150, 2)',
    'table.unpack': setup + 'return table.unpack(t)',
    'table.unpack range': 'return table.unpack({}, 1, 1e7)',
    'table.concat': setup + 'return table.concat(t, ",")',
    'table.sort': setup + 'table.sort(t)',
    'table.insert at the front': setup + 'table.insert(t, 1, 0)',
    'table.remove at the front': setup + 'table.remove(t, 1)',
    'string.byte': setup + 'return string.byte(s, 1, -1)',
    'utf8.codepoint': setup + 'return utf8.codepoint(s, 1, -1)',
    'string.char': 'return string.char(' + Array(101).fill('65').join(',') + ')',
    'utf8.char': 'return utf8.char(' + Array(101).fill('65').join(',') + ')',
    'mix.str_split': 'return mix.str_split(string.rep(",", 150), ",")',
    'string.pack': 'return string.pack(string.rep("x", 101))',
    'string.unpack': 'return string.unpack(string.rep("b", 101), string.rep("a", 101))',
    'string.packsize': 'return string.packsize(string.rep("b", 101))',
  };
  for (const [name, source] of Object.entries(over)) {
    const r = await exec(source);
    assert.match(r.error ?? '', /(elements exceed the 100-element limit|more than 100 pieces)/, `${name}: ${r.error ?? JSON.stringify(r.values)}`);
  }
  const ok = await exec(setup + `table.insert(t, 100, 0) table.remove(t, 60) table.insert(t, 1) table.remove(t)
    local u = {} for i = 1, 100 do u[i] = 101 - i end table.sort(u)
    return #t, select("#", table.unpack(t, 1, 100)), #table.concat(t, ",", 51, 150), u[1], u[100],
      select("#", string.byte(s, 1, 100)), (string.byte(s)), #string.char(table.unpack(t, 1, 100)), #mix.str_split(string.rep(",", 99), ","),
      select(2, mix.json_decode("[" .. string.rep("0,", 100) .. "0]")),
      #string.pack(string.rep("x", 100)), select("#", string.unpack(string.rep("b", 99), string.rep("a", 99))),
      string.packsize(string.rep("b", 100))`);
  assert.equal(ok.error, null, ok.error ?? '');
  assert.deepEqual(ok.values, [150, 100, 349, 1, 100, 100, 97, 100, 100, 'invalid JSON: more than 100 values (the maxItems limit)',
    100, 100, 100]);
});

test('json_decode refuses documents with more than maxItems values (a 1 MiB message of [0,0,...] would stall the node)', async () => {
  const { exec } = hostileVm();
  const r = await timed(exec, `local s = "[" .. string.rep("0,", 5e5) .. "0]" return mix.json_decode(s)`);
  assert.deepEqual(r.values, [null, 'invalid JSON: more than 100000 values (the maxItems limit)']);
  assert.ok(r.ms < PROMPT_MS, `took ${r.ms} ms`);
  const fine = await exec(`local t = mix.json_decode("[" .. string.rep("[1,{\\"a\\":2}],", 20000) .. "0]") return #t, t[20000][2].a`);
  assert.equal(fine.error, null, fine.error ?? '');
  assert.deepEqual(fine.values, [20001, 2]);
});

test('json_decode reads a number of any length as JSON.parse does, not as a host error (a 1 MiB message of digits overflowed the JS stack)', async () => {
  const { exec, lines } = hostileVm();
  const r = await exec(`local long = "1" .. string.rep("0", 200000)
    local t, err = mix.json_decode('{"op":' .. long .. ',"n":[-' .. long .. ',0.' .. long .. ']}')
    return err, t.op == 1 / 0, t.n[1] == -1 / 0, t.n[2] == 0.1`);
  assert.equal(r.error, null, r.error ?? '');
  assert.deepEqual(r.values, [null, true, true, true]);
  assert.ok(!lines.some((line) => line.includes('native error')), 'no host function failed');
});

test('a hook error keeps the first 8 KiB of a long message in its traceback: a 16 MiB error(s) is not decoded and logged whole', async () => {
  const { exec } = hostileVm();
  const r = await exec('error(string.rep("x", 2^24 - 100), 0)');
  const traceback = r.error ?? '';
  assert.ok(traceback.length < 9000, `the traceback holds ${traceback.length} characters`);
  assert.match(traceback, /^x{8192}… \(an error message of 16777116 bytes\)\nstack traceback:/);
  const short = await exec('error("short and whole", 0)');
  assert.match(short.error ?? '', /^short and whole\nstack traceback:/);
});

test('host calls that loop over their input count their work against maxItems and maxStringSize, at every visit', async () => {
  const { exec, vm } = hostileVm();
  const SHARED = 'local t = { 1 } for i = 1, 22 do t = { t, t } end'; // 2^22 leaves through 22 tables
  const cases: Record<string, [string, RegExp]> = {
    'php_unpack C* of 16 MiB': ['return mix.php_unpack("C*", string.rep("x", 2^24))', /php_unpack: more than 100000 format items or values \(the maxItems limit\)/],
    'php_unpack of a long format': ['return mix.php_unpack(string.rep("x0/", 2^20), "x")', /php_unpack: more than 100000 format items/],
    'php_unpack H* over maxStringSize': ['return mix.php_unpack("H*", string.rep("x", 2^24))', /a string of 33554432 bytes exceeds the 16777216-byte limit/],
    'php_pack of a long format': ['return mix.php_pack(string.rep("x", 2^20))', /php_pack: more than 100000 format items/],
    'json_encode of a shared subtree': [`${SHARED} return assert(mix.json_encode(t))`, /more than 100000 values to encode \(the maxItems limit\)/],
    'json_decode of a 16 MiB array': ['return assert(mix.json_decode("[" .. string.rep("0,", 2^23 - 2) .. "0]"))', /invalid JSON: more than 100000 values/],
    'json_decode nested past the depth limit': ['return assert(mix.json_decode(string.rep("[", 2^20)))', /invalid JSON: value nested deeper than 64 levels/],
    'parse_url of a 12 MiB URL': ['return mix.parse_url("/" .. string.rep("a b", 2^22))', /parse_url: a URL of more than 100000 bytes \(the maxItems limit\)/],
    'table.maxn of a long table': ['local t = {} for i = 1, 100001 do t[i] = i end return table.maxn(t)', /table.maxn: more than 100000 entries \(the maxItems limit\)/],
    'bytes_tostring of a long table': ['local t = {} for i = 1, 100001 do t[i] = 65 end return mix.bytes_tostring(t)', /bytes_tostring: more than 100000 bytes/],
    'os.date past maxStringSize': ['return os.date(string.rep("%c", 2^20))', /exceeds the 16777216-byte limit/],
    'string.format %q past maxStringSize': ['return string.format("%q", string.rep("\\0", 2^23))', /string of 16777218 bytes exceeds the 16777216-byte limit/],
    'string.format of numbers past maxStringSize': ['local t = {} for i = 1, 100000 do t[i] = 1e308 end return string.format(string.rep("%99.99f", 100000), table.unpack(t))',
      /string.format: result exceeds the 16777216-byte limit/],
  };
  for (const [name, [source, expected]] of Object.entries(cases)) {
    const before = process.memoryUsage();
    const r = await timed(exec, source);
    const after = process.memoryUsage();
    assert.match(r.error ?? '', expected, `${name}: ${r.error ?? JSON.stringify(r.values).slice(0, 80)}`);
    assert.ok(r.ms < PROMPT_MS, `${name} took ${r.ms} ms`);
    const grown = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 2 ** 20;
    assert.ok(grown < 256, `${name} grew the heap by ${grown.toFixed(0)} MiB`);
    assert.equal((await exec(`return pcall(function() ${source} end)`)).values[0], false, name);
  }
  // What stays under the limits still works, and quickly: os.date formats each distinct conversion once,
  // %q quotes in one pass (Fengari's loops took 6 s for a 1 MB os.date format and 12 s for %q of 8 MiB).
  const fine = await timed(exec, `
    local date = os.date(string.rep("%c", 2^19), 0)
    local q = string.format("%q", string.rep("a\\0", 2^22))
    local all = {} for b = 0, 255 do all[#all + 1] = string.char(b) .. "1" .. string.char(b) end
    local s = table.concat(all)
    return #date, date:sub(1, 24), #q, load("return " .. string.format("%q, %q", s, "x"))() == s, string.format("%5s|%q|%d", "a", 12, 2^40),
      os.date("!%Y-%m-%d %H:%M:%S %%", 86400 * 365), #mix.php_unpack("C*", string.rep("x", 99999)), #mix.json_encode({ 1, { 2, 3 } })`);
  assert.equal(fine.error, null, fine.error ?? '');
  assert.deepEqual(fine.values, [24 * 2 ** 19, 'Thu Jan  1 00:00:00 1970', 3 * 2 ** 22 + 2, true, '    a|12|1099511627776',
    '1971-01-01 00:00:00 %', 99999, 9]);
  assert.ok(fine.ms < PROMPT_MS, `took ${fine.ms} ms`);
  assert.equal(vm.stackHeight(), 0);
});

test('mix.http.request walks at most maxItems header or cookie entries', async () => {
  const { exec } = scriptVm({
    limits: { maxItems: 100 },
    callBudget: 5000,
    install: (vm) => {
      pushHttpModule(vm as unknown as Parameters<typeof pushHttpModule>[0]);
      lua.lua_setglobal(vm.L, K('http'));
    },
  });
  for (const option of ['headers', 'cookies']) {
    // Refused while the options are read, before any request is made (nothing listens on port 9).
    const r = await exec(`local t = {} for i = 1, 101 do t["x" .. i] = "1" end return pcall(http.request, "GET", "http://127.0.0.1:9/", { ${option} = t })`);
    assert.equal(r.values[0], false, option);
    assert.match(String(r.values[1]), new RegExp(`${option} has more than 100 entries \\(the maxItems limit\\)`));
  }
});

test('load and loadstring refuse sources over maxLoadSize, also through a reader function', async () => {
  const { exec } = hostileVm({ maxLoadSize: 1000 });
  const r = await exec(`local f1, e1 = load(string.rep(" ", 1001))
    local f2, e2 = loadstring(string.rep(" ", 5000))
    local n = 0
    local f3, e3 = load(function() n = n + 1 if n < 100 then return string.rep(" ", 50) end end)
    local f4 = load("return " .. string.rep("1 + ", 200) .. "1")
    return f1, e1, f2, e2, f3, e3, f4()`);
  assert.equal(r.error, null, r.error ?? '');
  assert.deepEqual(r.values.slice(0, 4), [null, 'chunk of 1001 bytes exceeds the 1000-byte load limit', null, 'chunk of 5000 bytes exceeds the 1000-byte load limit']);
  assert.equal(r.values[4], null);
  assert.match(String(r.values[5]), /chunk exceeds the 1000-byte load limit/);
  assert.equal(r.values[6], 201);
  const parse = await timed(hostileVm().exec, 'return load(string.rep("x = 1 ", 3e5))');
  assert.match(String(parse.values[1]), /exceeds the 1048576-byte load limit/);
  assert.ok(parse.ms < PROMPT_MS);
});

test('a loop of slow calls is stopped by the budget, not after a thousand instructions of them', async () => {
  const { exec } = hostileVm({}, 100);
  for (const source of [
    'while true do spin(20) end',
    'while true do pcall(spin, 20) end',
    'local s = string.rep("x", 2^23) while true do local u = s:upper() end',
    'local s = string.rep("x", 2^24) while true do local u = s:sub(2) end',
    'local s = string.rep("x", 2^23) while true do local u = string.format("%s", s) end',
    'local s = string.rep("x", 2^24) while true do local u = s:find("y", 1, true) end',
    'local s = string.rep("x", 2^24) while true do local u = tonumber(s) end',
    'local s = string.rep("x", 2^24) while true do local u = s:byte(1, 50000) end',
    'local s = string.rep("a", 1e4) while true do pcall(string.find, s, ".-.-.-b") end',
    'local s = string.rep("x", 2^22) local t = {} for i = 1, 1e9 do t[i] = s .. i end',
    'local s = string.rep("0,", 40000) while true do mix.json_decode("[" .. s .. "0]") end',
    // Under the 64 KiB of a large string, and still milliseconds of values per call.
    'local s = "[" .. string.rep("{},", 21000) .. "0]" while true do mix.json_decode(s) end',
    'local s = string.rep(",", 60000) while true do mix.str_split(s, ",") end',
    'local co = coroutine.wrap(function() while true do spin(20) coroutine.yield() end end) while true do co() end',
  ]) {
    const r = await timed(exec, source);
    assert.equal(r.timedOut, true, `${source}: ${r.error}`);
    // The budget, plus at most MIN_TICKS (vm.ts) slow calls, each under the caps: well under a second or
    // two. Without a budget check right after slow calls it would take 20,000 instructions of them (minutes).
    assert.ok(r.ms < PROMPT_MS, `${source} took ${r.ms} ms`);
  }
  assert.deepEqual((await exec('return "alive"')).values, ['alive']);
});

test('recursion and coroutine bombs end as Lua errors; the state stays usable', async () => {
  const { exec, vm } = hostileVm({}, 500);
  const cases = {
    'Lua recursion': 'local function f() return f() + 1 end return f()',
    'recursion through pcall': 'local function f() local ok, e = pcall(f) error(e, 0) end f()',
    'recursion through __index': 'local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x',
    'recursion through __tostring': 'local t t = setmetatable({}, {__tostring = function() return tostring(t) end}) return tostring(t)',
    'recursion through gsub': 'local function f(c) return (string.gsub("x", ".", f)) end return f("x")',
    'recursion through table.sort': 'local function f() table.sort({3, 2, 1}, function(a, b) f() return a < b end) end f()',
    'coroutine.wrap bomb': 'local function bomb() return coroutine.wrap(bomb)() end return bomb()',
    'coroutine.resume bomb': 'local function bomb() local ok, e = coroutine.resume(coroutine.create(bomb)) error(e, 0) end bomb()',
    'deep parser nesting': 'return assert(load(string.rep("(", 1e5)))',
    'deep table constructor': 'return assert(load("return " .. string.rep("{", 1e4) .. string.rep("}", 1e4)))',
    'deep json_encode': 'local t = {} local c = t for i = 1, 1e4 do c[1] = {} c = c[1] end return assert(mix.json_encode(t))',
    'cyclic json_encode': 'local t = {} t[1] = t return assert(mix.json_encode(t))',
    'deep json_decode': 'return assert(mix.json_decode(string.rep("[", 1e4) .. string.rep("]", 1e4)))',
    'many coroutines': 'local t = {} for i = 1, 1e9 do t[i] = coroutine.create(print) end',
    'error with a huge message': 'error(string.rep("x", 2^24))',
    'error with a table': 'error(setmetatable({}, {__tostring = function() while true do end end}))',
  };
  for (const [name, source] of Object.entries(cases)) {
    const r = await timed(exec, source);
    assert.notEqual(r.error, null, `${name}: expected an error, got ${JSON.stringify(r.values).slice(0, 80)}`);
    assert.ok(r.ms < PROMPT_MS, `${name} took ${r.ms} ms`);
    assert.deepEqual((await exec('return 40 + 2')).values, [42], `after ${name}`);
  }
  assert.equal(vm.stackHeight(), 0);
});

test('building a huge table is stopped by the default budget with memory to spare', async () => {
  const { exec } = hostileVm({}, 100);
  for (const source of [
    'local t = {} for i = 1, 1e9 do t[i] = i end',
    'local t = {} for i = 1, 1e9 do t["k" .. i] = i end',
    'local t = {} for i = 1, 1e9 do t[i] = { i } end',
    'local t = {} for i = 1, 1e9 do table.insert(t, "0123456789") end',
  ]) {
    const before = process.memoryUsage();
    const r = await exec(source);
    const after = process.memoryUsage();
    assert.equal(r.timedOut, true, source);
    const grown = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 2 ** 20;
    assert.ok(grown < 512, `${source} grew the heap by ${grown.toFixed(0)} MiB`);
  }
});

test('a hostile script on one connection does not stall the others', async () => {
  // A budget roomy enough that only the caps stop the first three attacks; the fourth loops until it runs out.
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, callBudget: 1000 }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const hostile = await TestClient.open(node.wsUrl);
    const attacks = [
      'return pcall(string.find, string.rep("a", 1e5), ".-.-.-.-b")',
      'local s = string.rep("x", 2^23) return pcall(function() return s .. s .. s end)',
      'return pcall(table.move, {}, 1, 1e9, 2)',
      'while true do pcall(string.find, string.rep("a", 1e4), ".-.-.-b") end',
    ];
    for (const attack of attacks) {
      const started = Date.now();
      hostile.send(attack);
      assert.equal(await bystander.request('return "pong"'), '["pong"]');
      assert.ok(Date.now() - started < PROMPT_MS, `bystander waited ${Date.now() - started} ms behind: ${attack}`);
    }
    for (let i = 0; i < 3; i++) {
      const answer = await hostile.next();
      assert.match(answer.data, /^\[false,".*(pattern too complex|exceeds the|element limit)/, answer.data);
    }
    const { code, reason } = await hostile.waitClosed();
    assert.equal(code, 1011);
    assert.equal(reason, 'script timeout');
    assert.equal(await bystander.request('return "still here"'), '["still here"]');
    bystander.close();
  });
});
