import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { withNode, post, type TestNode, type TestNodeOptions } from './support/helpers';
import { LineClient } from './support/line-client';
import { PhpStyleConsumer } from './support/php-consumer';

// CONNMIX v1.0.1's hook model on `protocol: socket` servers (socket-hook-model.ts): the connection as
// the hooks' last argument, init() once at start, mix.queue.new(name, size); chosen by the entry's
// protocol_input(buf, conn) or by `servers[].hooks`.

/**
 * A newline-framed entry written for v1.0.1. Every hook notes the Lua types of the arguments it got;
 * the line "seen" answers them, "inits" how often init ran, "push <topic>" what mix.queue.push answers,
 * "new <topic>" what mix.queue.new(topic, 1) answers,
 * and "sub <channel>" subscribes. on_close pushes {err, id} to topic "closed".
 */
const V101_ENTRY = `
local seen = {}
local function note(hook, ...)
  local kinds = {}
  for i = 1, select("#", ...) do kinds[#kinds + 1] = type((select(i, ...))) end
  seen[#seen + 1] = hook .. "(" .. table.concat(kinds, ",") .. ")"
end

function init()
  inits = (inits or 0) + 1
  assert(mix.queue.new("small", 2))
  assert(mix.queue.new("big", 1000))
end

function on_connect(conn)
  note("on_connect", conn)
  conn:send("hello " .. conn:client_id() .. "\\n")
end

function on_close(err, conn)
  mix.queue.push("closed", { err = tostring(err), id = conn:client_id() })
end

function protocol_input(buf, conn)
  note("protocol_input", buf, conn)
  return string.find(buf:tostring(), "\\n", 1, true) or 0
end

function protocol_decode(str, conn)
  note("protocol_decode", str, conn)
  return string.sub(str, 1, -2)
end

function protocol_encode(str, conn)
  return str .. " (for " .. conn:client_id() .. ")\\n"
end

function on_message(line, conn)
  note("on_message", line, conn)
  local reply
  if line == "seen" then
    reply = table.concat(seen, " ") .. " same=" .. tostring(conn:client_id() == mix.socket.tcp():client_id())
    seen = {}
  elseif line == "inits" then
    reply = tostring(inits)
  elseif string.sub(line, 1, 5) == "push " then
    local n, err = mix.queue.push(string.sub(line, 6), "x")
    reply = tostring(n) .. " " .. tostring(err)
  elseif string.sub(line, 1, 4) == "new " then
    local ok, err = mix.queue.new(string.sub(line, 5), 1)
    reply = tostring(ok) .. " " .. tostring(err)
  elseif string.sub(line, 1, 4) == "sub " then
    reply = tostring(conn:subscribe(string.sub(line, 5)))
  else
    reply = "?"
  end
  conn:send(reply .. "\\n")
end
`;

function socketNode(entry: string, extra: TestNodeOptions = {}): TestNodeOptions {
  return { ...extra, lua: { 'lua/socket.lua': entry }, socketEntry: 'lua/socket.lua' };
}

async function ask(client: LineClient, line: string): Promise<string> {
  client.write(`${line}\n`);
  return client.line(10_000);
}

async function greeted(node: TestNode): Promise<{ client: LineClient; id: string }> {
  const client = new LineClient(node.socketPort);
  const hello = await client.line(10_000);
  assert.match(hello, /^hello \d+$/);
  return { client, id: hello.slice('hello '.length) };
}

test('v1.0.1 hooks, chosen by protocol_input(buf, conn): the connection is the last argument of every hook', async () => {
  await withNode(socketNode(V101_ENTRY), async (node) => {
    const { client, id } = await greeted(node);
    assert.equal(await ask(client, 'seen'),
      'on_connect(userdata) protocol_input(userdata,userdata) protocol_decode(string,userdata) on_message(string,userdata) same=true');
    // Deliveries go through protocol_encode(str, conn).
    assert.equal(await ask(client, 'sub news'), 'nil');
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'news', d: 'extra' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal(await client.line(10_000), `extra (for ${id})`);

    // on_close(err, conn): a clean close gives err nil, and the connection still answers.
    const sdk = await PhpStyleConsumer.start({ host: node.apiUrl, topics: ['closed'] });
    try {
      client.close();
      const { frame } = await sdk.nextEvent(10_000);
      assert.deepEqual(frame.p.d, { err: 'nil', id });
      assert.equal(frame.p.c, id);
    } finally {
      sdk.close();
    }
  });
});

test('v1.0.1 hooks: init() runs once, when the server starts, not per connection', async () => {
  await withNode(socketNode(V101_ENTRY), async (node) => {
    const one = await greeted(node);
    const two = await greeted(node);
    assert.equal(await ask(one.client, 'inits'), '1');
    assert.equal(await ask(two.client, 'inits'), '1');
    one.client.close();
    two.client.close();
  });
});

test('v1.0.1 mix.queue.new(name, size): at most size items of that topic wait, capped by topicSize; other topics keep topicSize', async () => {
  await withNode(socketNode(V101_ENTRY, { engineYaml: '    queue:\n      topicSize: 3\n      maxTopics: 3\n' }), async (node) => {
    const { client } = await greeted(node);
    assert.equal(await ask(client, 'push small'), '1 nil');
    assert.equal(await ask(client, 'push small'), '2 nil');
    assert.equal(await ask(client, 'push small'), 'nil queue: topic "small" is full (mix.queue.new gave it 2 items)');
    for (const n of [1, 2, 3]) assert.equal(await ask(client, 'push big'), `${n} nil`);
    assert.equal(await ask(client, 'push big'), 'nil queue: topic "big" is full (topicSize is 3)');
    for (const n of [1, 2, 3]) assert.equal(await ask(client, 'push other'), `${n} nil`);
    // The capacity outlives the topic: once a consumer took its items, it still holds 2.
    const sdk = await PhpStyleConsumer.start({ host: node.apiUrl, topics: ['small'] });
    await sdk.nextEvent(10_000);
    await sdk.nextEvent(10_000);
    sdk.close();
    // Until the engine sees the consumer leave, a push is handed to it ("0 nil").
    let first = await ask(client, 'push small');
    for (let tries = 0; first === '0 nil' && tries < 200; tries++) first = await ask(client, 'push small');
    assert.equal(first, '1 nil');
    assert.equal(await ask(client, 'push small'), '2 nil');
    assert.match(await ask(client, 'push small'), /gave it 2 items/);
    // Declared names are bounded by maxTopics too (init declared two).
    assert.equal(await ask(client, 'new third'), 'true nil');
    assert.equal(await ask(client, 'new third'), 'true nil');
    assert.equal(await ask(client, 'new fourth'), 'nil queue: too many topics (maxTopics is 3)');
    client.close();
  });
});

test('v1.0.1 mix.queue.new: a bad name or size is a Lua argument error; an init() that fails stops the server from starting', async () => {
  const entry = (init: string): string => V101_ENTRY.replace(/function init\(\)[\s\S]*?\nend\n/, `function init()\n${init}\nend\n`);
  const failures = [
    ['mix.queue.new("", 1)', /init\(\) failed: .*bad argument #1 to 'new' \(queue name must not be empty\)/],
    ['mix.queue.new("q", 0)', /init\(\) failed: .*bad argument #2 to 'new' \(size must be a positive integer\)/],
    ['mix.queue.new("q", 1.5)', /size must be a positive integer/],
  ] as const;
  for (const [call, message] of failures) {
    await assert.rejects(withNode(socketNode(entry(call)), async () => undefined), message);
  }
});

test('hook model choice: servers[].hooks forces either model; the default (auto) keeps current entries on today\'s hooks, init() uncalled', async () => {
  // protocol_input(...) declares no parameter: auto would pick the current model, hooks: v1.0.1 overrides.
  const vararg = V101_ENTRY.replace('function protocol_input(buf, conn)', 'function protocol_input(...)\n  local buf, conn = ...');
  await withNode(socketNode(vararg, { socketYaml: '      hooks: v1.0.1\n' }), async (node) => {
    const { client } = await greeted(node);
    assert.match(await ask(client, 'seen'), /^on_connect\(userdata\) protocol_input\(userdata,userdata\) /);
    assert.equal(await ask(client, 'inits'), '1');
    client.close();
  });

  // An entry written for today's model that happens to define init: hooks: current (or auto) never calls it.
  const current = `
function init() inits = 1 end
function on_connect(client_id) mix.socket.tcp():send("hello " .. client_id .. "\\n") end
function on_close(client_id, err) end
function protocol_input(buf, extra) return string.find(buf:tostring(), "\\n", 1, true) or 0 end
function protocol_decode(str, extra) return str end
function protocol_encode(str) return str end
function on_message(line, extra) mix.socket.tcp():send(type(extra) .. " " .. tostring(inits) .. "\\n") end
`;
  await withNode(socketNode(current, { socketYaml: '      hooks: current\n' }), async (node) => {
    const { client } = await greeted(node);
    assert.equal(await ask(client, 'x'), 'nil nil');
    client.close();
  });
  const auto = current.replace('function protocol_input(buf, extra)', 'function protocol_input(buf)');
  await withNode(socketNode(auto), async (node) => {
    const { client } = await greeted(node);
    assert.equal(await ask(client, 'x'), 'nil nil');
    client.close();
  });
});
