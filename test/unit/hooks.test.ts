import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { LuaVM, LuaLoadError, type LuaHookError } from '../../src/lua/vm';
import { WebSocketHooks, SocketHooks, WEBSOCKET_HOOKS, SOCKET_HOOKS, INIT_HOOK, type DecodedMessage } from '../../src/lua/hooks';
import { installMix, type ScriptConnection } from '../../src/lua/mix';
import { ConnectionContext } from '../../src/session/context';
import { registerBufferType } from '../../src/lua/mix/buffer';
import { lua, type LuaState } from '../../src/lua/fengari/index';
import { luaFolder, memoryLogger, toJs } from '../support/lua-harness';
import type { LuaValue } from '../../src/lua/values';

// The typed hook calls of lua/hooks.ts on an in-process Lua state: what each hook receives and how its
// answer comes back, without a server or a socket.

/** A connection as scripts see it, with nothing behind it. */
function fakeConn(clientId: string): ScriptConnection {
  return { clientId, remoteAddr: '127.0.0.1:5000', context: new ConnectionContext(), open: true, luaValue: null, luaGeneration: 0, send: () => true, close: () => undefined };
}

/** A VM running `source` with the mix API and an `emit(...)` global whose calls are collected. */
function hookVm(protocol: 'websocket' | 'socket', source: string) {
  const { log } = memoryLogger();
  const emitted: LuaValue[][] = [];
  const vm = new LuaVM<ScriptConnection>({
    entry: path.join(luaFolder({ 'entry.lua': source }), 'entry.lua'),
    hooks: protocol === 'websocket' ? WEBSOCKET_HOOKS : SOCKET_HOOKS,
    optionalHooks: protocol === 'socket' ? [INIT_HOOK] : [],
    callBudget: 100,
    log,
    install: (vm) => {
      installMix(vm, {
        log,
        protocol,
        serverOptions: new Map(),
        subscribe: () => null,
        unsubscribe: () => null,
        publish: () => ({ s: 0, f: 0 }),
        send: () => false,
        queuePush: () => 0,
        queueNew: () => undefined,
      });
      if (protocol === 'socket') registerBufferType(vm.L);
      lua.lua_pushjsfunction(vm.L, (L: LuaState) => {
        const values: LuaValue[] = [];
        for (let i = 1, n = lua.lua_gettop(L); i <= n; i++) values.push(toJs(L, i));
        emitted.push(values);
        return 0;
      });
      lua.lua_setglobal(vm.L, Buffer.from('emit'));
    },
  });
  vm.load();
  return { vm, emitted };
}

/** Runs a hook call that takes a plain `done`, and resolves with its error (null when it succeeded). */
function settled(call: (done: (error: LuaHookError | null) => void) => void): Promise<LuaHookError | null> {
  return new Promise((resolve) => call(resolve));
}

function withResult<T>(call: (done: (error: LuaHookError | null, result: T) => void) => void): Promise<{ error: LuaHookError | null; result: T }> {
  return new Promise((resolve) => call((error, result) => resolve({ error, result })));
}

test('websocket hooks: on_handshake gets client_id and two string tables, on_message the msg table, on_close the error or nil', async () => {
  const { vm, emitted } = hookVm('websocket', `
    function on_handshake(client_id, headers, server) emit(client_id, headers, server) end
    function on_message(msg) emit(msg.type, msg.finish, msg.data:byte(1, -1)) end
    function on_close(client_id, err) emit(client_id, err) end`);
  const hooks = new WebSocketHooks(vm);
  const conn = fakeConn('1001');
  assert.equal(await settled((done) => hooks.onHandshake(conn, { 'User-Agent': 'test' }, { Method: 'GET', RequestUri: '/chat' }, done)), null);
  assert.equal(await settled((done) => hooks.onMessage(conn, Buffer.from('hello'), false, done)), null);
  assert.equal(await settled((done) => hooks.onMessage(conn, Buffer.from([0, 0xff]), true, done)), null);
  assert.equal(await settled((done) => hooks.onClose(conn, 'close 1006', done)), null);
  assert.equal(await settled((done) => hooks.onClose(conn, null, done)), null);
  assert.deepEqual(emitted, [
    ['1001', { 'User-Agent': 'test' }, { Method: 'GET', RequestUri: '/chat' }],
    ['text', true, ...Buffer.from('hello')],
    ['binary', true, 0, 0xff],
    ['1001', 'close 1006'],
    ['1001', null],
  ]);
});

test('websocket hooks: each connection has one userdata, held by the connection and not anchored in the registry', async () => {
  const { vm, emitted } = hookVm('websocket', `
    function on_handshake() end
    function on_message(msg) local conn = mix.websocket() emit(tostring(conn), rawequal(conn, mix.websocket())) end
    function on_close() end`);
  const hooks = new WebSocketHooks(vm);
  const registrySize = () => {
    lua.lua_pushvalue(vm.L, lua.LUA_REGISTRYINDEX);
    const size = lua.lua_rawlen(vm.L, -1);
    lua.lua_pop(vm.L, 1);
    return size;
  };
  const before = registrySize();
  const conns = Array.from({ length: 200 }, (_, i) => fakeConn(String(i + 1)));
  for (const conn of [...conns, conns[0]]) assert.equal(await settled((done) => hooks.onMessage(conn, Buffer.from('x'), false, done)), null);
  assert.deepEqual(emitted[0], ['conn: 1', true]);
  assert.deepEqual(emitted[200], ['conn: 1', true], 'the same connection, the same userdata');
  assert.equal(registrySize(), before, 'the registry does not grow with connections');
});

test('websocket hooks: a hook error comes back to done with the hook name and traceback', async () => {
  const { vm } = hookVm('websocket', `
    function on_handshake() end
    function on_message(msg) error("bad message " .. msg.data) end
    function on_close() end`);
  const hooks = new WebSocketHooks(vm);
  assert.equal(vm.isEmptyHook('on_handshake'), true);
  assert.equal(vm.isEmptyHook('on_message'), false);
  const error = await settled((done) => hooks.onMessage(fakeConn('7'), Buffer.from('x'), false, done));
  assert.equal(error?.hook, 'on_message');
  assert.match(error?.traceback ?? '', /bad message x/);
});

const CURRENT_SOCKET = `
  function on_connect(client_id) emit("connect", client_id) end
  function on_close(client_id, err) emit("close", client_id, err) end
  function protocol_input(buf)
    local s = buf:tostring()
    if s == "str" then return "three" end
    if s == "none" then return end
    local i = string.find(s, "\\n", 1, true)
    if i then return i end
    return 0
  end
  function protocol_decode(str)
    if str == "skip\\n" then return nil end
    return { line = str }
  end
  function on_message(msg) emit("message", msg.line) end
  function protocol_encode(str)
    if str == "empty" then return "" end
    if str == "number" then return 5 end
    return "<" .. str .. ">"
  end`;

test('socket hooks, current model: client_id arguments; protocol_input answers a number or says why not', async () => {
  const { vm, emitted } = hookVm('socket', CURRENT_SOCKET);
  const hooks = new SocketHooks(vm);
  assert.equal(hooks.resolveModel('auto'), 'current');
  const conn = fakeConn('42');
  assert.equal(await settled((done) => hooks.onConnect(conn, done)), null);
  assert.equal(await settled((done) => hooks.onClose(conn, 'reset', done)), null);
  assert.equal(await settled((done) => hooks.onClose(conn, null, done)), null);
  assert.deepEqual(emitted, [['connect', '42'], ['close', '42', 'reset'], ['close', '42', null]]);
  assert.deepEqual(await withResult<number | string>((done) => hooks.protocolInput(conn, Buffer.from('ab\ncd'), done)), { error: null, result: 3 });
  assert.deepEqual(await withResult<number | string>((done) => hooks.protocolInput(conn, Buffer.from('abc'), done)), { error: null, result: 0 });
  assert.deepEqual(await withResult<number | string>((done) => hooks.protocolInput(conn, Buffer.from('str'), done)),
    { error: null, result: 'protocol_input must return an integer, got string' });
  assert.deepEqual(await withResult<number | string>((done) => hooks.protocolInput(conn, Buffer.from('none'), done)),
    { error: null, result: 'protocol_input must return an integer, got no value' });
});

test('socket hooks, current model: protocol_decode hands its value to on_message; nil is no message', async () => {
  const { vm, emitted } = hookVm('socket', CURRENT_SOCKET);
  const hooks = new SocketHooks(vm);
  hooks.resolveModel('current');
  const conn = fakeConn('42');
  const skipped = await withResult<DecodedMessage | null>((done) => hooks.protocolDecode(conn, Buffer.from('skip\n'), done));
  assert.deepEqual(skipped, { error: null, result: null });
  const decoded = await withResult<DecodedMessage | null>((done) => hooks.protocolDecode(conn, Buffer.from('hi\n'), done));
  assert.equal(decoded.error, null);
  assert.notEqual(decoded.result, null);
  assert.equal(await settled((done) => hooks.onMessage(conn, decoded.result as DecodedMessage, done)), null);
  assert.deepEqual(emitted, [['message', 'hi\n']]);
});

test('socket hooks: protocol_decode coroutines serve later calls once on_message took the value, or when it returned nil', async () => {
  const { vm, emitted } = hookVm('socket', `
    local seen, count = {}, 0
    function on_connect(client_id) end
    function on_close(client_id, err) end
    function protocol_input(buf) return 0 end
    function protocol_decode(str)
      local co = coroutine.running()
      if not seen[co] then seen[co] = true; count = count + 1 end
      if str == "skip" then return nil end
      return str
    end
    function on_message(msg) emit(msg, count) end
    function protocol_encode(str) return str end`);
  const hooks = new SocketHooks(vm);
  hooks.resolveModel('current');
  const conn = fakeConn('42');
  for (let i = 1; i <= 10; i++) {
    const skipped = await withResult<DecodedMessage | null>((done) => hooks.protocolDecode(conn, Buffer.from('skip'), done));
    assert.deepEqual(skipped, { error: null, result: null });
    const decoded = await withResult<DecodedMessage | null>((done) => hooks.protocolDecode(conn, Buffer.from(`m${i}`), done));
    assert.equal(decoded.error, null);
    assert.equal(await settled((done) => hooks.onMessage(conn, decoded.result as DecodedMessage, done)), null);
  }
  // Twenty decode calls in, a few coroutines took turns; one made per decode would count twenty.
  assert.deepEqual(emitted.map(([message]) => message), Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
  const used = emitted[emitted.length - 1][1] as number;
  assert.ok(used <= 3, `protocol_decode ran in ${used} coroutines`);
});

test('socket hooks: protocol_encode gives the bytes, or names what it got instead', async () => {
  const { vm } = hookVm('socket', CURRENT_SOCKET);
  const hooks = new SocketHooks(vm);
  hooks.resolveModel('current');
  const conn = fakeConn('42');
  const encoded = await withResult<Buffer | string>((done) => hooks.protocolEncode(conn, Buffer.from('hi'), done));
  assert.equal(encoded.error, null);
  assert.ok(Buffer.isBuffer(encoded.result));
  assert.equal(encoded.result.toString(), '<hi>');
  assert.deepEqual(await withResult((done) => hooks.protocolEncode(conn, Buffer.from('empty'), done)), { error: null, result: 'empty string' });
  assert.deepEqual(await withResult((done) => hooks.protocolEncode(conn, Buffer.from('number'), done)), { error: null, result: 'number' });
});

test('socket hooks, v1.0.1 model: chosen by protocol_input(buf, conn); the connection is the last argument and init() runs', async () => {
  const { vm, emitted } = hookVm('socket', `
    function init() emit("init") end
    function on_connect(conn) emit("connect", conn:client_id()) end
    function on_close(err, conn) emit("close", err, conn:client_id()) end
    function protocol_input(buf, conn) emit("input", buf:tostring(), conn:client_id()) return buf:length() end
    function protocol_decode(str, conn) emit("decode", str, conn:client_id()) return str end
    function on_message(msg, conn) emit("message", msg, conn:client_id()) end
    function protocol_encode(str, conn) return str .. "@" .. conn:client_id() end`);
  const hooks = new SocketHooks(vm);
  assert.equal(hooks.resolveModel('auto'), 'v1.0.1');
  assert.equal(hooks.model, 'v1.0.1');
  await hooks.init();
  const conn = fakeConn('77');
  assert.equal(await settled((done) => hooks.onConnect(conn, done)), null);
  assert.deepEqual(await withResult((done) => hooks.protocolInput(conn, Buffer.from('abc'), done)), { error: null, result: 3 });
  const decoded = await withResult<DecodedMessage | null>((done) => hooks.protocolDecode(conn, Buffer.from('abc'), done));
  assert.equal(await settled((done) => hooks.onMessage(conn, decoded.result as DecodedMessage, done)), null);
  const encoded = await withResult<Buffer | string>((done) => hooks.protocolEncode(conn, Buffer.from('out'), done));
  assert.equal(encoded.result.toString(), 'out@77');
  assert.equal(await settled((done) => hooks.onClose(conn, 'gone', done)), null);
  assert.deepEqual(emitted, [
    ['init'], ['connect', '77'], ['input', 'abc', '77'], ['decode', 'abc', '77'], ['message', 'abc', '77'], ['close', 'gone', '77'],
  ]);
});

test('socket hooks: servers[].hooks forces the model; a failing init() is a load error', async () => {
  const { vm } = hookVm('socket', `${CURRENT_SOCKET}\nfunction init() error("no queue") end`);
  const hooks = new SocketHooks(vm);
  assert.equal(hooks.resolveModel('v1.0.1'), 'v1.0.1');
  await assert.rejects(hooks.init(), (error: Error) => error instanceof LuaLoadError && /init\(\) failed: .*no queue/.test(error.message));
  assert.equal(hooks.resolveModel('current'), 'current');
});
