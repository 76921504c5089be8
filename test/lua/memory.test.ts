import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { scriptVm } from '../support/lua-harness';
import { estimateStateBytes } from '../../src/lua/fengari/memory';

/** The estimate behind engine.luavm.limits.maxMemory: what a script keeps is counted wherever it hides, once. */
test('estimateStateBytes counts what the state can reach, once, wherever a script keeps it', async () => {
  const { exec, vm } = scriptVm({ callBudget: 60_000 });
  const grows = async (source: string) => {
    const before = estimateStateBytes(vm.L);
    const r = await exec(source);
    assert.equal(r.error, null, r.error ?? '');
    return estimateStateBytes(vm.L) - before;
  };
  const MIB = 2 ** 20;
  const global = await grows('t = {} for i = 1, 20000 do t[i] = string.rep("x", 100) .. i end');
  // 20,000 entries of about 100-byte strings: a few MiB, whatever the exact per-object sizes.
  assert.ok(global > 2 * MIB && global < 12 * MIB, `a global table: ${global} bytes`);
  assert.ok(await grows('alias = t; again = { t = t }') < 4096, 'a table reached twice counts once');
  const same = 'local s = string.rep("y", 2^20) shared = {} for i = 1, 1000 do shared[i] = s end';
  const strings = await grows(same);
  assert.ok(strings > MIB && strings < 2 * MIB, `one string referenced 1000 times counts once: ${strings}`);
  for (const [name, source] of Object.entries({
    'an upvalue': 'local big = {} for i = 1, 20000 do big[i] = string.rep("u", 100) .. i end function keeper() return big end',
    'a suspended coroutine': 'co = coroutine.create(function() local big = {} for i = 1, 20000 do big[i] = string.rep("c", 100) .. i end coroutine.yield() end) coroutine.resume(co)',
    'a metatable': 'm = setmetatable({}, { __index = (function() local big = {} for i = 1, 20000 do big[i] = string.rep("m", 100) .. i end return big end)() })',
    'a table key': 'k = { [(function() local big = {} for i = 1, 20000 do big[i] = string.rep("k", 100) .. i end return big end)()] = true }',
  })) {
    const hidden = await grows(source);
    assert.ok(hidden > 2 * MIB, `a table kept in ${name}: ${hidden} bytes`);
  }
  assert.ok(await grows('t = nil alias = nil again = nil') < -2 * MIB, 'what is dropped is no longer counted');
});
