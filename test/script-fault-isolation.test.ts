import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { withNode, withTimeout, TestClient, type TestNode, waitFor } from './support/helpers';
import { startListening, seedEngineFolder, residentBytes } from './support/engine-process';
import { ApiClient } from './support/api-client';

/**
 * Whatever a script does costs at most its own connection: the node goes on serving /healthz and the
 * other viewers, frees the connection's place (on_close runs), and stops on SIGTERM.
 */

/**
 * Runs each text message as Lua inside on_message and answers with the returned values as JSON;
 * on_close counts closes in the global `closes`, which a bystander reads with `return closes`.
 */
const HOSTILE = `
closes = 0
function on_handshake() end
function on_message(msg)
  local conn = mix.websocket()
  local f = assert(load(msg.data, "=cmd"))
  conn:send(mix.json_encode({ f() }))
end
function on_close(client_id, err) closes = closes + 1 end
`;

/** The node answers /healthz and serves the bystander. */
async function healthy(node: { apiUrl: string }, bystander: TestClient): Promise<void> {
  const response = await fetch(`${node.apiUrl}/healthz`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200);
  assert.equal(await bystander.request('return "still served"'), '["still served"]');
}

/** Waits until on_close has run `count` times in all. */
async function closesReach(bystander: TestClient, count: number): Promise<void> {
  await waitFor(`on_close ran ${count} times`, async () => Number(JSON.parse(await bystander.request('return closes'))[0]) >= count, 20_000);
}

/** Opens a client, sends `attack`, and returns how the node closed it. */
async function attack(node: TestNode, source: string): Promise<{ code: number; reason: string }> {
  const hostile = await TestClient.open(node.wsUrl);
  hostile.send(source);
  return hostile.waitClosed(20_000);
}

test('a hook that yields without waiting is a script error: 1011, on_close runs, its maxConnections slot is freed', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE }, serverYaml: '      maxConnections: 3' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    // Two slots left; four yielding clients in turn would be refused with 503 if a slot stayed taken.
    for (let round = 1; round <= 2; round++) {
      const closed = await Promise.all([
        attack(node, 'coroutine.yield()'),
        attack(node, 'pcall(coroutine.yield, 1, 2)'),
      ]);
      for (const { code, reason } of closed) assert.deepEqual({ code, reason }, { code: 1011, reason: 'script error' });
      await closesReach(bystander, 2 * round);
      await healthy(node, bystander);
    }
    assert.ok(node.logs.some((line) => line.includes('attempt to yield from a hook without waiting')), 'the failure is logged');
    const late = await Promise.all([TestClient.open(node.wsUrl), TestClient.open(node.wsUrl)]);
    for (const client of late) assert.equal(await client.request('return 1 + 1'), '[2]');
    for (const client of [...late, bystander]) client.close();
  });
});

test('wait_context_value gives up after engine.luavm.limits.waitTimeout: nil and an error, logged; the connection goes on', async () => {
  const lua = { 'lua/entry.websocket.lua': HOSTILE };
  await withNode({ lua, engineYaml: '    limits:\n      waitTimeout: 1' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const waiter = await TestClient.open(node.wsUrl);
    waiter.send('local v, err = mix.websocket():wait_context_value("uid") return v == nil, err');
    waiter.send('return "next in line"');
    await healthy(node, bystander);
    assert.equal((await waiter.next(20_000)).data, '[true,"wait_context_value(\\"uid\\") timed out after 1 s"]');
    assert.equal((await waiter.next(20_000)).data, '["next in line"]');
    assert.ok(node.logs.some((line) => line.includes('wait_context_value timed out') && line.includes('"key":"uid"')), 'the timeout is logged');
    // The expired wait is forgotten: a value set later is simply there, and a new wait returns it at once.
    assert.equal(await waiter.request('mix.websocket():set_context_value("uid", 7) return mix.websocket():wait_context_value("uid")'), '[7]');
    await healthy(node, bystander);
    bystander.close();
    waiter.close();
  });
});

test('host calls over huge or shared inputs fail with a Lua error (1011) instead of holding the node', async () => {
  const SHARED = 'local t = { 1 } for i = 1, 22 do t = { t, t } end'; // 2^22 leaves through 22 tables
  const attacks: Record<string, [string, string]> = {
    'php_unpack': ['mix.php_unpack("C*", string.rep("x", 2^24))', 'php_unpack: more than 100000 format items or values'],
    // Format options are read one by one: a 16 MiB format held the node for seconds in one call.
    'string.pack': ['string.pack(string.rep("x", 2^24 - 1))', 'string.pack: 16777215 elements exceed the 100000-element limit'],
    'string.unpack': ['string.unpack(string.rep("b", 2^22), string.rep("a", 2^22))', 'string.unpack: 4194304 elements exceed the 100000-element limit'],
    'json_encode': [`${SHARED} assert(mix.json_encode(t))`, 'more than 100000 values to encode'],
    'set_context_value': [`${SHARED} mix.websocket():set_context_value("tree", t)`, 'value holds more than 100000 entries'],
    'set_context': [`${SHARED} mix.websocket():set_context({ tree = t })`, 'value holds more than 100000 entries'],
    'json_decode': ['assert(mix.json_decode("[" .. string.rep("0,", 2^23 - 2) .. "0]"))', 'invalid JSON: more than 100000 values'],
    'string.format %q': ['string.format("%q", string.rep("\\0", 2^23))', 'exceeds the 16777216-byte limit'],
  };
  // The caps, not the budget, must stop these: building a 16 MiB input alone took more than the default
  // 100 ms on a busy 2-core machine, and json_decode was then stopped as a timeout.
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE }, callBudget: 1000 }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    let closes = 0;
    for (const [name, [source, error]] of Object.entries(attacks)) {
      const { code, reason } = await attack(node, source);
      assert.deepEqual({ code, reason }, { code: 1011, reason: 'script error' }, name);
      assert.ok(node.logs.some((line) => line.includes('Lua hook failed') && line.includes(error)), `${name}: ${error} is logged`);
      await closesReach(bystander, ++closes);
      await healthy(node, bystander);
    }
    bystander.close();
  });
});

test('a Lua state past engine.luavm.limits.maxMemory closes the connection that grows it (1011, logged); the node stays bounded and serves the rest', async () => {
  const GROW = 'hoard = hoard or {} for i = 1, 3000 do hoard[#hoard + 1] = string.rep("x", 64) .. #hoard end return #hoard';
  /** Sends GROW until the node closes the connection; returns how it closed it. */
  const hoarder = async (node: TestNode) => {
    const client = await TestClient.open(node.wsUrl);
    for (;;) {
      client.send(GROW);
      const answer = await Promise.race([client.next(20_000).then(() => null), client.closed]);
      if (answer) return answer;
    }
  };
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE }, callBudget: 2000, engineYaml: '    limits:\n      maxMemory: 16777216' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const first = await hoarder(node);
    assert.deepEqual(first, { code: 1011, reason: 'script error' });
    assert.ok(node.logs.some((line) => line.includes('Lua state over its memory budget')), 'the node logs it');
    assert.ok(node.logs.some((line) => line.includes('more than engine.luavm.limits.maxMemory (16.0 MiB)')), 'and the hook error');
    await closesReach(bystander, 1);
    await healthy(node, bystander);
    // Calls that keep nothing are still served, however much garbage they make.
    for (let i = 0; i < 5; i++) {
      assert.equal(await bystander.request('local t = {} for i = 1, 20000 do t[i] = { i } end return #t'), '[20000]');
    }
    // Whoever grows it further is closed as well, so the state stays near its budget (or, past twice
    // it, is replaced by a fresh one, whose on_close counts from 0: see the next test).
    const reset = () => node.logs.some((line) => line.includes('Lua state reset'));
    for (let round = 2; round <= 4; round++) {
      assert.deepEqual(await hoarder(node), { code: 1011, reason: 'script error' });
      if (!reset()) await closesReach(bystander, round);
    }
    const entries = Number(JSON.parse(await bystander.request('return hoard and #hoard or 0'))[0]);
    // About 400 estimated bytes an entry: 16 MiB is some 42,000 entries; each round adds what it made
    // before a look at the heap found it (16 MiB of heap growth at most).
    assert.ok(entries < 250_000, `the state holds ${entries} entries`);
    await healthy(node, bystander);
    bystander.close();
  });
});

test('connection contexts count against engine.luavm.limits.maxMemory: a script piling values into them is closed (1011), and closing drops a context even where the script keeps the connection', async () => {
  // One 1 MiB string in the Lua state; each message copies it into its connection's context under a
  // new key, 8 MiB per connection (one context is capped at 16 MiB on its own). The script also keeps
  // every connection it saw, which kept each closed one's context alive.
  const PILE = `big = big or string.rep("x", 2^20) kept = kept or {} local conn = mix.websocket()
    kept[conn:client_id()] = conn n = (n or 0) + 1 conn:set_context_value("k" .. n, big) return n`;
  const KEPT_VALUES = 'local n = 0 for id, conn in pairs(kept) do for k in pairs(conn:context()) do n = n + 1 end end return n';
  /**
   * Sends PILE over fresh connections, 8 times each (under one context's 16 MiB cap), keeping them open,
   * until the node closes one (at most 200 MiB of context); then closes the others. Returns how the
   * node closed that one, and how many connections were opened.
   */
  const piler = async (node: TestNode) => {
    const open: TestClient[] = [];
    let closed: { code: number; reason: string } | null = null;
    for (let connections = 0; connections < 25 && !closed; connections++) {
      const client = await TestClient.open(node.wsUrl);
      open.push(client);
      for (let i = 0; i < 8 && !closed; i++) {
        client.send(PILE);
        closed = await Promise.race([client.next(20_000).then(() => null), client.closed]);
      }
    }
    for (const client of open) client.close();
    return { closed, opened: open.length };
  };
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE }, engineYaml: '    limits:\n      maxMemory: 16777216' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    let opened = 0;
    for (let round = 1; round <= 3; round++) {
      // Each round's contexts went with their connections: the next round may pile as much again before it is stopped.
      const pile = await piler(node);
      assert.deepEqual(pile.closed, { code: 1011, reason: 'script error' }, `round ${round}`);
      assert.ok(pile.opened > 1, 'the contexts of several connections added up');
      assert.ok(node.logs.some((line) => line.includes('Lua state over its memory budget')), 'the node logs it');
      opened += pile.opened;
      await closesReach(bystander, opened);
      await healthy(node, bystander);
    }
    await waitFor('the kept connections hold no context values', async () => (await bystander.request(KEPT_VALUES)) === '[0]', 20_000);
    await healthy(node, bystander);
    bystander.close();
  });
});

/** Runs a full garbage collection (what --expose-gc offers, without the flag on the test command). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

test('a connection a script keeps in a global after it closed is let go: its userdata answers as a closed connection', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE } }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const client = await TestClient.open(node.wsUrl);
    const id = JSON.parse(await client.request('kept = mix.websocket() kept:set_context_value("uid", 7) return kept:client_id()'))[0] as string;
    const server = node.engine.servers[0] as unknown as { sessions: Map<{ clientId: string }, unknown> };
    const conn = new WeakRef([...server.sessions.keys()].find((candidate) => candidate.clientId === id) as object);
    assert.ok(conn.deref(), 'the connection is found');
    client.close();
    await closesReach(bystander, 1);
    await waitFor('the server forgot the connection', () => ![...server.sessions.keys()].some((candidate) => candidate.clientId === id), 20_000);
    // Each kept connection held its socket objects (about 4 KiB), which the memory estimate counted as 128 bytes.
    await waitFor('the closed connection is collected', async () => {
      collectGarbage();
      await new Promise((resolve) => setImmediate(resolve));
      return conn.deref() === undefined;
    }, 20_000, 200);
    assert.equal(await bystander.request(`local ctx = kept:context() kept:set_context_value("uid", 8)
      return kept:client_id(), next(ctx) == nil, kept:context_value("uid") == nil, kept:send("x"), kept:subscribe("room"), kept:unsubscribe("room")`),
      JSON.stringify([id, true, true, 'send failed: connection closed or its buffer is full', 'connection closed']));
    await healthy(node, bystander);
    bystander.close();
  });
});

/**
 * Runs each loop on a connection of its own: each must cost only that connection (1011 script timeout)
 * and end within 10 s, a generous bound for "stopped by the budget", while the bystander is served.
 */
async function assertStoppedPromptly(node: TestNode, bystander: TestClient, loops: Record<string, string>): Promise<void> {
  let closes = 0;
  for (const [name, source] of Object.entries(loops)) {
    const started = Date.now();
    const { code, reason } = await attack(node, source);
    const took = Date.now() - started;
    assert.deepEqual({ code, reason }, { code: 1011, reason: 'script timeout' }, name);
    assert.ok(took < 10_000, `${name} held the node for ${took} ms`);
    await closesReach(bystander, ++closes);
    await healthy(node, bystander);
  }
}

/** Loops over huge strings whose every step is one cheap-looking instruction or library call. */
const HUGE_STRING_LOOPS = {
  'tostring of a table with a 16 MiB __name': 'local t = setmetatable({}, {__name = string.rep("x", 2^24)}) while true do local s = tostring(t) end',
  '== of two equal 16 MiB strings': 'local a, b = string.rep("x", 2^24), string.rep("x", 2^24) while true do local same = a == b end',
  // In a function called often enough to run compiled, which checks only compares that may read long strings.
  '== of two equal 16 MiB strings in a compiled function': 'local a, b = string.rep("x", 2^24), string.rep("x", 2^24) local function same(x, y) return x == y end while true do local s = same(a, b) end',
  '<= of two equal 16 MiB strings': 'local a, b = string.rep("x", 2^24), string.rep("x", 2^24) while true do local same = a <= b end',
  'rawequal of two equal 16 MiB strings': 'local a, b = string.rep("x", 2^24), string.rep("x", 2^24) while true do local same = rawequal(a, b) end',
};

test('loops of compares or tostring over huge strings are stopped by the budget (1011 script timeout), not after seconds of node time', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE } }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    // The budget (100 ms) plus a few 16 MiB copies or compares; without a budget check after each, the
    // hook fired every 1000 instructions: hundreds of them, held the node for 30 s to minutes.
    await assertStoppedPromptly(node, bystander, HUGE_STRING_LOOPS);
    bystander.close();
  });
});

/** Loops whose every instruction moves 100,000 values: U holds 1..100000, T is U with a chain of keys past its end. */
const BULK_LOOPS = {
  'passing 100,000 varargs on': 'local function id(...) return ... end local function spread(...) while true do id(...) end end spread(table.unpack(U))',
  'select over 100,000 varargs': 'local function spread(...) while true do local n = select("#", ...) end end spread(table.unpack(U))',
  'a table of 100,000 varargs': 'local function spread(...) while true do local t = {...} end end spread(table.unpack(U))',
  '#t of a table whose border search falls back to a scan': 'local t = T while true do local n = #t end',
};

test('loops of instructions that move 100,000 values ({...}, f(...), the length of a crafted table) are stopped by the budget (1011 script timeout), not after seconds of node time', async () => {
  // A budget roomy enough for building the tables on a busy machine; still a tenth of the bound below.
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE }, callBudget: 1000 }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    for (let from = 1; from <= 100_000; from += 10_000) {
      await bystander.request(`U, T = U or {}, T or {} for i = ${from}, ${from + 9_999} do U[i] = i T[i] = true end`);
    }
    // Keys k, 2k, 4k, ... past 2^30 with k = #T + 1 make fengari's #T check every key from 1 on.
    assert.equal(await bystander.request(`local chain = 0 repeat chain = chain + 1 local k, steps = #U + chain + 1, 0 while k * 2^steps <= 2^31 do steps = steps + 1 end until steps + 1 == chain
      for step = 0, chain - 1 do T[math.floor((#U + chain + 1) * 2^step)] = true end return #T`), '[100000]');
    // Without counting the values each instruction moves, 20,000 of them ran before the budget could stop the call: 25 s to 7 min.
    await assertStoppedPromptly(node, bystander, BULK_LOOPS);
    bystander.close();
  });
});

const LOOPS = {
  'an xpcall handler that loops': 'return xpcall(function() error("x") end, function(e) while true do end end)',
  'an xpcall handler that loops after the budget error': 'return xpcall(function() while true do end end, function(e) while true do end end)',
  'a handler that loops and recurses': 'local function h(e) local ok = pcall(error, e) while true do end end return xpcall(error, h, "x")',
  'a looping __index inside pcall': 'local t = setmetatable({}, {__index = function() while true do end end}) return pcall(function() return t.x end)',
  'a looping __tostring in the handler': 'local o = setmetatable({}, {__tostring = function() while true do end end}) return xpcall(error, function(e) return tostring(o) end, "x")',
  'a looping __lt in table.sort under pcall': 'local mt = {__lt = function() while true do end end} return pcall(table.sort, {setmetatable({}, mt), setmetatable({}, mt)})',
  'a looping gsub callback in an xpcall handler': 'return xpcall(error, function(e) return (string.gsub("abc", ".", function() while true do end end)) end, "x")',
};

test('the budget holds in error handlers and metamethods: each loop costs its connection (1011 script timeout), never the node', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE } }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    let closes = 0;
    for (const [name, source] of Object.entries(LOOPS)) {
      const { code, reason } = await attack(node, source);
      assert.deepEqual({ code, reason }, { code: 1011, reason: 'script timeout' }, name);
      await closesReach(bystander, ++closes);
      await healthy(node, bystander);
    }
    bystander.close();
  });
});

test('engine process: a looping xpcall handler closes its connection with 1011, /healthz still answers, SIGTERM stops the process', async () => {
  const { file, wsUrl: url, apiUrl } = await seedEngineFolder();
  fs.writeFileSync(path.join(path.dirname(file), 'lua/entry.websocket.lua'), HOSTILE);
  const engine = await startListening(file);
  try {
    const api = { apiUrl };
    const bystander = await TestClient.open(url);
    for (const source of [LOOPS['an xpcall handler that loops'], LOOPS['an xpcall handler that loops after the budget error']]) {
      const hostile = await TestClient.open(url);
      hostile.send(source);
      const { code, reason } = await hostile.waitClosed(20_000);
      assert.deepEqual({ code, reason }, { code: 1011, reason: 'script timeout' });
      await healthy(api, bystander);
    }
    assert.ok(residentBytes(engine.child.pid as number) < 1024 * 2 ** 20);
    bystander.close();
    engine.child.kill('SIGTERM');
    const exit = await withTimeout(engine.exited, 20_000, 'the engine did not stop on SIGTERM');
    assert.equal(exit, 0, engine.output());
  } finally {
    engine.child.kill('SIGKILL');
  }
});

// Last of the in-process tests: the states it drops leave garbage whose collection could hold a
// later test's short budget.
test('a Lua state that keeps growing past twice engine.luavm.limits.maxMemory is replaced by a fresh one running the entry: its globals go, connections and contexts stay', async () => {
  const GROW = 'hoard = hoard or {} for i = 1, 3000 do hoard[#hoard + 1] = string.rep("x", 64) .. #hoard end return #hoard';
  const reset = (line: string) => line.includes('Lua state reset: it held more than twice its memory budget');
  await withNode({ lua: { 'lua/entry.websocket.lua': HOSTILE }, callBudget: 2000, engineYaml: '    limits:\n      maxMemory: 16777216' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    assert.equal(await bystander.request('mix.websocket():set_context_value("uid", 42) marker = "kept" return marker'), '["kept"]');
    // A call that waits across the reset goes on in the old state, its connection's methods included.
    const waiter = await TestClient.open(node.wsUrl);
    const [waiterId] = JSON.parse(await waiter.request('return mix.websocket():client_id()')) as string[];
    waiter.send('marker = "old" local uid = mix.websocket():wait_context_value("uid") return uid, marker, mix.websocket():client_id()');
    // Each hoarder is closed once a look at the heap finds the state over its budget, but what it
    // added stays: without a reset the state grew a quarter at every look, past 2 GB on a 256 MiB budget.
    for (let round = 1; !node.logs.some(reset); round++) {
      assert.ok(round <= 40, 'the state was reset within 40 hoarders');
      const hoarder = await TestClient.open(node.wsUrl);
      let closed: { code: number; reason: string } | null = null;
      while (!closed) {
        hoarder.send(GROW);
        closed = await Promise.race([hoarder.next(20_000).then(() => null), hoarder.closed]);
      }
      assert.deepEqual(closed, { code: 1011, reason: 'script error' });
      if (node.logs.some(reset)) break;
      const entries = Number(JSON.parse(await bystander.request('return #hoard'))[0]);
      // About 400 estimated bytes an entry: twice 16 MiB is some 84,000 entries, and a look lets the
      // state grow a quarter past the previous one.
      assert.ok(entries < 250_000, `round ${round}: the state holds ${entries} entries`);
    }
    assert.ok(node.logs.some((line) => reset(line) && line.includes('"max_memory":16777216')), 'the reset is logged with the budget');
    const api = await ApiClient.open(node.apiUrl);
    assert.deepEqual((await api.call('conn.call', { c: waiterId, f: 'set_context_value', a: ['uid', 7] })).r, { s: true });
    assert.equal((await waiter.next(20_000)).data, JSON.stringify([7, 'old', waiterId]));
    assert.equal(await waiter.request('return marker == nil, mix.websocket():client_id()'), JSON.stringify([true, waiterId]));
    api.close();
    waiter.close();
    // The entry ran afresh (no hoard, no marker, closes counts from 0: the last hoarder's on_close
    // runs in the fresh state) for the connections already open.
    assert.equal(await bystander.request('return hoard == nil, marker == nil, closes <= 1, mix.websocket():context_value("uid")'), '[true,true,true,42]');
    await healthy(node, bystander);
    const late = await TestClient.open(node.wsUrl);
    assert.equal(await late.request('return 1 + 1'), '[2]');
    late.close();
    bystander.close();
  });
});
