import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { withNode, TestClient, EVAL, type TestNode } from './support/helpers';
import { SEED, prng, type Rng } from './support/fuzz';

/**
 * Random argument lists for every `mix` function and connection method, run through the EVAL entry
 * (each message is Lua; calls are wrapped in pcall). A call may return anything or raise a Lua error;
 * it must never throw a JS exception out of a host function ("host error", logged as a native error),
 * stall the node, or close the connection. Deterministic: FUZZ_SEED or a fixed default, named in
 * every failure; FUZZ_SHOW=<function, e.g. conn.send> prints every call of that function and its outcome.
 */



/**
 * Lua expressions for argument values. Names in capitals are locals the script prelude defines:
 * large, deep, cyclic and binary values, the connection, a redis connection object (another userdata),
 * a coroutine. No URL points anywhere but 127.0.0.1:1, where nothing listens.
 */
const VALUES = [
  'nil', 'true', 'false',
  '0', '-0.0', '1', '-1', '2', '3.5', '255', '256', '-129', '2^31', '-2^31', '2^53', '2^63', '1e308', '-1e308',
  '0/0', '1/0', '-1/0', 'math.pi', 'math.maxinteger', 'math.mininteger', '0x7fffffff', '100001',
  '""', '"abc"', '"\\0\\1\\2\\255"', '"é€😀"', '"\\xed\\xa0\\x80\\xff"', '"%s%d%%%"', '"video:1"', '"100001@video"', '"text"',
  '"binary"', '"a b"', '"[1,2,{\\"a\\":3}]"', '"{\\"c\\":1}"', '"null"', '"[[[["', '"/chat?x=1&y=%zz#f"',
  '"http://u:p@127.0.0.1:1/p?a=1&b=%41#frag"', '"http://127.0.0.1:1/x"', '"mailto:x"', '"::"', '"aGVsbG8="', '"aGVsbG8"',
  '"a4Z*"', '"N2n*C*"', '"H*h3x5@9"', '"GET"', '"POST"', '"default"', '"path"', '"12345678901234567890"',
  'BIG', 'BIN', 'COMMAS', 'MANYPCT',
  '{}', '{1, 2, 3}', '{a = 1, b = {c = {d = "e"}}}', '{[1] = "x", [3] = "y"}', '{[true] = 1}', '{[{}] = 1}',
  '{1, nil, 3}', '{0/0}', '{72, 105}', '{256, -1, 1.5}', '{"a", "b"}', '{query = 1, headers = {1}, timeout = "x"}',
  '{timeout = "5ms", body = BIN, headers = {["X-A"] = "b"}, auth = {user = "u"}}', 'DEEP', 'CYCLE', 'WIDE',
  'setmetatable({}, {__index = function() error("index trap") end})',
  'setmetatable({}, {__tostring = function() return 42 end})',
  'setmetatable({}, {__len = function() return -1 end})',
  'setmetatable({}, {__pairs = function() error("pairs trap") end})',
  'print', 'function() end', 'function() error("boom") end', 'CO', 'conn', 'RED',
];

/** The functions under test, as Lua expressions; methods are called as plain functions with a random self. */
const FUNCTIONS = [
  'mix.websocket', 'mix.json_encode', 'mix.json_decode', 'mix.base64_encode', 'mix.base64_decode', 'mix.str_split',
  'mix.parse_url', 'mix.parse_str', 'mix.url_parse', 'mix.bytes_tostring', 'mix.md5', 'mix.md5_bin', 'mix.sha1',
  'mix.sha1_bin', 'mix.log', 'mix.server.option', 'mix.socket.tcp', 'mix.mesh.publish', 'mix.mesh.send', 'mix.mesh.count',
  'mix.queue.push', 'mix.queue.new', 'mix.http.request', 'mix.redis.connection', 'mix.php_pack', 'mix.php_unpack',
  'conn.client_id', 'conn.remote_addr', 'conn.context', 'conn.context_value', 'conn.set_context',
  'conn.set_context_value', 'conn.subscribe', 'conn.unsubscribe', 'conn.send', 'conn.clear_buffer',
  'conn.__tostring', 'RED_COMMAND', 'tostring',
];

const PRELUDE = `
local conn = mix.websocket()
local BIG = string.rep("x", 2^18)
local BIN = "" for i = 0, 255 do BIN = BIN .. string.char(i) end
local COMMAS = string.rep("a,", 5000)
local MANYPCT = string.rep("%zz&", 2000)
local DEEP = {} do local c = DEEP for i = 1, 100 do c[1] = {} c = c[1] end end
local CYCLE = {} CYCLE[1] = CYCLE CYCLE.me = CYCLE
local WIDE = {} for i = 1, 3000 do WIDE[i] = "item" .. i end
local CO = coroutine.create(print)
local RED = mix.redis.connection("default")
local RED_COMMAND = RED and RED.command or print
local results = {}
local function try(name, ...)
  local packed = table.pack(pcall(...))
  local ok, first = packed[1], packed[2]
  if ok then results[#results + 1] = name .. " ok " .. packed.n - 1
  else results[#results + 1] = name .. " err " .. (type(first) == "string" and first:sub(1, 300) or type(first)) end
end
`;

/**
 * Plausible argument kinds per function, used for a third of the calls so that every function also
 * gets past its argument checks: s string, y message type, c channel, i client_id, k key, l log level,
 * m HTTP method, u URL, f php format, T table, a anything.
 */
const SIGNATURES: Record<string, string> = {
  'mix.json_encode': 'a', 'mix.json_decode': 's', 'mix.base64_encode': 's', 'mix.base64_decode': 's',
  'mix.str_split': 's s', 'mix.parse_url': 'u', 'mix.parse_str': 's', 'mix.url_parse': 'u', 'mix.bytes_tostring': 'T',
  'mix.md5': 's', 'mix.md5_bin': 's', 'mix.sha1': 's', 'mix.sha1_bin': 's', 'mix.log': 'l a a',
  'mix.server.option': 's', 'mix.mesh.publish': 'c s y', 'mix.mesh.send': 'i s y', 'mix.mesh.count': 'c', 'mix.queue.push': 'k a', 'mix.queue.new': 'k a',
  'mix.http.request': 'm u T', 'mix.redis.connection': 's', 'mix.php_pack': 'f a a', 'mix.php_unpack': 'f s',
  'conn.context_value': 'k', 'conn.set_context': 'T', 'conn.set_context_value': 'k a', 'conn.subscribe': 'c c',
  'conn.unsubscribe': 'c', 'conn.send': 's y', 'RED_COMMAND': 's s s',
};

const KINDS: Record<string, readonly string[]> = {
  s: VALUES.filter((v) => v.startsWith('"') || /^[A-Z]+$/.test(v) && !['CO', 'RED', 'DEEP', 'CYCLE', 'WIDE'].includes(v)),
  y: ['"text"', '"binary"', 'nil'],
  c: ['"video:1"', '"room"', '"closes"', '"a b"', '""', 'string.rep("c", 2000)', '"é"'],
  i: ['conn:client_id()', '"1"', '"12345678901234567890"', '"x"'],
  k: ['"k"', '"user"', '""', 'BIN', '"é"'],
  l: ['mix.DEBUG', 'mix.INFO', 'mix.WARN', 'mix.ERROR', '"info"', '"ERROR"', '9', '-1'],
  m: ['"GET"', '"POST"', '"get"', '"BREW"', '""'],
  u: ['"http://127.0.0.1:1/x"', '"https://127.0.0.1:1/"', '"ftp://127.0.0.1:1/"', '"/chat?x=1&y=%zz#f"', '"http://[::1"', '"%"'],
  f: ['"a4Z*"', '"N2n*C*"', '"H*h3x5@9"', '"q"', '"J*"', '"x999999999"', '"@1000000000"', '"a*"', '"Z0"', '"X5"'],
  T: VALUES.filter((v) => v.startsWith('{') || ['DEEP', 'CYCLE', 'WIDE'].includes(v)),
  a: VALUES,
};

/** A random argument list (0-5 values; methods get a random self first, usually the connection). */
function argumentList(rng: Rng, fn: string): string[] {
  const signature = SIGNATURES[fn];
  const args = signature !== undefined && rng.chance(0.35)
    ? signature.split(' ').filter(() => rng.chance(0.9)).map((kind) => rng.pick(KINDS[kind]))
    : Array.from({ length: rng.int(5) }, () => rng.pick(VALUES));
  if (fn.startsWith('conn.') || fn === 'RED_COMMAND') args.unshift(rng.chance(0.8) ? (fn === 'RED_COMMAND' ? 'RED' : 'conn') : rng.pick(VALUES));
  return args;
}

/** Sends one script and waits for its answer (skipping what conn:send / publish calls delivered to us). */
async function run(client: TestClient, script: string, label: string, logs: string[] = []): Promise<string[]> {
  client.send(`${PRELUDE}\n${script}\nreturn "RESULT:" .. table.concat(results, "\\n")`);
  for (;;) {
    const message = await client.next(10000).catch(async (error: Error) => {
      const closed = client.ws.readyState === client.ws.CLOSED ? await client.closed : null;
      return assert.fail(`${label}: ${error.message} ${JSON.stringify(closed)}\n${script}\n${logs.slice(-3).join('\n').slice(0, 3000)}`);
    });
    if (message.binary || !message.data.startsWith('["RESULT:')) continue;
    const [text] = JSON.parse(message.data) as [string];
    return text.slice('RESULT:'.length).split('\n');
  }
}

async function fuzzNode(body: (node: TestNode) => Promise<void>): Promise<void> {
  await withNode({
    lua: { 'lua/entry.websocket.lua': EVAL },
    callBudget: 5000,
    serverYaml: '      maxMessagesPerSecond: 0',
    // A redis connection that fails at once (nothing listens on port 1), so mix.redis is exercised offline.
    engineYaml: '    redis:\n      - name: default\n        addr: 127.0.0.1:1',
  }, body);
}

test('every mix function and connection method survives random arguments', async (t) => {
  const rng = prng(SEED);
  await fuzzNode(async (node) => {
    // Scripts may send text frames that are not UTF-8 (CONNMIX sends them as they are, too); read them anyway.
    const client = await TestClient.open(node.wsUrl, { skipUTF8Validation: true });
    const bystander = await TestClient.open(node.wsUrl);
    const seen = new Map<string, { ok: number; err: number }>();
    const scripts = 140;
    for (let s = 0; s < scripts; s++) {
      const calls: string[] = [];
      for (let c = 0; c < 8; c++) {
        const fn = FUNCTIONS[(s * 8 + c) % FUNCTIONS.length];
        calls.push(`try(${JSON.stringify(fn)}, ${[fn, ...argumentList(rng, fn)].join(', ')})`);
      }
      const label = `seed=${SEED} script=${s}`;
      const results = await run(client, calls.join('\n'), label, node.logs);
      assert.equal(results.length, calls.length, `${label}: ${results.join(' | ')}`);
      results.forEach((line, i) => {
        const [name, outcome] = line.split(' ');
        const stats = seen.get(name) ?? { ok: 0, err: 0 };
        stats[outcome === 'ok' ? 'ok' : 'err']++;
        if (process.env.FUZZ_SHOW === name) console.log(calls[i], '->', line.slice(0, 200));
        seen.set(name, stats);
        // A JS exception escaping a host function is a bug, whatever the arguments were.
        assert.doesNotMatch(line, /host error|TypeError|RangeError|ReferenceError|is not a function|undefined/,
          `${label}: ${calls[i]} -> ${line}`);
      });
      if (s % 20 === 19) assert.equal(await bystander.request('return 40 + 2'), '[42]', `${label}: bystander`);
    }
    t.diagnostic(`seed ${SEED}: ${[...seen].map(([name, { ok, err }]) => `${name} ${ok}/${err}`).join(', ')}`);
    for (const fn of FUNCTIONS) assert.ok(seen.has(fn), `${fn} was never called`);
    // Every function both succeeded and failed at least once, so the arguments reached its logic.
    const neverOk = FUNCTIONS.filter((fn) => (seen.get(fn)?.ok ?? 0) === 0 && !['conn.clear_buffer', 'RED_COMMAND'].includes(fn));
    assert.deepEqual(neverOk, [], `never succeeded: ${neverOk.join(', ')}`);
    assert.equal(client.ws.readyState, client.ws.OPEN, 'the fuzzed connection is still open');
    assert.ok(!node.logs.some((line) => line.includes('native error in a Lua host function')),
      node.logs.filter((line) => line.includes('native error')).slice(0, 3).join('\n'));
    assert.equal(await bystander.request('return "still here"'), '["still here"]');
    client.close();
    bystander.close();
  });
});

test('wait_context_value and close with random arguments', async () => {
  const rng = prng(SEED + 1);
  await fuzzNode(async (node) => {
    const client = await TestClient.open(node.wsUrl);
    const waits: string[] = [];
    for (let i = 0; i < 30; i++) {
      // A key that is set waits for nothing; other argument types fail at once. Absent keys would wait forever.
      const key = rng.pick(['"k"', 'nil', 'true', '{}', 'print', 'conn', 'CO']);
      waits.push(`try("wait", conn.wait_context_value, ${rng.chance(0.8) ? 'conn' : rng.pick(VALUES)}, ${key})`);
    }
    const results = await run(client, `conn:set_context_value("k", {1, 2})\n${waits.join('\n')}`, `seed=${SEED + 1} waits`);
    assert.equal(results.length, 30);
    for (const line of results) assert.doesNotMatch(line, /host error|TypeError|RangeError/, line);
    client.send(`${PRELUDE}\ntry("close", conn.close, conn, ${VALUES.slice(0, 5).join(', ')})\nreturn 1`);
    assert.equal((await client.waitClosed()).code, 1000);
    const after = await TestClient.open(node.wsUrl);
    assert.equal(await after.request('return mix.websocket():client_id() ~= nil'), '[true]');
    after.close();
  });
});

test('a cyclic, too deep or too large table for a context or the queue is a clean Lua error', async () => {
  await fuzzNode(async (node) => {
    const client = await TestClient.open(node.wsUrl);
    // The conversion used to leave half-read tables on the Lua stack; the argument error then broke the
    // stack ("host error: assertion failed") and closed the connection with 1011 even under pcall.
    const answer = await client.request(`local conn = mix.websocket()
      local cycle = {} cycle[1] = cycle
      local deep = {} local d = deep for i = 1, 100 do d.x = {} d = d.x end
      local a, e1 = pcall(conn.set_context_value, conn, "k", cycle)
      local b, e2 = pcall(conn.set_context, conn, { k = deep })
      return a, e1, b, e2, conn:context_value("k")`);
    const [a, e1, b, e2, ...rest] = JSON.parse(answer) as [boolean, string, boolean, string];
    assert.deepEqual([a, b, rest], [false, false, []]);
    assert.match(e1, /^bad argument #3 to '\?' \(table nested deeper than 64 levels \(a cycle\?\)\)$/);
    assert.match(e2, /^bad argument #2 to '\?' \(table nested deeper than 64 levels/);
    assert.equal(await client.request('return "open"'), '["open"]');
    // Many references to one large string would be copied into the JS heap once each: capped at maxStringSize.
    const big = await client.request(`local conn = mix.websocket()
      local s = string.rep("x", 2^23) local t = {} for i = 1, 300 do t[i] = s end
      local ok, e = pcall(conn.set_context_value, conn, "big", t)
      local pushed, pushError = mix.queue.push("topic", t)
      return ok, e, tostring(pushed), pushError`);
    const [ok, error, pushed, pushError] = JSON.parse(big) as [boolean, string, string, string];
    assert.equal(ok, false);
    assert.match(error, /value holds more than 16777216 bytes of strings/);
    assert.equal(pushed, 'nil');
    assert.match(pushError, /queue.push: JSON text exceeds the 16777216-byte limit/);
    assert.ok(!node.logs.some((line) => line.includes('native error')));
    client.close();
  });
});
