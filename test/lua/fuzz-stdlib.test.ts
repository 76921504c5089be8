import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { scriptVm } from '../support/lua-harness';
import { SEED, prng, type Rng } from '../support/fuzz';

/**
 * Random argument lists for the standard library scripts see (base, string, table, math, os,
 * coroutine, utf8, bit), ten calls per script, each under pcall. A call may return anything or raise
 * a Lua error; a JS exception inside the library (Fengari's or ours) is a bug, whatever the arguments:
 * `string.char(256)` once died in Fengari's own argument check, and `string.format("%")` named an
 * `undefined` option. Deterministic: FUZZ_SEED or a fixed default, named in every failure.
 */

const VALUES = [
  'nil', 'true', 'false', '0', '-0.0', '1', '-1', '2', '3', '7', '-3', '3.5', '255', '256', '-129', '2^31', '-2^31',
  '2^53', '2^63', '-2^63', '1e308', '-1e308', '0/0', '1/0', '-1/0', 'math.pi', '0x7fffffff', '100001', '2^31-1',
  '""', '"abc"', '"\\0\\1\\2\\255"', '"é€😀"', '"\\xed\\xa0\\x80\\xff"', '"10"', '"0x10"', '" 12 "', '"1e5"', '"z"',
  // format strings, complete and cut short
  '"%s%d%%%"', '"%"', '"a%"', '"%5"', '"%-"', '"%."', '"%5.2f"', '"%-99d"', '"%99.99f"', '"%q"', '"%x"', '"%#x"',
  '"%c"', '"%5c"', '"%a"', '"%i"', '"%g"', '"%+d"', '"% d"', '"%.3q"', '"%10.3s"',
  // patterns, valid and broken
  '"(a*)"', '"%b()"', '"%f[%w]"', '"[^%]"', '"[a-"', '"(()"', '"%1"', '"(.-)%1"', '"^(.-)$"', '"[%a-z]"', '"%g+"',
  '"a?b*c+d-"', '"(%d+)-(%d+)"', '"[]]"', '"%w+"',
  'BIG', 'BIN', 'RAND',
  '{}', '{1, 2, 3}', '{"a", "b", "c"}', '{a = 1}', '{1, nil, 3}', '{3, 1, 2}', '{1, "a"}', '{0/0, 1}', 'WIDE', 'CYCLE',
  'setmetatable({}, {__index = function() error("trap") end})', 'setmetatable({}, {__len = function() return -1 end})',
  'setmetatable({}, {__len = function() return 2^40 end})', 'setmetatable({}, {__lt = function() error("lt") end})',
  'setmetatable({}, {__tostring = function() return {} end})', 'setmetatable({}, {__newindex = function() error("ni") end})',
  'setmetatable({}, {__call = function() return 1 end})', 'setmetatable({}, {__eq = function() return true end})',
  'print', 'function() end', 'function() error("boom") end', 'function(a, b) return a < b end',
  'function(a, b) return true end', 'CO', 'coroutine.running()', 'string', '_G',
];

const FUNCTIONS = [
  'string.byte', 'string.char', 'string.find', 'string.format', 'string.gmatch', 'string.gsub', 'string.len',
  'string.lower', 'string.match', 'string.rep', 'string.reverse', 'string.sub', 'string.upper', 'string.pack',
  'string.unpack', 'string.packsize', 'string.gfind',
  'table.concat', 'table.insert', 'table.remove', 'table.sort', 'table.unpack', 'table.pack', 'table.move', 'table.getn',
  'table.maxn',
  'math.abs', 'math.ceil', 'math.floor', 'math.fmod', 'math.log', 'math.max', 'math.min', 'math.modf', 'math.random',
  'math.sqrt', 'math.tointeger', 'math.type', 'math.ult', 'math.pow', 'math.mod', 'math.atan2', 'math.cosh',
  'math.frexp', 'math.ldexp', 'math.log10',
  'os.time', 'os.date', 'os.clock', 'os.difftime',
  'coroutine.create', 'coroutine.resume', 'coroutine.status', 'coroutine.wrap', 'coroutine.isyieldable',
  'coroutine.running',
  'utf8.char', 'utf8.codepoint', 'utf8.codes', 'utf8.len', 'utf8.offset',
  'select', 'tonumber', 'tostring', 'type', 'next', 'pairs', 'ipairs', 'rawequal', 'rawget', 'rawlen', 'rawset',
  'setmetatable', 'getmetatable', 'unpack', 'pcall', 'xpcall', 'error', 'assert', 'load', 'loadstring',
  'bit.band', 'bit.bor', 'bit.bxor', 'bit.bnot', 'bit.lshift', 'bit.rshift', 'bit.arshift', 'bit.tohex',
];

// Each result a function returns is called twice when it is a function (iterators, wrapped coroutines).
const PRELUDE = `
local BIG = string.rep("x", 2^18)
local BIN = "" for i = 0, 255 do BIN = BIN .. string.char(i) end
local RAND = "" for i = 1, 20 do RAND = RAND .. string.char(math.random(0, 255)) end
local WIDE = {} for i = 1, 3000 do WIDE[i] = "item" .. i end
local CYCLE = {} CYCLE[1] = CYCLE
local CO = coroutine.create(print)
local bit = require("bit")
local libraries = { bit = bit }
local results = {}
local function resolve(name)
  local library, field = name:match("^(%w+)%.(%w+)$")
  if library == nil then return _G[name] end
  return (libraries[library] or _G[library])[field]
end
local function try(name, ...)
  local packed = table.pack(pcall(resolve(name), ...))
  if not packed[1] then
    local e = packed[2]
    results[#results + 1] = name .. " err " .. (type(e) == "string" and e:sub(1, 200):gsub("\\n", " ") or type(e))
    return
  end
  local kinds = {}
  for i = 2, packed.n do
    local v = packed[i]
    if type(v) == "function" and name ~= "load" and name ~= "loadstring" then
      kinds[#kinds + 1] = tostring(pcall(v)) .. "," .. tostring(pcall(v))
    end
    kinds[#kinds + 1] = type(v)
  end
  results[#results + 1] = name .. " ok " .. table.concat(kinds, ",")
end
`;

function call(rng: Rng, fn: string): string {
  const args = Array.from({ length: rng.int(5) }, () => rng.pick(VALUES));
  return `try(${JSON.stringify(fn)}${args.map((arg) => `, ${arg}`).join('')})`;
}

test('the standard library survives random arguments: Lua errors only, never a JS exception', async (t) => {
  const rng = prng(SEED);
  const { exec, lines } = scriptVm({ callBudget: 5000 });
  const seen = new Map<string, { ok: number; err: number }>();
  const scripts = 160;
  for (let s = 0; s < scripts; s++) {
    // Every function comes up in turn; the arguments are random.
    const calls = Array.from({ length: 10 }, (_, c) => call(rng, FUNCTIONS[(s * 10 + c) % FUNCTIONS.length]));
    const label = `seed=${SEED} script=${s}`;
    const r = await exec(`${PRELUDE}\n${calls.join('\n')}\nreturn table.concat(results, "\\n")`);
    assert.equal(r.error, null, `${label}: ${r.error}\n${calls.join('\n')}`);
    const results = String(r.values[0]).split('\n');
    assert.equal(results.length, calls.length, `${label}: ${results.join(' | ')}`);
    results.forEach((line, i) => {
      const [name, outcome] = line.split(' ');
      const stats = seen.get(name) ?? { ok: 0, err: 0 };
      stats[outcome === 'ok' ? 'ok' : 'err']++;
      seen.set(name, stats);
      assert.doesNotMatch(line, /host error|TypeError|RangeError|ReferenceError|is not a function|undefined/,
        `${label}: ${calls[i]} -> ${line}`);
    });
  }
  t.diagnostic(`seed ${SEED}: ${[...seen].map(([name, { ok, err }]) => `${name} ${ok}/${err}`).join(', ')}`);
  assert.deepEqual(FUNCTIONS.filter((fn) => !seen.has(fn)), [], 'every function was called');
  assert.deepEqual(lines.filter((line) => line.includes('native error')).slice(0, 3), []);
  const after = await exec('return 40 + 2');
  assert.deepEqual(after.values, [42]);
});
