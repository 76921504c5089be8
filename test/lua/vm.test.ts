import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { luaFolder, memoryLogger, scriptVm } from '../support/lua-harness';
import { lua } from '../../src/lua/fengari/index';
import { LuaVM, LuaLoadError } from '../../src/lua/vm';
import { ROOT } from '../support/helpers';

test('Lua 5.1 surface: getn, unpack, loadstring, math.pow, bit', async () => {
  const { exec } = scriptVm();
  const r = await exec(`
    local bit = require("bit")
    return table.getn({1, 2, 3}), select("#", unpack({4, 5})), loadstring("return 6")(), math.pow(2, 10),
      bit.band(0xff, 0x0f), bit.bor(1, 2), bit.lshift(1, 4), bit.rshift(-1, 28), bit.tohex(255, 4),
      table.maxn({[1]=1, [7]=2}), tostring(100001 * 1.0), tostring(os.time() * 1000 > 1.7e12)`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, [3, 2, 6, 1024, 15, 3, 16, 15, '00ff', 7, '100001', 'true']);
});

test('Lua 5.1 math functions, math.mod and string.char answer as gopher-lua (CONNMIX) does', async () => {
  const { exec, lines } = scriptVm();
  const r = await exec(`
    local m1, e1 = math.frexp(8)
    local m2, e2 = math.frexp(-3)
    local m3, e3 = math.frexp(0)
    return math.atan2(1, -1) == 3 * math.pi / 4, math.cosh(0), math.sinh(0), math.tanh(0), math.log10(1000),
      m1, e1, m2, e2, m3, e3, math.ldexp(0.75, 3), math.ldexp(0.5, 1024) == 2^1023, math.ldexp(1, -1074) > 0,
      math.ldexp(3, 2.9), math.mod(-5, 3), math.mod(5, -3), math.mod(5.5, 2), math.fmod(-5, 3),
      string.char(72, 105), string.char(256, 321, -1) == "\\0A\\255", string.char(65.9)`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, [true, 1, 0, 0, 3, 0.5, 4, -0.75, 2, 0, 0, 6, true, true, 12, 1, -1, 1.5, -2, 'Hi', true, 'A']);
  const bad = await exec('return pcall(string.char, "x")');
  assert.deepEqual(bad.values, [false, "bad argument #1 to 'string.char' (number expected, got string)"]);
  const format = await exec('return pcall(string.format, "%d%", 1)');
  assert.deepEqual(format.values, [false, "invalid conversion '%' to 'format'"]);
  assert.deepEqual(lines.filter((line) => line.includes('native error')), []);
});

test('string.upper and string.lower map UTF-8 letters one for one, as gopher-lua (CONNMIX) does; other bytes stay', async () => {
  const { exec } = scriptVm();
  // The expected texts are what gopher-lua v1.1.1 printed for the same calls.
  const r = await exec(`return string.upper("héllo wörld"), string.lower("ÀÉÎÕÜ"), string.upper("straße"),
    string.lower("ΟΔΟΣ ΟΔΟΣ"), ("ǆ"):upper(), string.upper("中文弹幕 abc"), string.lower("İ"), string.upper("ﬁ"),
    string.upper("\\255abc") == "\\255ABC", string.lower("A\\0B")`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['HÉLLO WÖRLD', 'àéîõü', 'STRAßE', 'οδοσ οδοσ', 'Ǆ', '中文弹幕 ABC', 'i', 'ﬁ', true, 'a\0b']);
});

test('table.getn rejects a non-table like Lua 5.1', async () => {
  const { exec } = scriptVm();
  const r = await exec(`return table.getn("x")`);
  assert.match(r.error ?? '', /bad argument #1 to 'getn' \(table expected, got string\)/);
});

test('sandbox: every escape is closed', async () => {
  const { exec } = scriptVm();
  const r = await exec(`
    return type(io), type(debug), type(package), type(dofile), type(loadfile), type(string.dump),
      type(os.execute), type(os.remove), type(os.getenv), type(os.exit), type(os.time), type(js)`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['nil', 'nil', 'nil', 'nil', 'nil', 'nil', 'nil', 'nil', 'nil', 'nil', 'function', 'nil']);
});

test('sandbox: load refuses bytecode, setfenv explains itself', async () => {
  const { exec } = scriptVm();
  const bytecode = await exec(`return load("\\27Lua\\83\\0")`);
  assert.equal(bytecode.values[0], null);
  assert.match(String(bytecode.values[1]), /attempt to load a binary chunk/);
  const viaLoadstring = await exec(`return loadstring("\\27Lua\\83\\0")`);
  assert.equal(viaLoadstring.values[0], null);
  assert.match(String(viaLoadstring.values[1]), /attempt to load a binary chunk/);
  const fenv = await exec(`setfenv(1, {})`);
  assert.match(fenv.error ?? '', /setfenv is not supported/);
});

test('require: modules under the entry folder, nothing outside', async () => {
  const { exec } = scriptVm({}, {
    'utils/greet.lua': 'local M = {} function M.hi(n) return "hi " .. n end return M',
    'protocols/text.lua': 'return { name = "text" }',
  });
  const ok = await exec(`return require("utils.greet").hi("x"), require("protocols/text").name, require("utils.greet") == require("utils.greet")`);
  assert.deepEqual(ok.values, ['hi x', 'text', true]);
  for (const name of ['../etc/passwd', '/etc/passwd', 'utils..greet', 'missing.module']) {
    const r = await exec(`return require(${JSON.stringify(name)})`);
    assert.match(r.error ?? '', /module '.*' not found/, name);
  }
});

test('string.rep and table.concat are capped', async () => {
  const { exec } = scriptVm({ limits: { maxStringSize: 1024 } });
  assert.equal((await exec(`return #string.rep("ab", 512)`)).values[0], 1024);
  assert.match((await exec(`return string.rep("ab", 513)`)).error ?? '', /exceeds the 1024-byte limit/);
  assert.match((await exec(`local t = {} for i = 1, 200 do t[i] = "0123456789" end return table.concat(t)`)).error ?? '', /exceeds/);
  assert.equal((await exec(`return table.concat({"a", "b", 3}, "-")`)).values[0], 'a-b-3');
});

test('a runaway loop is stopped by the budget, also through pcall, and the state keeps working', async () => {
  const { exec, vm } = scriptVm({ callBudget: 50 });
  for (const source of ['while true do end', 'while true do pcall(function() while true do end end) end',
    'local co = coroutine.wrap(function() while true do end end) co()']) {
    const started = Date.now();
    const r = await exec(source);
    assert.equal(r.timedOut, true, source);
    assert.match(r.error ?? '', /exceeded its budget of 50 ms/);
    assert.ok(Date.now() - started < 5000, 'stopped');
  }
  assert.deepEqual((await exec('return 1 + 1')).values, [2]);
  assert.equal(vm.stackHeight(), 0);
});

test('the budget counts Lua time on the CPU: a call the process was stopped during goes on, a runaway loop still ends', { skip: !fs.existsSync('/proc/thread-self/schedstat') && 'no per-thread CPU clock here' }, async () => {
  // In a child process, stopped (SIGSTOP) for 1.5 s from within a call with a 1 s budget, once the call
  // has run long enough to be stoppable (ready() is called after 100,000 loop turns).
  const harness = JSON.stringify(path.join(ROOT, 'dist/test/support/lua-harness.js'));
  const fengari = JSON.stringify(path.join(ROOT, 'dist/src/lua/fengari/index.js'));
  const probe = `
    const fs = require('fs');
    const { scriptVm } = require(${harness});
    const { lua } = require(${fengari});
    const install = (vm) => {
      lua.lua_pushjsfunction(vm.L, () => { fs.writeSync(1, 'stop\\n'); return 0; });
      lua.lua_setglobal(vm.L, Buffer.from('ready'));
    };
    const { exec } = scriptVm({ callBudget: 1000, install });
    const timed = async (source) => { const t = Date.now(); const r = await exec(source); return { ...r, wallMs: Date.now() - t }; };
    (async () => {
      // About 300 ms of CPU here after ready(), sized by a first run of the loop.
      const sample = await timed('local x = 0 for i = 1, 200000 do x = x + i end return x');
      const n = Math.max(200000, Math.round(200000 * 300 / Math.max(1, sample.wallMs)));
      const honest = await timed('local x = 0 for i = 1, 100000 do x = x + i end ready() for i = 1, ' + n + ' do x = x + i end return x');
      const runaway = await timed('for i = 1, 100000 do end ready() while true do end');
      fs.writeSync(1, JSON.stringify({ honest, runaway }) + '\\n');
    })();`;
  const child = spawn(process.execPath, ['-e', probe], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let stops = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    const asked = output.split('stop\n').length - 1;
    while (stops < asked) {
      stops++;
      child.kill('SIGSTOP');
      setTimeout(() => child.kill('SIGCONT'), 1500);
    }
  });
  const bound = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await ended;
  clearTimeout(bound);
  const line = output.split('\n').find((text) => text.startsWith('{'));
  assert.ok(line, `no result: ${output} ${stderr}`);
  const { honest, runaway } = JSON.parse(line) as Record<string, { error: string | null; timedOut: boolean; wallMs: number }>;
  // Stopped midway, the honest call took longer than its budget by the wall clock, and still finished.
  assert.ok(honest.wallMs > 1000, `the honest call was not stopped midway (${honest.wallMs} ms): nothing was tested`);
  assert.equal(honest.error, null, `the honest call was stopped after ${honest.wallMs} ms: ${honest.error}`);
  assert.equal(runaway.timedOut, true);
  assert.match(runaway.error ?? '', /exceeded its budget of 1000 ms/);
  assert.ok(runaway.wallMs > 2000, `the runaway loop ran ${runaway.wallMs} ms: the 1.5 s stop was counted as its time`);
});

test('errors carry a traceback, native host errors become Lua errors', async () => {
  const { exec } = scriptVm();
  const r = await exec(`local function inner() error("boom") end inner()`);
  assert.match(r.error ?? '', /boom/);
  assert.match(r.error ?? '', /stack traceback/);
  const caught = await exec(`return pcall(error, {code = 1})`);
  assert.equal(caught.values[0], false);
});

test('suspend: a host function that waits resumes its own call only', async () => {
  const { exec } = scriptVm({
    install: (vm) => {
      lua.lua_pushjsfunction(vm.L, (L) => {
        const ms = lua.lua_tonumber(L, 1);
        return vm.suspend(L, new Promise<number>((resolve) => setTimeout(() => resolve(ms), ms)),
          (L, value) => { lua.lua_pushnumber(L, value); return 1; },
          (L, error) => { lua.lua_pushnil(L); lua.lua_pushstring(L, Buffer.from(error.message)); return 2; });
      });
      lua.lua_setglobal(vm.L, Buffer.from('sleep'));
    },
  });
  const slow = exec('return sleep(60), "slow"');
  const fast = exec('return sleep(5), "fast"');
  const order: string[] = [];
  await Promise.all([slow.then((r) => order.push(String(r.values[1]))), fast.then((r) => order.push(String(r.values[1])))]);
  assert.deepEqual(order, ['fast', 'slow']);
  const sorted = await exec('local t = {3, 1, 2} table.sort(t, function(a, b) sleep(1) return a < b end)');
  assert.match(sorted.error ?? '', /cannot wait here/);
});

test('a JS exception in a host function becomes a Lua error with its message; the stack is logged', async () => {
  const { exec, lines } = scriptVm({
    install: (vm) => {
      lua.lua_pushjsfunction(vm.L, () => {
        throw new TypeError('host bug');
      });
      lua.lua_setglobal(vm.L, Buffer.from('boom'));
    },
  });
  const r = await exec('boom()');
  assert.match(r.error ?? '', /host error: host bug/);
  const caught = await exec('return pcall(boom)');
  assert.equal(caught.values[0], false);
  assert.match(String(caught.values[1]), /host bug/);
  assert.ok(lines.some((line) => line.includes('native error in a Lua host function') && line.includes('TypeError')));
  assert.deepEqual((await exec('return "alive"')).values, ['alive']);
});

test('require is rooted at the lua/ folder that holds the entry, so examples reach lua/protocols', () => {
  const dir = luaFolder({
    'lua/protocols/text.lua': 'return { name = "text" }',
    'lua/examples/entry.lua': 'local text = require("protocols.text") function run() end name = text.name',
  });
  const vm = new LuaVM({ entry: `${dir}/lua/examples/entry.lua`, hooks: ['run'], callBudget: 100, log: memoryLogger().log });
  assert.doesNotThrow(() => vm.load());
});

test('an entry that holds more than engine.luavm.limits.maxMemory once loaded is refused at load, naming both sizes', () => {
  const dir = luaFolder({
    'entry.lua': 'big = {} for i = 1, 50000 do big[i] = string.rep("y", 20) .. i end function run() end',
    'small.lua': 'small = {} for i = 1, 100 do small[i] = i end function run() end',
  });
  const limits = { maxMemory: 4 * 2 ** 20 };
  const vm = new LuaVM({ entry: `${dir}/entry.lua`, hooks: ['run'], callBudget: 5000, log: memoryLogger().log, limits });
  assert.throws(() => vm.load(), (error: Error) => error instanceof LuaLoadError &&
    /entry\.lua holds about \d+\.\d MiB once loaded, more than engine\.luavm\.limits\.maxMemory \(4\.0 MiB\)/.test(error.message));
  const fits = new LuaVM({ entry: `${dir}/small.lua`, hooks: ['run'], callBudget: 5000, log: memoryLogger().log, limits });
  assert.doesNotThrow(() => fits.load());
});

test('string.format keeps Lua 5.1 behaviour for %d: floats truncate, big whole numbers print in full', async () => {
  const { exec } = scriptVm();
  const r = await exec(`return string.format("%d|%5d|%i|%c", 1001.9, -2.5, 3.0, 65.7),
    string.format("%d@%s", 1001, "balance"), string.format("%d", os.time() * 1000) == tostring(os.time() * 1000),
    string.format("%d ms", 1.7e12), string.format("%%d %s %x", "x", 255), string.format("%-8d|", 5e9)`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['1001|   -2|3|A', '1001@balance', true, '1700000000000 ms', '%d x ff', '5000000000|']);
  const bad = await exec('return string.format("%d", "x")');
  assert.match(bad.error ?? '', /bad argument #2 to .*\(number expected, got string\)/);
});

test('utils.prettyprint ships and makes print show tables', async () => {
  const source = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'lua/utils/prettyprint.lua'), 'utf8');
  const { exec, lines } = scriptVm({}, { 'utils/prettyprint.lua': source });
  const r = await exec(`local pp = require("utils.prettyprint")
    local t = { Method = "GET", list = { 1, 2 }, n = 3 } t.self = t
    print("headers:", t, nil, 5)
    return pp.render({ a = { b = "c" } })`);
  assert.equal(r.error, null);
  assert.equal(r.values[0], '{\n  "a" = {\n    "b" = "c"\n  }\n}');
  const printed = JSON.parse(lines.find((line) => line.includes('headers:')) ?? '{}').msg;
  assert.equal(printed, 'headers:\t{\n  "Method" = "GET",\n  "list" = {\n    [1] = 1,\n    [2] = 2\n  },\n  "n" = 3,\n  "self" = <cycle>\n}\tnil\t5');
});

test('a short call is not stopped when the process was held up elsewhere (a busy machine), only runaway Lua is', async () => {
  const { exec } = scriptVm({
    callBudget: 50,
    install: (vm) => {
      lua.lua_pushjsfunction(vm.L, (L) => {
        const until = Date.now() + lua.lua_tonumber(L, 1);
        while (Date.now() < until); // the JS side is slow, as when the OS deschedules the process
        return 0;
      });
      lua.lua_setglobal(vm.L, Buffer.from('stall'));
    },
  });
  const held = await exec('stall(120) local n = 0 for i = 1, 2000 do n = n + i end return n');
  assert.equal(held.error, null);
  assert.deepEqual(held.values, [2001000]);
  const runaway = await exec('stall(10) while true do end');
  assert.equal(runaway.timedOut, true);
});

test('hooks whose body is empty are told apart from those that do or return something', () => {
  const dir = luaFolder({
    'entry.lua': `
      function quiet(client_id, headers, server)
        --print(headers)
      end
      function bare() return end
      function busy(n) calls = (calls or 0) + n end
      function echo(a) return a end
      function answer() return 0 end`,
  });
  const hooks = ['quiet', 'bare', 'busy', 'echo', 'answer'];
  const vm = new LuaVM<object>({ entry: `${dir}/entry.lua`, hooks, callBudget: 100, log: memoryLogger().log });
  vm.load();
  assert.deepEqual(hooks.filter((hook) => vm.isEmptyHook(hook)), ['quiet', 'bare']);
});


test('strings with bytes below 0x10 are distinct table keys and compare by their bytes (fengari alone gets both wrong)', async () => {
  const { exec } = scriptVm();
  const r = await exec(`
    local t = { ["\\1\\35"] = "one-35", ["\\n1"] = "newline-1" }
    local sorted = { "\\16", "\\1\\0", "b", "\\255", "a" }
    table.sort(sorted)
    local bytes = {}
    for _, s in ipairs(sorted) do bytes[#bytes + 1] = table.concat({ string.byte(s, 1, -1) }, ".") end
    return tostring(t["\\18\\3"]), tostring(t["\\163\\1"]), t["\\1\\35"], "\\1\\0" == "\\16", "\\1\\0" < "\\16",
      table.concat(bytes, " "), "\\227\\129" < "\\227\\130", "abc" < "abd", "ab" < "abc"`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['nil', 'nil', 'one-35', false, true, '1.0 16 97 98 255', true, true, true]);
});

test('fengari loads before or after connmix-ts alike: ours has its fixes, the application\'s own fengari stays as published', () => {
  const host = JSON.stringify(path.join(ROOT, 'dist/src/lua/fengari/index.js'));
  // Runs a chunk on our fengari, and asks the application's own fengari how it keys "\1\35" (its "|123").
  const probe = `
    const { lua, lauxlib, lualib, K } = require(${host});
    const L = lauxlib.luaL_newstate();
    lualib.luaL_openlibs(L);
    lauxlib.luaL_loadbufferx(L, K('local t = { ["\\1\\35"] = 1 } return tostring(t["\\18\\3"]) .. " " .. tostring(100001 * 1.0)'), null, K('=probe'), null);
    lua.lua_call(L, 0, 1);
    const ours = lua.lua_tojsstring(L, -1);
    const theirs = require('fengari/src/lstring.js').luaS_hash(new Uint8Array([1, 35]));
    console.log(JSON.stringify({ ours, theirs, conf: process.env.FENGARICONF ?? null }));`;
  for (const order of [`require('fengari'); ${probe}`, `${probe}; require('fengari')`]) {
    const run = spawnSync(process.execPath, ['-e', order], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { ours: 'nil 100001', theirs: '|123', conf: null });
  }
});

test('hook calls reuse the coroutines of finished calls, each starting clean; failed or deep ones are not reused', async () => {
  const { exec } = scriptVm();
  const run = async (source: string) => {
    const r = await exec(source);
    assert.equal(r.error, null, r.error ?? '');
    return r.values;
  };
  await run('first = coroutine.running() leftover = "x"');
  // The same coroutine serves the next call: running there, its stack holding only the new call.
  assert.deepEqual(await run('local co = coroutine.running() return co == first, coroutine.status(first), select("#", ...), coroutine.resume(first)'),
    [true, 'running', 0, false, 'cannot resume non-suspended coroutine']);
  const failed = await exec('failing = coroutine.running() error("boom")');
  assert.match(failed.error ?? '', /boom/);
  assert.deepEqual(await run('return coroutine.running() == failing, coroutine.status(failing)'), [false, 'dead']);
  await run('deep = coroutine.running() local function down(n) if n > 0 then return 1 + down(n - 1) end return 0 end down(3000)');
  assert.deepEqual(await run('return coroutine.running() == deep'), [false]);
});
