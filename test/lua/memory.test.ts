import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

/** Runs a full garbage collection (what --expose-gc offers, without the flag on the test command). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

test('estimateStateBytes is close to the heap a script keeps: 100,000 of each common value, once collected', async () => {
  const shapes: Record<string, string> = {
    'empty tables': 'G[i] = {}',
    'small arrays': 'G[i] = { i, "k" .. i }',
    'records': 'G[i] = { a = i, b = i }',
    'short strings': 'G[i] = "k" .. i',
    'string keys': 'G["k" .. i] = true',
    'closures': 'local x = i G[i] = function() return x end',
  };
  for (const [name, body] of Object.entries(shapes)) {
    const { exec, vm } = scriptVm({ callBudget: 60_000 });
    await exec(`G = {} for i = 1, 10 do ${body} end`);
    collectGarbage();
    const [heap, estimate] = [process.memoryUsage().heapUsed, estimateStateBytes(vm.L)];
    const r = await exec(`for i = 11, 100010 do ${body} end`);
    assert.equal(r.error, null, r.error ?? '');
    collectGarbage();
    const kept = process.memoryUsage().heapUsed - heap;
    const counted = estimateStateBytes(vm.L) - estimate;
    // The first sizes counted half to two thirds of what V8 held: a 256 MiB budget let the state keep 400 MiB.
    assert.ok(counted > 0.8 * kept && counted < 1.5 * kept, `${name}: the heap kept ${kept} bytes, the estimate counts ${counted}`);
    await exec('G = nil');
  }
});
