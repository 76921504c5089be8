import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { lua, lauxlib, lualib, K } from '../../src/lua/fengari/index';
import { SOURCE_PATCHES, RUNTIME_PATCHES } from '../../src/lua/fengari/patches';
import { ROOT } from '../support/helpers';

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

test('every source patch names its reason, its test, and fits the installed fengari exactly', () => {
  const dir = path.dirname(require.resolve('fengari'));
  for (const patch of SOURCE_PATCHES) {
    assert.ok(patch.reason.length > 20 && patch.test.includes('.test.ts: '), patch.name);
    for (const [file, expected] of Object.entries(patch.files)) {
      const found = fs.readFileSync(path.join(dir, file), 'utf8').match(patch.find)?.length ?? 0;
      assert.equal(found, expected, `${patch.name} in ${file}`);
    }
  }
});

test('every runtime patch points at its code in src/lua/fengari/ and at a test that exists', () => {
  for (const patch of RUNTIME_PATCHES) {
    const [file, name] = patch.where.split(' ');
    assert.match(file, /^src\/lua\/fengari\/[\w-]+\.ts$/, patch.name);
    const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
    if (!name.startsWith('(')) assert.match(source, new RegExp(`export function ${name}\\b`), `${patch.name}: ${name} in ${file}`);
    const [suite, title] = patch.test.split('.test.ts: ');
    assert.ok(fs.readFileSync(path.join(ROOT, `${suite}.test.ts`), 'utf8').includes(`test('${title}'`), `${patch.name}: ${patch.test}`);
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
