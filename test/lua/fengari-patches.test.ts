import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { lua, lauxlib, lualib, K, checkJsString, luaToJsString, type LuaState } from '../../src/lua/fengari/index';
import { SOURCE_PATCHES, RUNTIME_PATCHES } from '../../src/lua/fengari/patches';
import { patchSource } from '../../src/lua/fengari/load';
import { ROOT } from '../support/helpers';
import { scriptVm } from '../support/lua-harness';

test('popped stack slots are stored as undefined, not deleted (stack pops are stores)', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const chunk = 'local function f(a, b) return a .. b, select("#", a, b) end for i = 1, 50 do f("x", i) end return f("a", "b")';
  assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=pops'), K('t')), lua.LUA_OK);
  lua.lua_call(L, 0, lua.LUA_MULTRET);
  const thread = L as unknown as { stack: unknown[]; top: number };
  // Slots above the top were used by the calls and popped: deleted, they would no longer be keys.
  const kept = Object.keys(thread.stack).map(Number);
  assert.deepEqual(kept, kept.map((_slot, index) => index), 'the used slots stay one run from 0');
  assert.ok(kept.length > thread.top + 5, `slots above the top of ${thread.top} were deleted: ${kept.length} kept`);
  lua.lua_settop(L, 0);
});

test('a table gets its dead-key map only when a key is removed, and pairs() still survives removals (dead-key maps on demand)', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const chunk = `
    local t = {}
    for i = 1, 20 do t["k" .. i] = i end
    local fresh = t
    local seen, sum = 0, 0
    for k, v in pairs(t) do t[k] = nil seen = seen + 1 sum = sum + v end
    return fresh, seen, sum, next(t) == nil`;
  assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=dead'), K('t')), lua.LUA_OK);
  lua.lua_newtable(L);
  const untouched = lua.lua_topointer(L, -1) as { dead_strong?: Map<unknown, unknown> };
  lua.lua_pop(L, 1);
  assert.equal(untouched.dead_strong, undefined, 'a new table holds no dead-key map');
  lua.lua_call(L, 0, 4);
  const emptied = lua.lua_topointer(L, 1) as { dead_strong?: Map<unknown, unknown> };
  assert.ok(emptied.dead_strong instanceof Map, 'removals made one');
  assert.deepEqual([lua.lua_tonumber(L, 2), lua.lua_tonumber(L, 3), lua.lua_toboolean(L, 4)], [20, 210, true]);
});

test('a key removed and set again thousands of times leaves one tombstone, and get, pairs, next and # see the table as before (removed keys leave tombstones)', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const chunk = `
    local t, seq = {}, {}
    for i = 1, 5000 do t["user:" .. i] = i seq[i] = i end
    for k = 1, 3000 do t["user:7"] = nil t["user:7"] = 7 end
    t["user:9"] = nil
    for i = 5000, 4001, -1 do seq[i] = nil end
    local count, sum = 0, 0
    for k, v in pairs(t) do count = count + 1 sum = sum + v end
    local flapped, gone, length = t["user:7"], t["user:9"], #seq
    local cleared = 0
    for k in pairs(seq) do seq[k] = nil cleared = cleared + 1 end
    return t, count, sum, flapped, gone == nil, length, cleared, next(seq) == nil, #seq + #t`;
  assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=tombstones'), K('t')), lua.LUA_OK);
  lua.lua_call(L, 0, 9);
  const table = lua.lua_topointer(L, 1) as { strong: Map<unknown, unknown>; tombstones: number };
  assert.equal(table.tombstones, 1, 'user:9 only: user:7 was set again in place every time');
  assert.equal(table.strong.size, 5000, 'one Map entry per key ever set: 4,999 live and one tombstone');
  assert.deepEqual(
    [2, 3, 4, 5, 6, 7, 8, 9].map((index) => (index === 5 || index === 8 ? lua.lua_toboolean(L, index) : lua.lua_tonumber(L, index))),
    [4999, (5000 * 5001) / 2 - 9, 7, true, 4000, 4000, true, 0],
  );
});

type Fengari = { lua: typeof lua; lauxlib: typeof lauxlib; lualib: typeof lualib };

/**
 * Runs `chunk` in a fresh state of `fengari` (ours unless given) with the standard libraries and `probe`
 * as a global; returns the state and the chunk's results as strings.
 */
function runChunk(chunk: string, probe: (L: unknown) => number = () => 0, fengari: Fengari = { lua, lauxlib, lualib }): { L: unknown; results: string[] } {
  const { lua: api, lauxlib: aux, lualib: libs } = fengari;
  const L = aux.luaL_newstate();
  libs.luaL_openlibs(L);
  api.lua_pushjsfunction(L, probe as never);
  api.lua_setglobal(L, K('probe'));
  const loaded = aux.luaL_loadbufferx(L, K(chunk), null, K('=chunk'), K('t'));
  assert.equal(loaded, api.LUA_OK, loaded === api.LUA_OK ? '' : Buffer.from(aux.luaL_tolstring(L, -1)).toString());
  const status = api.lua_pcall(L, 0, api.LUA_MULTRET, 0);
  const results: string[] = [];
  for (let i = 1, n = api.lua_gettop(L); i <= n; i++) results.push(Buffer.from(aux.luaL_tolstring(L, i)).toString());
  assert.equal(status, api.LUA_OK, results.join(' '));
  return { L, results };
}

/** Fengari as published, without any of our patches. */
const PUBLISHED = createRequire(__filename)('fengari') as Fengari;

/** Closures over locals, with host calls between their creation and their use: what a reused slot must not break. */
const CLOSURE_CHUNK = `
  local function counter()
    local n = 0
    return function() n = n + 1 return n end
  end
  local a, b = counter(), counter()
  a() a() b()
  local fs = {}
  for i = 1, 5 do
    local sq = i * i
    fs[i] = function() return i .. ":" .. sq end
    tostring(i) type(sq) select("#", i, sq)
  end
  local escaped
  local ok = pcall(function()
    local kept = "kept"
    escaped = function() return kept end
    error("boom")
  end)
  local co = coroutine.wrap(function(x)
    local acc = x
    local add = function(y) acc = acc + y return acc end
    while true do x = coroutine.yield(add(x)) end
  end)
  co(1) co(2)
  local shared
  do
    local v = 10
    shared = { get = function() return v end, set = function(x) v = x end }
  end
  shared.set(11)
  for _ = 1, 20 do string.rep("x", 3) math.max(1, 2) end
  local function tail(n, f) if n == 0 then return f end return tail(n - 1, f) end
  local t = tail(50, function() return "tail" end)
  local list = {}
  for i = 1, 5 do list[#list + 1] = fs[i]() end
  return a(), b(), table.concat(list, ","), tostring(ok), escaped(), co(3), shared.get(), t()`;

const CLOSURE_RESULTS = ['3', '2', '1:1,2:4,3:9,4:16,5:25', 'false', 'kept', '7', '11', 'tail'];

test('stack slots above the top are reused in place, and closures keep their upvalues (stack slots reused)', () => {
  const slots: Array<Array<{ type: number } | undefined>> = [];
  const types: Array<Array<number | undefined>> = [];
  const { L, results } = runChunk('for i = 1, 3 do probe() end ' + CLOSURE_CHUNK, (state) => {
    const thread = state as { stack: Array<{ type: number } | undefined>; top: number };
    const above = thread.stack.slice(thread.top, thread.top + 4);
    slots.push(above);
    types.push(above.map((slot) => slot?.type));
    return 0;
  });
  assert.deepEqual(results, CLOSURE_RESULTS);
  assert.deepEqual(runChunk(CLOSURE_CHUNK, () => 0, PUBLISHED).results, CLOSURE_RESULTS, 'as fengari as published gives');
  // Each probe() call finds the slots the previous one left above the top: the same objects, set to nil.
  assert.deepEqual(types, [0, 1, 2].map(() => [lua.LUA_TNIL, lua.LUA_TNIL, lua.LUA_TNIL, lua.LUA_TNIL]), 'slots above the top are kept, as nil');
  slots[1].forEach((slot, i) => assert.equal(slot, slots[0][i], `slot ${i} above the top is the same object`));
  lua.lua_settop(L as never, 0);
});

test('a call at the same depth reuses the returned frame, and coroutines, pcall and tail calls still unwind right (call frames reused)', () => {
  const chunk = `
    probe() probe()
    local function deep(n) if n == 0 then return debug.traceback("here", 1) end local trace = deep(n - 1) return trace end
    local trace = deep(30)
    local ok, err = pcall(function() local x = nil; return x.y end)
    local co = coroutine.create(function() probe() coroutine.yield(1) return pcall(error, "inner") end)
    coroutine.resume(co)
    local _, ok2, err2 = coroutine.resume(co)
    probe()
    ${CLOSURE_CHUNK.replace('return a(),', 'local r = { a(),')} }
    return trace, tostring(ok), err, tostring(ok2), err2, table.concat(r, " ")`;
  const frames: unknown[] = [];
  const { L, results } = runChunk(chunk, (state) => {
    frames.push((state as { ci: unknown }).ci);
    return 0;
  });
  assert.equal(frames[1], frames[0], 'the second call at the depth runs in the first one\'s frame');
  assert.equal(frames[3], frames[0], 'and so does a later one, after deep recursion, errors and a coroutine');
  assert.notEqual(frames[2], frames[0], 'a coroutine has frames of its own');
  assert.deepEqual(results, runChunk(chunk, () => 0, PUBLISHED).results, 'the same results as fengari as published');
  assert.equal(results[5], CLOSURE_RESULTS.join(' '));
  lua.lua_settop(L as never, 0);
});

test('a K() name is one Lua string, however often the host passes it (interned names)', () => {
  const L = lauxlib.luaL_newstate();
  const thread = L as unknown as { stack: Array<{ value: { hash: string | null } }>; top: number };
  const pushed = (name: Uint8Array) => {
    lua.lua_pushstring(L, name);
    return thread.stack[thread.top - 1].value;
  };
  const name = K('interned-name-test');
  const first = pushed(name);
  assert.equal(pushed(name), first, 'the same Lua string object');
  assert.notEqual(first.hash, null, 'its table key is built once, when interned');
  const copy = Buffer.from('interned-name-test');
  assert.notEqual(pushed(copy), first, 'other arrays with the same bytes are copied as before');
  lua.lua_settop(L, 0);
});

test('short strings with the same bytes are one Lua string, whoever makes them, and never another string (shared short strings)', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const thread = L as unknown as { stack: Array<{ value: { realstring: Uint8Array } }>; top: number };
  const pushed = (bytes: Uint8Array) => {
    lua.lua_pushstring(L, bytes);
    const ts = thread.stack[thread.top - 1].value;
    lua.lua_pop(L, 1);
    return ts;
  };
  const op = pushed(Buffer.from('op'));
  assert.equal(pushed(Buffer.from('op')), op, 'a second array with the same short bytes gives the same string');
  // A script's concatenation and a host push meet in one string too.
  assert.equal(lauxlib.luaL_loadbufferx(L, K('return "o" .. string.char(112)'), null, K('=concat'), K('t')), lua.LUA_OK);
  lua.lua_call(L, 0, 1);
  assert.equal(thread.stack[thread.top - 1].value, op, 'a concatenation of the same bytes is that string');
  lua.lua_pop(L, 1);
  const long = Buffer.alloc(41, 0x61);
  assert.notEqual(pushed(long), pushed(Buffer.from(long)), 'past 40 bytes each push is a string of its own');
  // However the table's slots collide, a string always has the bytes asked for.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 20_000; i++) {
      const text = `k${(i * 7919) % 20_000}`;
      assert.equal(Buffer.from(pushed(Buffer.from(text)).realstring).toString(), text);
    }
  }
  lua.lua_settop(L, 0);
});

test('pcall of an error inside a coroutine keeps the budget hook (pcall escape)', () => {
  // In a child process: without the fix the loop never ends, and a synchronous loop cannot be timed out in-process.
  const harness = JSON.stringify(path.join(ROOT, 'dist/test/support/lua-harness.js'));
  const probe = `
    const { scriptVm } = require(${harness});
    const { exec, vm } = scriptVm({ callBudget: 50 });
    (async () => {
      const r = await exec('local co = coroutine.wrap(function() while true do pcall(error) end end) co()');
      const after = await exec('return 1 + 1');
      console.log(JSON.stringify({ timedOut: r.timedOut, error: r.error, after: after.values, height: vm.stackHeight() }));
    })();`;
  const run = spawnSync(process.execPath, ['-e', probe], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, `the loop was not stopped: ${run.error?.message ?? run.stderr}`);
  const result = JSON.parse(run.stdout) as { timedOut: boolean; error: string; after: number[]; height: number };
  assert.equal(result.timedOut, true);
  assert.match(result.error, /exceeded its budget of 50 ms/);
  assert.deepEqual({ after: result.after, height: result.height }, { after: [2], height: 0 });
});

test('integer arithmetic past 32 bits gives the float64 results gopher-lua gives (integer results past 32 bits become floats)', async () => {
  // A loop of 70,000 additions: a budget a busy machine cannot run out of.
  const { exec } = scriptVm({ callBudget: 10_000 });
  const r = await exec(`
    local a, b, max = 100000, 46341, 2147483647
    local sum = 0 for i = 1, 70000 do sum = sum + i end
    local steps = 0 for i = 2147483640, 2147483650, 5 do steps = steps + 1 end
    local last for i = 2147483645, max, 5 do last = i end
    return 100000 * 100000, a * a, b * b, max + 1, -max - 2, -(-max - 1), sum, steps, last, 0xffffffff,
      tonumber("ffffffff", 16), tostring(tonumber("19", 8)), tonumber("17", 8), a % 0 ~= a % 0,
      math.type(3 * 4), math.type(a * a), 7 % -3, -7 % 3`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, [1e10, 1e10, 2147488281, 2147483648, -2147483649, 2147483648, 2450035000, 3, 2147483645,
    4294967295, 4294967295, 'nil', 15, true, 'integer', 'float', -2, 2]);
});

test('library functions truncate a float where they take an integer, as gopher-lua does (integer arguments truncate floats)', async () => {
  const { exec } = scriptVm();
  const r = await exec(`local t = {1, 2, 3} table.insert(t, 1.5, "x")
    return string.sub("hello", 1, 5 / 2), string.sub("abcdef", -2.5), string.rep("ab", 2.5), string.byte("abc", 1.5),
      select(2.5, "a", "b"), table.concat(t, ","), table.concat({1, 2, 3}, ",", 1.5, 2.5), ("x"):rep(3.9),
      string.sub("abc", 1, 1e10), string.find("hello", "l", 2.5), pcall(string.rep, {}, 1)`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['he', 'ef', 'abab', 97, 'b', 'x,1,2,3', '1,2', 'xxx', 'abc', 3, false,
    "bad argument #1 to 'string.rep' (string expected, got table)"]);
});

test('gsub and gmatch take an empty match right after a match, as Lua 5.1 and gopher-lua do (empty matches after a match count, as in Lua 5.1)', async () => {
  const { exec } = scriptVm();
  // The expected values are what gopher-lua v1.1.1 answered.
  const r = await exec(`local items = {} for m in string.gmatch("abc", "b*") do items[#items + 1] = "[" .. m .. "]" end
    local a, n = string.gsub("a b  c", "%s*", "_")
    local b, m = string.gsub("abc", "%w*", "<%0>")
    return string.gsub("abc", "b*", "-"), table.concat(items), a, n, b, m, (string.gsub("a,b,,c", ",", ";"))`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['-a--c-', '[][b][][]', '_a__b__c_', 6, '<abc><>', 2, 'a;b;;c']);
});

test('numbers print in full, as gopher-lua prints them (numbers print as gopher-lua prints them)', async () => {
  const { exec } = scriptVm();
  const r = await exec(`local zero = 0
    return tostring(123456789012345), tostring(2^53), "id:" .. 2^53 + 2, tostring(-2^63), tostring(2^63), tostring(0.1),
      tostring(1/3), tostring(1234567.5), tostring(0.00001), tostring(0.0001), tostring(1e100), tostring(1/zero),
      tostring(-1/zero), tostring(zero/zero), tostring(-zero), tostring(3.0), string.format("%s", 100000 * 100000)`);
  assert.equal(r.error, null);
  assert.deepEqual(r.values, ['123456789012345', '9007199254740992', 'id:9007199254740994', '-9223372036854775808',
    '9.223372036854776e+18', '0.1', '0.3333333333333333', '1.2345675e+06', '1e-05', '0.0001', '1e+100', '+Inf', '-Inf',
    'NaN', '0', '3', '10000000000']);
});

/** The test a patch names, `<suite>.test.ts: <title>`, is in that file; `patch` names the patch in the message. */
function assertTestExists(named: string, patch: string): void {
  const [suite, title] = named.split('.test.ts: ');
  assert.ok(fs.readFileSync(path.join(ROOT, `${suite}.test.ts`), 'utf8').includes(`test('${title}'`), `${patch}: ${named}`);
}

test('every source patch names its reason, its test, and fits the installed fengari exactly', () => {
  const dir = path.dirname(require.resolve('fengari'));
  for (const patch of SOURCE_PATCHES) {
    assert.ok(patch.reason.length > 20 && patch.test.includes('.test.ts: '), patch.name);
    assertTestExists(patch.test, patch.name);
  }
  // Patches apply in order, each to what the ones before it left; patchSource throws on any miscount.
  const files = new Set(SOURCE_PATCHES.flatMap((patch) => Object.keys(patch.files)));
  for (const file of files) patchSource(file, fs.readFileSync(path.join(dir, file), 'utf8'));
});

test('every runtime patch points at its code in src/lua/fengari/ and at a test that exists', () => {
  for (const patch of RUNTIME_PATCHES) {
    const [file, name] = patch.where.split(' ');
    assert.match(file, /^src\/lua\/fengari\/[\w-]+\.ts$/, patch.name);
    const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
    if (!name.startsWith('(')) assert.match(source, new RegExp(`export function ${name}\\b`), `${patch.name}: ${name} in ${file}`);
    assertTestExists(patch.test, patch.name);
  }
});

test('nothing in src/ outside src/lua/fengari/ requires or imports fengari', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (full !== path.join(ROOT, 'src', 'lua', 'fengari')) walk(full);
      } else if (/\.[cm]?[jt]s$/.test(entry.name)) {
        const text = fs.readFileSync(full, 'utf8');
        if (/(require\s*\(|import\s*\(|from\s+|import\s+)\s*['"`]fengari(\/|['"`])/.test(text)) offenders.push(path.relative(ROOT, full));
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  assert.deepEqual(offenders, []);
});

test('checkJsString reads a string argument as luaL_checklstring and luaToJsString do, a short one decoded once for all its uses', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const seen: string[] = [];
  lua.lua_pushjsfunction(L, (state: LuaState) => {
    seen.push(checkJsString(state, 1));
    return 0;
  });
  lua.lua_setglobal(L, K('f'));
  const chunk = `local s = "video:" .. 7 f(s) f("video:7") f(12) f(1.5) f("\\255x") f(string.rep("é", 30))
    return pcall(f, {})`;
  assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=decode'), K('t')), lua.LUA_OK);
  lua.lua_call(L, 0, 2);
  assert.deepEqual(seen, ['video:7', 'video:7', '12', '1.5', '\uFFFDx', 'é'.repeat(30)]);
  assert.equal(lua.lua_toboolean(L, 1), false);
  assert.match(luaToJsString(lua.lua_tolstring(L, 2)!), /bad argument #1 .*string expected, got table/);
  // "video:7", made twice, is one shared short string, which kept the text decoded at its first use.
  lua.lua_settop(L, 0);
  lua.lua_pushstring(L, Buffer.from('video:7'));
  const thread = L as unknown as { stack: Array<{ value: { js: string | null } }>; top: number };
  assert.equal(thread.stack[thread.top - 1].value.js, 'video:7');
  lua.lua_settop(L, 0);
});

test('short concatenations are built in one scratch array and give strings of their own bytes (short concatenations in place)', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const run = (chunk: string): string => {
    assert.equal(lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=concat'), K('t')), lua.LUA_OK);
    lua.lua_call(L, 0, 1);
    const result = luaToJsString(lua.lua_tolstring(L, -1)!);
    lua.lua_settop(L, 0);
    return result;
  };
  // Each new result is a string of its own: building the next one in the scratch array changes none before it.
  assert.equal(run(`local made = {} for i = 1, 200 do made[i] = "k" .. i .. ":" .. string.rep("x", i % 9) end
    local long = string.rep("y", 30) .. string.rep("z", 30)
    for i = 1, 200 do if made[i] ~= string.format("k%d:%s", i, string.rep("x", i % 9)) then return "changed: " .. made[i] end end
    return #long .. long:sub(30, 31)`), '60yz');
  // A result already shared is found without allocating its bytes.
  assert.equal(run('shared = "video:" .. "7" return shared'), 'video:7');
  const counted = globalThis.Uint8Array;
  let made = 0;
  globalThis.Uint8Array = new Proxy(counted, {
    construct(target, args) {
      made++;
      return Reflect.construct(target, args) as object;
    },
  });
  try {
    assert.equal(run('local a, b, s = "video:", "7" for i = 1, 100 do s = a .. b end return s'), 'video:7');
  } finally {
    globalThis.Uint8Array = counted;
  }
  assert.ok(made < 10, `100 concatenations of a shared result made ${made} byte arrays`);
});

test('a value popped by the C API leaves its slot in place, set to nil (popped slots kept)', () => {
  const L = lauxlib.luaL_newstate();
  const thread = L as unknown as { stack: Array<{ type: number; value: unknown } | undefined>; top: number };
  lua.lua_newtable(L);
  lua.lua_pushstring(L, K('value'));
  const slot = thread.stack[thread.top - 1];
  lua.lua_setfield(L, -2, K('key'));
  // The pop left the same object, now nil, for the next frame to fill.
  assert.equal(thread.stack[thread.top], slot);
  assert.equal(slot?.type, lua.LUA_TNIL);
  lua.lua_pushinteger(L, 7);
  lua.lua_rawseti(L, -2, 1);
  assert.equal(thread.stack[thread.top]?.type, lua.LUA_TNIL);
  lua.lua_getfield(L, -1, K('key'));
  lua.lua_rawgeti(L, -2, 1);
  assert.deepEqual([luaToJsString(lua.lua_tolstring(L, -2)!), lua.lua_tointeger(L, -1)], ['value', 7]);
  lua.lua_settop(L, 0);
});
