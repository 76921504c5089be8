import type { BusinessServerConfig } from '../config/schema';
import type { Logger } from '../log';
import { LuaVM, type LuaVmOptions } from '../lua/vm';
import { installMix, type MixHost, type ScriptConnection } from '../lua/mix';
import { LuaRedisPool, maxReplyBytes } from '../lua/mix/redis';
import type { Subscriber } from '../mesh/hub';
import type { NodeServices } from './node-services';

/** A business server's Lua side: its state running the entry, and the `mix.redis` connections it uses. */
export interface ScriptHost {
  vm: LuaVM<ScriptConnection>;
  redis: LuaRedisPool;
}

/** What a protocol adds to its servers' Lua state. */
export interface ScriptSetup {
  protocol: MixHost['protocol'];
  hooks: readonly string[];
  optionalHooks?: readonly string[];
  hookAliases?: LuaVmOptions['hookAliases'];
  install?: (vm: LuaVM<ScriptConnection>) => void;
  /** Modules `require` serves from the host (before any file). */
  builtins?: LuaVmOptions['builtins'];
}

/**
 * Builds the Lua state of one `engine.servers[]` entry with the `mix` API wired to the node. Every
 * connection a script sees was made by the server itself, so it is one of the hub's subscribers.
 */
export function createScriptHost(
  config: BusinessServerConfig,
  services: NodeServices,
  log: Logger,
  callBudget: number,
  setup: ScriptSetup,
): ScriptHost {
  const redis = new LuaRedisPool(services.config.engine.luavm.redis, log, maxReplyBytes(services.config.engine.luavm.limits));
  const mesh = services.mesh;
  const host: MixHost = {
    log,
    protocol: setup.protocol,
    serverOptions: new Map(config.options.map((option) => [option.name, option.value])),
    subscribe: (conn, channels) => mesh.subscribe(conn as unknown as Subscriber, channels),
    unsubscribe: (conn, channels) => mesh.unsubscribe(conn as unknown as Subscriber, channels),
    publish: (channel, payload, binary) => mesh.publish(channel, payload, binary),
    send: (clientId, payload, binary) => mesh.send(clientId, payload, binary),
    count: (channel) => mesh.count(channel),
    queuePush: (item) => services.queuePush(item),
    queueNew: (topic, size) => services.queueNew(topic, size),
    redis,
    nodeId: services.nodeId,
  };
  const vm = new LuaVM<ScriptConnection>({
    entry: config.entry,
    hooks: setup.hooks,
    optionalHooks: setup.optionalHooks,
    hookAliases: setup.hookAliases,
    callBudget,
    limits: services.config.engine.luavm.limits,
    log,
    builtins: setup.builtins,
    install: (vm) => {
      installMix(vm, host);
      setup.install?.(vm);
    },
  });
  return { vm, redis };
}

/** The periodic work of a business server: a look at its timeouts every second, and Lua hot reload. */
export function maintenanceTimers(config: BusinessServerConfig, vm: LuaVM<ScriptConnection>, tick: () => void): NodeJS.Timeout[] {
  const timers = [setInterval(tick, 1000).unref()];
  if (config.byteCodeExpires > 0) timers.push(setInterval(() => vm.reloadIfChanged(), config.byteCodeExpires * 1000).unref());
  return timers;
}
