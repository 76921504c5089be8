import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { scriptVm } from '../support/lua-harness';
import { lua, lauxlib, K } from '../../src/lua/fengari/index';
import { MIX_UTILS } from '../../src/lua/mix/utils';

/** A VM with the utilities installed as the global `mix`, plus `hex(s)` to return binary strings as text. */
/** A VM with the mix utilities; some tests feed them megabytes, so the budget is generous. */
function mixVm() {
  const vm = scriptVm({
    callBudget: 2000,
    install: (vm) => {
      lua.lua_newtable(vm.L);
      lauxlib.luaL_setfuncs(vm.L, MIX_UTILS, 0);
      lua.lua_setglobal(vm.L, K('mix'));
    },
  });
  return vm;
}

const HEX = `local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end\n`;

/** Runs `source` and returns its values, failing on a Lua error. */
async function run(exec: ReturnType<typeof mixVm>['exec'], source: string) {
  const r = await exec(HEX + source);
  assert.equal(r.error, null, r.error ?? '');
  return r.values;
}

test('MIX_UTILS has exactly the documented names, with three URL aliases', () => {
  assert.deepEqual(Object.keys(MIX_UTILS).sort(), [
    'base64_decode', 'base64_encode', 'bytes_tostring', 'json_decode', 'json_encode', 'md5', 'md5_bin',
    'parse_str', 'parse_url', 'sha1', 'sha1_bin', 'str_split', 'url_parse',
  ]);
  assert.equal(MIX_UTILS.parse_str, MIX_UTILS.parse_url);
  assert.equal(MIX_UTILS.url_parse, MIX_UTILS.parse_url);
});

test('json: the seed message round-trips', async () => {
  const { exec } = mixVm();
  const seed = '{"op":"subscribe","channel":"100001@video"}';
  const values = await run(exec, `
    local tb, err = mix.json_decode(${JSON.stringify(seed)})
    assert(err == nil, err)
    local parts = mix.str_split(tb.channel, "@")
    local s, err2 = mix.json_encode(tb)
    return tb.op, tb.channel, table.getn(parts), parts[1], parts[2], s, err2`);
  assert.deepEqual(values, ['subscribe', '100001@video', 2, '100001', 'video', seed, null]);
});

test('json_encode: scalars, arrays, objects, empty table, integral floats', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    return mix.json_encode({}), mix.json_encode({1, 2, 3}), mix.json_encode({a = {b = {1, "x", true}}}),
      mix.json_encode(100001), mix.json_encode(100001 * 1.0), mix.json_encode(1.5), mix.json_encode(nil),
      mix.json_encode("a\\"b\\n\\0"), mix.json_encode(false), mix.json_encode({[1] = "a", [3] = "c"}),
      mix.json_encode({[2] = "b"}), mix.json_encode({1, 2, x = 3}), mix.json_encode({[1.5] = 1}),
      mix.json_encode({list = {}, n = 2^53}), mix.json_encode(os.time() * 1000 > 0),
      mix.json_encode({{1, {2, {3}}}, {}}), mix.json_encode("héllo ✓")`);
  const mixed = values.splice(11, 1)[0];
  assert.deepEqual(values, [
    '{}', '[1,2,3]', '{"a":{"b":[1,"x",true]}}', '100001', '100001', '1.5', 'null',
    '"a\\"b\\n\\u0000"', 'false', '{"1":"a","3":"c"}', '{"2":"b"}', '{"1.5":1}',
    '{"list":{},"n":9007199254740992}', 'true', '[[1,[2,[3]]],{}]', '"héllo ✓"',
  ]);
  // Mixed keys give an object; which key comes first is the table's business.
  assert.deepEqual(JSON.parse(mixed as string), { 1: 1, 2: 2, x: 3 });
});

test('json_encode: object keys follow insertion order, like the message the script built', async () => {
  const { exec } = mixVm();
  const [s] = await run(exec, `
    local t = {} t.event = "chat" t.data = {from = "a"} t.time = 1700000000000
    return mix.json_encode(t)`);
  assert.equal(s, '{"event":"chat","data":{"from":"a"},"time":1700000000000}');
});

test('json_encode: keys and long strings are escaped, nested JSON round-trips', async () => {
  const { exec } = mixVm();
  const nested = { a: [1, [2, 3], { b: 'c"d', 'k\\"e\ny': 'é'.repeat(50) }], long: 'x'.repeat(100) + '"\t' };
  const [s, same] = await run(exec, `
    local t = {} t['q"\\\\'] = 'tab\\t' t['é'] = 1
    local src = ${JSON.stringify(JSON.stringify(nested))}
    local back = mix.json_encode(assert(mix.json_decode(src)))
    return mix.json_encode(t), back`);
  assert.deepEqual(JSON.parse(s as string), { 'q"\\': 'tab\t', 'é': 1 });
  assert.deepEqual(JSON.parse(same as string), nested);
});

test('json_encode: invalid UTF-8 bytes become U+FFFD instead of failing', async () => {
  const { exec } = mixVm();
  const [s] = await run(exec, `return mix.json_encode("a\\255b")`);
  assert.equal(s, '"a\uFFFDb"');
});

test('json_encode: unencodable values give nil, err (never a crash)', async () => {
  const { exec, vm } = mixVm();
  const values = await run(exec, `
    local cyc = {} cyc.self = cyc
    local deep = {} local cur = deep for i = 1, 100 do cur.x = {} cur = cur.x end
    local out = {}
    for _, v in ipairs({0/0, 1/0, -1/0, {f = print}, {print}, {[{}] = 1}, cyc, deep, coroutine.create(print)}) do
      local s, err = mix.json_encode(v)
      out[#out + 1] = tostring(s) .. "|" .. tostring(err)
    end
    return table.unpack(out)`);
  assert.deepEqual(values.map((v) => String(v).split('|')[0]), Array(9).fill('nil'));
  const errs = values.map((v) => String(v).split('|')[1]);
  assert.match(errs[0], /nan/);
  assert.match(errs[1], /inf/);
  assert.match(errs[2], /-inf/);
  assert.match(errs[3], /cannot encode a function/);
  assert.match(errs[4], /cannot encode a function/);
  assert.match(errs[5], /table key of type table/);
  assert.match(errs[6], /nested deeper than 64 levels/);
  assert.match(errs[7], /nested deeper than 64 levels/);
  assert.match(errs[8], /cannot encode a thread/);
  assert.equal(vm.stackHeight(), 0);
  const none = await exec(`return pcall(function() return mix.json_encode() end)`);
  assert.equal(none.values[0], false);
  assert.match(String(none.values[1]), /bad argument #1 to 'json_encode' \(value expected\)/);
});

test('json_decode: types, nesting, nulls, floats', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local t = assert(mix.json_decode('{"a":[1,2,{"b":null,"c":"d"}],"e":null,"f":true,"g":1.25,"h":"\\\\u00e9"}'))
    local keys = 0 for _ in pairs(t) do keys = keys + 1 end
    local n = mix.json_decode("3")
    return keys, #t.a, t.a[3].b == nil, t.a[3].c, t.e == nil, t.f, t.g, t.h, math.type(t.a[1]), n,
      math.type(n), select("#", mix.json_decode("null")), mix.json_decode("null"), mix.json_decode('"s"'),
      type(mix.json_decode("[]")), next(mix.json_decode("{}")), mix.json_decode(42)`);
  assert.deepEqual(values, [4, 3, true, 'd', true, true, 1.25, 'é', 'float', 3, 'float', 1, null, 's', 'table', null, 42]);
});

test('json_decode: 19-digit numbers arrive as floats (as float64 in Go), not wrapped 32-bit integers', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local t = assert(mix.json_decode('{"id":1234567890123456789,"ms":1700000000123,"neg":-9223372036854775807}'))
    return t.id == 1234567890123456789, t.id > 1e18, t.ms, tostring(t.ms), t.neg < -9e18, mix.json_encode({t.ms}),
      mix.json_encode({t.id})`);
  assert.deepEqual(values, [true, true, 1700000000123, '1700000000123', true, '[1700000000123]', '[1234567890123456800]']);
});

test('json_decode: bad JSON and bad arguments give nil plus a clear message', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local out = {}
    for _, s in ipairs({'{"op":', '', '{op:1}', "[1,2", "{'a':1}", "nope"}) do
      local v, err = mix.json_decode(s)
      out[#out + 1] = tostring(v) .. "|" .. tostring(err)
    end
    local v1, e1 = mix.json_decode({})
    local v2, e2 = mix.json_decode(nil)
    local v3, e3 = mix.json_decode()
    out[#out + 1] = tostring(v1) .. "|" .. e1
    out[#out + 1] = tostring(v2) .. "|" .. e2
    out[#out + 1] = tostring(v3) .. "|" .. e3
    return table.unpack(out)`);
  for (const v of values.slice(0, 6)) assert.match(String(v), /^nil\|invalid JSON: .+/);
  assert.match(String(values[0]), /JSON/);
  assert.equal(values[6], 'nil|json_decode expects a string, got table');
  assert.equal(values[7], 'nil|json_decode expects a string, got nil');
  assert.equal(values[8], 'nil|json_decode expects a string, got no value');
});

test('json_decode: deep nesting is refused with an error, the stack stays clean', async () => {
  const { exec, vm } = mixVm();
  const deep = '['.repeat(100) + ']'.repeat(100);
  const values = await run(exec, `
    local a, e1 = mix.json_decode(${JSON.stringify(deep)})
    local b, e2 = mix.json_decode(string.rep("[", 200000) .. string.rep("]", 200000))
    local ok = mix.json_decode(${JSON.stringify('['.repeat(60) + '1' + ']'.repeat(60))})
    return a, e1, b, type(e2), type(ok)`);
  assert.equal(values[0], null);
  assert.match(String(values[1]), /nested deeper than 64 levels/);
  assert.equal(values[2], null);
  assert.equal(values[3], 'string');
  assert.equal(values[4], 'table');
  assert.equal(vm.stackHeight(), 0);
});

test('base64: encode, decode, all 256 bytes round trip', async () => {
  const { exec } = mixVm();
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const values = await run(exec, `
    local bytes = {} for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    local enc = mix.base64_encode(all)
    local dec, err = mix.base64_decode(enc)
    return enc, dec == all, err, #dec, mix.base64_encode(""), mix.base64_decode(""), mix.base64_encode("hello"),
      mix.base64_decode("aGVsbG8="), mix.base64_decode("aGk="), mix.base64_decode("aGVs\\r\\nbG8="),
      mix.base64_encode(123)`);
  assert.deepEqual(values, [all.toString('base64'), true, null, 256, '', '', 'aGVsbG8=', 'hello', 'hi', 'hello', 'MTIz']);
});

test('base64_decode: strict like Go StdEncoding (padding required, alphabet only)', async () => {
  const { exec } = mixVm();
  const cases: Array<[string, number]> = [
    ['aGVsbG8', 7], // missing padding
    ['aGk', 3],
    ['a', 1],
    ['aGVsbG8==', 8], // too much padding
    ['aG=k', 3], // data after padding
    ['=aGk', 0],
    ['aGVs bG8=', 4], // space
    ['aGVs-G8=', 4], // URL alphabet
    ['aGVs\u00ffG8=', 4], // a byte outside ASCII
    ['aGVsbG8=aGk=', 8], // concatenated padded chunks
  ];
  for (const [input, offset] of cases) {
    const lit = input.replace(/\u00ff/g, '\\255');
    const r = await run(exec, `return mix.base64_decode("${lit}")`);
    assert.deepEqual(r, [null, `illegal base64 data at input byte ${offset}`], input);
  }
});

test('str_split: plain split, empty fields kept, multi-byte and binary separators', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local function j(t) return table.getn(t) .. ":" .. table.concat(t, ",") end
    return j(mix.str_split("@user", "@")), j(mix.str_split("a@@b", "@")), j(mix.str_split("", "@")),
      j(mix.str_split("100001@video", "@")), j(mix.str_split("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n", "\\r\\n")),
      j(mix.str_split("Host: a: b", ": ")), j(mix.str_split("a.b%c", ".")), j(mix.str_split("a\\0b\\0", "\\0")),
      j(mix.str_split("abc", "abc")), j(mix.str_split("abc", "abcd")), j(mix.str_split(12345, 3)),
      j(mix.str_split("x@", "@")), table.getn(mix.str_split("100001@video", "@")) == 2`);
  assert.deepEqual(values, [
    '2:,user', '3:a,,b', '1:', '2:100001,video', '4:GET / HTTP/1.1,Host: x,,', '3:Host,a,b', '2:a,b%c',
    '3:a,b,', '2:,', '1:abc', '2:12,45', '2:x,', true,
  ]);
});

test('str_split: binary pieces are exact bytes', async () => {
  const { exec } = mixVm();
  const [h] = await run(exec, `local t = mix.str_split("\\255\\254|\\0\\1", "|") return hex(t[1]) .. "-" .. hex(t[2])`);
  assert.equal(h, 'fffe-0001');
});

test('str_split: an empty separator and wrong types raise bad argument errors', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local function err(f) local ok, e = pcall(f) return tostring(ok) .. "|" .. e end
    return err(function() return mix.str_split("a", "") end), err(function() return mix.str_split(nil, "@") end),
      err(function() return mix.str_split("a") end), err(function() return mix.str_split({}, "@") end)`);
  assert.match(String(values[0]), /^false\|.*bad argument #2 to 'str_split' \(separator must not be empty\)/);
  assert.match(String(values[1]), /bad argument #1 to 'str_split' \(string expected, got nil\)/);
  assert.match(String(values[2]), /bad argument #2 to 'str_split' \(string expected, got no value\)/);
  assert.match(String(values[3]), /bad argument #1 to 'str_split' \(string expected, got table\)/);
});

test('md5 / sha1: hex and raw digests equal node:crypto, binary-safe input', async () => {
  const { exec } = mixVm();
  const binary = Buffer.from([0, 255, 128, 10, 13]);
  const values = await run(exec, `
    local bin = "\\0\\255\\128\\10\\13"
    return mix.md5("hello"), mix.sha1("hello"), #mix.md5_bin("hello"), #mix.sha1_bin("hello"),
      hex(mix.md5_bin("hello")) == mix.md5("hello"), hex(mix.sha1_bin("hello")) == mix.sha1("hello"),
      mix.md5(bin), hex(mix.sha1_bin(bin)), mix.md5(""), mix.sha1(100001), mix.md5("héllo")`);
  const digest = (alg: string, data: Buffer | string) => createHash(alg).update(data).digest('hex');
  assert.deepEqual(values, [
    digest('md5', 'hello'), digest('sha1', 'hello'), 16, 20, true, true, digest('md5', binary),
    digest('sha1', binary), digest('md5', ''), digest('sha1', '100001'), digest('md5', 'héllo'),
  ]);
});

test('sha1_bin + base64 gives the WebSocket accept key (RFC 6455 example)', async () => {
  const { exec } = mixVm();
  const [accept] = await run(exec, `
    return mix.base64_encode(mix.sha1_bin("dGhlIHNhbXBsZSBub25jZQ==" .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))`);
  assert.equal(accept, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

test('digests reject non-strings with the standard message', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local out = {}
    for _, name in ipairs({"md5", "md5_bin", "sha1", "sha1_bin", "base64_encode", "base64_decode", "parse_url"}) do
      local ok, e = pcall(function() return mix[name]({}) end)
      out[#out + 1] = e
    end
    local ok, e = pcall(function() return mix.md5({}) end)
    return e, table.unpack(out)`);
  assert.match(String(values[0]), /bad argument #1 to 'md5' \(string expected, got table\)/);
  for (const v of values.slice(1)) assert.match(String(v), /bad argument #1 to '.*' \(string expected, got table\)/);
});

test('bytes_tostring: bytes to a string; bad elements raise', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local s = mix.bytes_tostring({104, 105, 0, 255, 128.0})
    local function err(t) local ok, e = pcall(function() return mix.bytes_tostring(t) end) return e end
    return #s, hex(s), mix.bytes_tostring({}), err({256}), err({-1}), err({1.5}), err({"65"}), err("abc"), err(nil)`);
  assert.equal(values[0], 5);
  assert.equal(values[1], '686900ff80');
  assert.equal(values[2], '');
  for (const v of values.slice(3, 7)) assert.match(String(v), /bad argument #1 to 'bytes_tostring' \(element 1 is not a byte/);
  assert.match(String(values[7]), /bad argument #1 to 'bytes_tostring' \(table expected, got string\)/);
  assert.match(String(values[8]), /bad argument #1 to 'bytes_tostring' \(table expected, got nil\)/);
});

/** parse_url's table as a JS object (strings decoded as UTF-8 by the harness). */
async function parse(exec: ReturnType<typeof mixVm>['exec'], url: string) {
  const r = await exec(`return mix.parse_url(${JSON.stringify(url)})`);
  assert.equal(r.error, null, r.error ?? '');
  return r.values;
}

test('parse_url: a bare request URI (server["RequestUri"])', async () => {
  const { exec } = mixVm();
  const [tb, err] = await parse(exec, '/chat?foo=bar&x=1&foo=second&sp=a+b%20c&empty=&flag');
  assert.equal(err, undefined);
  assert.deepEqual(tb, {
    scheme: '', opaque: '', user: '', host: '', path: '/chat', raw_path: '', force_query: false,
    raw_query: 'foo=bar&x=1&foo=second&sp=a+b%20c&empty=&flag', fragment: '', raw_fragment: '',
    query: { foo: 'bar', x: '1', sp: 'a b c', empty: '', flag: '' },
  });
  const [q] = await run(exec, `local tb = mix.parse_url("/chat?foo=bar&x=1") return tb.query.foo == "bar" and tb.path == "/chat"`);
  assert.equal(q, true);
});

test('parse_url: a full URL with user, port, escaped path and fragment', async () => {
  const { exec } = mixVm();
  const [tb] = await parse(exec, 'HTTP://user:pw@host:8080/p/a%20b?q=1#frag');
  assert.deepEqual(tb, {
    scheme: 'http', opaque: '', user: 'user:pw', host: 'host:8080', path: '/p/a b', raw_path: '',
    force_query: false, raw_query: 'q=1', fragment: 'frag', raw_fragment: '', query: { q: '1' },
  });
});

test('parse_url: Go field shapes (raw_path, raw_fragment, force_query, opaque, ipv6, escaped user)', async () => {
  const { exec } = mixVm();
  const pick = async (url: string, ...keys: string[]) => {
    const [tb] = await parse(exec, url);
    return keys.map((k) => (tb as Record<string, unknown>)[k]);
  };
  assert.deepEqual(await pick('/a%2Fb/c', 'path', 'raw_path'), ['/a/b/c', '/a%2Fb/c']);
  assert.deepEqual(await pick('/a%62', 'path', 'raw_path'), ['/ab', '/a%62']);
  assert.deepEqual(await pick('/x#a%20b', 'fragment', 'raw_fragment'), ['a b', '']);
  assert.deepEqual(await pick('/x#a%2fb', 'fragment', 'raw_fragment'), ['a/b', 'a%2fb']);
  assert.deepEqual(await pick('http://h/p?', 'force_query', 'raw_query'), [true, '']);
  assert.deepEqual(await pick('mailto:joe@example.com', 'scheme', 'opaque', 'path'), ['mailto', 'joe@example.com', '']);
  assert.deepEqual(await pick('ws://[::1]:6789/ws/v1', 'host', 'path'), ['[::1]:6789', '/ws/v1']);
  assert.deepEqual(await pick('http://a%40b@h/', 'user', 'host'), ['a%40b', 'h']);
  assert.deepEqual(await pick('http://only@h', 'user', 'path'), ['only', '']);
  assert.deepEqual(await pick('//h/p', 'host', 'path'), ['h', '/p']);
  assert.deepEqual(await pick('*', 'path'), ['*']);
  assert.deepEqual(await pick('', 'path', 'scheme'), ['', '']);
  assert.deepEqual(await pick('/?a=1;b=2&c=%zz&d=3&%41=4', 'query'), [{ d: '3', A: '4' }]);
});

test('parse_url: aliases and binary query values', async () => {
  const { exec } = mixVm();
  const values = await run(exec, `
    local a, b, c = mix.parse_str("/p?x=%FF%00"), mix.url_parse("/p?x=1"), mix.parse_url("/p?x=1")
    return hex(a.query.x), b.query.x, c.path`);
  assert.deepEqual(values, ['ff00', '1', '/p']);
});

test('parse_url: invalid URLs give nil, err', async () => {
  const { exec } = mixVm();
  const cases: Array<[string, RegExp]> = [
    [':foo', /missing protocol scheme/],
    ['1:2', /first path segment in URL cannot contain colon/],
    ['http://[::1/p', /missing ']' in host/],
    ['http://host:port/', /invalid port ":port" after host/],
    ['/a%zzb', /invalid URL escape "%zz"/],
    ['/a%2', /invalid URL escape "%2"/],
    ['http://h o/', /invalid character " " in host name/],
    ['/a\nb', /invalid control character in URL/],
    ['http://us er@h/', /invalid userinfo/],
    ['http://%41/', /invalid URL escape "%41"/],
  ];
  for (const [url, pattern] of cases) {
    const values = await parse(exec, url);
    assert.equal(values[0], null, url);
    assert.match(String(values[1]), pattern, url);
    assert.ok(String(values[1]).startsWith('parse '), url);
  }
});
