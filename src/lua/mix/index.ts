import { lua, lauxlib, K, luaToJsString, checkJsString, bytesView, type LuaState, type LuaFunction } from '../fengari/index';
import type { LuaVM } from '../vm';
import type { LogLevel } from '../../config/schema';
import type { CountResult, PublishResult } from '../../mesh/broker';
import { channelError } from '../../mesh/hub';
import { MIX_UTILS } from './utils';
import { registerConnType, pushConn } from './conn';
import { settle, checkMessageType } from './settle';
import { markUntimed } from '../limits';
import { queuePush, queueNew } from './queue';
import { pushHttpModule } from './http';
import { pushRedisModule } from './redis';
import { addRedisV101 } from './redis-v101';
import { phpPackFn, phpUnpackFn } from './php-pack';
import type { MixHost, ScriptConnection } from './host';

const { lua_newtable, lua_setfield, lua_setglobal, lua_pushstring, lua_pushnil, lua_pushnumber, lua_pushboolean,
  lua_type, lua_tonumber, lua_gettop, LUA_TNUMBER } = lua;
const { luaL_setfuncs, luaL_checklstring, luaL_tolstring, luaL_argerror } = lauxlib;

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export type { MixHost, ScriptConnection } from './host';

/**
 * Installs the global `mix` table of CONNMIX's Lua API (docs: lua-api; docs/lua.md) on a server's VM: the utilities, `log` and its
 * levels, `server.option`, `websocket()` / `socket.tcp()` (the connection whose hook is running), `mesh`,
 * `queue`, `http`, `redis`, and `php_pack` / `php_unpack`.
 */
export function installMix(vm: LuaVM<ScriptConnection>, host: MixHost): void {
  const L = vm.L;
  registerConnType(vm, host);
  lua_newtable(L);
  const protocol = host.protocol ?? 'websocket';
  luaL_setfuncs(L, { ...MIX_UTILS, log: mixLog(vm, host), websocket: markUntimed(currentConn(vm, 'websocket', protocol)) }, 0);
  LEVELS.forEach((level, index) => {
    lua_pushnumber(L, index);
    lua_setfield(L, -2, K(level.toUpperCase()));
  });
  lua_newtable(L);
  luaL_setfuncs(L, { option: serverOption(host) }, 0);
  lua_setfield(L, -2, K('server'));
  lua_newtable(L);
  luaL_setfuncs(L, { tcp: markUntimed(currentConn(vm, 'socket', protocol)) }, 0);
  lua_setfield(L, -2, K('socket'));
  lua_newtable(L);
  luaL_setfuncs(L, { publish: meshPublish(vm, host), send: meshSend(vm, host), count: meshCount(vm, host) }, 0);
  lua_setfield(L, -2, K('mesh'));
  lua_newtable(L);
  luaL_setfuncs(L, { push: queuePush(vm, host), new: queueNew(host) }, 0);
  lua_setfield(L, -2, K('queue'));
  pushHttpModule(vm);
  lua_setfield(L, -2, K('http'));
  pushRedisModule(vm, host);
  addRedisV101(vm, host);
  lua_setfield(L, -2, K('redis'));
  luaL_setfuncs(L, { php_pack: phpPackFn, php_unpack: phpUnpackFn }, 0);
  lua_setglobal(L, K('mix'));
}

/** `mix.log(level, ...)`: level is mix.DEBUG..mix.ERROR (0..3) or its name; the rest is joined by spaces. */
function mixLog(vm: LuaVM<ScriptConnection>, host: MixHost): LuaFunction {
  return (L) => {
    let level: LogLevel | undefined;
    if (lua_type(L, 1) === LUA_TNUMBER) level = LEVELS[lua_tonumber(L, 1)];
    else level = LEVELS.find((name) => name === checkJsString(L, 1).toLowerCase());
    if (!level) return luaL_argerror(L, 1, K('level must be mix.DEBUG, mix.INFO, mix.WARN or mix.ERROR'));
    const parts: string[] = [];
    for (let i = 2, n = lua_gettop(L); i <= n; i++) {
      parts.push(luaToJsString(luaL_tolstring(L, i)));
      lua.lua_pop(L, 1);
    }
    host.log.write(level, parts.join(' '), { client_id: vm.current?.clientId });
    lua_pushboolean(L, true);
    return 1;
  };
}

/**
 * `mix.websocket()` (for `protocol`: websocket) or `mix.socket.tcp()` (socket) → `conn, err`: the
 * connection whose hook is running, on servers of that protocol only.
 */
function currentConn(vm: LuaVM<ScriptConnection>, protocol: 'websocket' | 'socket', serverProtocol: string): LuaFunction {
  const name = protocol === 'websocket' ? 'mix.websocket()' : 'mix.socket.tcp()';
  return (L) => {
    const conn = vm.current;
    if (protocol !== serverProtocol || !conn) {
      lua_pushnil(L);
      const why = protocol !== serverProtocol ? `${name} is for protocol: ${protocol} servers`
        : `no current connection: ${name} works inside hooks only`;
      lua_pushstring(L, Buffer.from(why));
      return 2;
    }
    pushConn(L, vm, conn);
    return 1;
  };
}

function serverOption(host: MixHost): LuaFunction {
  return (L) => {
    const value = host.serverOptions.get(checkJsString(L, 1));
    if (value === undefined) lua_pushnil(L);
    else lua_pushstring(L, Buffer.from(value));
    return 1;
  };
}

/** Pushes a mesh answer's two counts (`s, f` of a publish, `n, f` of a count). */
function pushTwoCounts(L: LuaState, first: number, second: number): number {
  lua_pushnumber(L, first);
  lua_pushnumber(L, second);
  return 2;
}

/** Pushes `nil, nil, err`: a mesh call that could not be made. */
function pushMeshFailure(L: LuaState, error: Error): number {
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushstring(L, Buffer.from(error.message));
  return 3;
}

/** `mix.mesh.publish(channel, data[, type])` → `success, fail` (or `nil, nil, err` if the broker fails). */
function meshPublish(vm: LuaVM<ScriptConnection>, host: MixHost): LuaFunction {
  const pushCounts = (L: LuaState, result: PublishResult): number => pushTwoCounts(L, result.s, result.f);
  return (L) => {
    const channel = checkJsString(L, 1);
    const data = bytesView(luaL_checklstring(L, 2));
    const binary = checkMessageType(L, 3);
    const invalid = channelError(channel);
    if (invalid) return pushMeshFailure(L, new Error(invalid));
    let answer: PublishResult | Promise<PublishResult>;
    try {
      answer = host.publish(channel, data, binary);
    } catch (error) {
      return pushMeshFailure(L, error as Error);
    }
    return settle(vm, L, answer, pushCounts, pushMeshFailure);
  };
}

/** `mix.mesh.send(client_id, data[, type])` → `err` (nil on success). */
function meshSend(vm: LuaVM<ScriptConnection>, host: MixHost): LuaFunction {
  return (L) => {
    const clientId = checkJsString(L, 1);
    const data = bytesView(luaL_checklstring(L, 2));
    const binary = checkMessageType(L, 3);
    const pushOutcome = (L: LuaState, delivered: boolean): number => {
      if (delivered) lua_pushnil(L);
      else lua_pushstring(L, Buffer.from(`send failed: client ${clientId} not found or gone`));
      return 1;
    };
    return settle(vm, L, host.send(clientId, data, binary), pushOutcome, (L, error) => {
      lua_pushstring(L, Buffer.from(`send failed: ${error.message}`));
      return 1;
    });
  };
}

/**
 * `mix.mesh.count(channel)` → `n, f`: connections subscribed to `channel` over the mesh, and nodes that
 * did not answer in time (or `nil, nil, err`). Answers may be a couple of seconds old (see subscriber-counts.ts).
 */
function meshCount(vm: LuaVM<ScriptConnection>, host: MixHost): LuaFunction {
  const pushCounts = (L: LuaState, result: CountResult): number => pushTwoCounts(L, result.n, result.f);
  return (L) => {
    const channel = checkJsString(L, 1);
    const invalid = channelError(channel) ?? (host.count ? null : 'mix.mesh.count is not available on this host');
    if (invalid) return pushMeshFailure(L, new Error(invalid));
    let answer: CountResult | Promise<CountResult>;
    try {
      answer = (host.count as NonNullable<MixHost['count']>)(channel);
    } catch (error) {
      return pushMeshFailure(L, error as Error);
    }
    return settle(vm, L, answer, pushCounts, pushMeshFailure);
  };
}
