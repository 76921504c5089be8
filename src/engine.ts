import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Config } from './config/schema';
import { watchConfig, changedKeys, HOT_KEYS } from './config/watch';
import { Logger } from './log';
import type { Broker } from './mesh/broker';
import { MemoryBroker } from './mesh/memory-broker';
import { RedisBroker } from './mesh/redis-broker';
import { Hub } from './mesh/hub';
import { Mesh } from './mesh/mesh';
import { Metrics } from './metrics';
import { ApiServer } from './api/api-server';
import { CenterServer } from './api/center-server';
import { MemoryQueue, QueueError, type QueueItem } from './queue/memory-queue';
import { WebSocketBusinessServer } from './server/websocket-server';
import type { NodeServices } from './server/node-services';
import { SocketBusinessServer } from './server/socket-server';
import { CloseCode } from './wire/close-codes';
import { FdGuard, openFileLimit } from './server/fd-guard';
import { ByteBudget } from './wire/byte-budget';

/** How often the yaml file is checked for changes to its hot keys. */
const CONFIG_POLL_MS = 1000;

/** A listener the engine opened, for the startup lines. */
export interface Listener {
  name: string;
  address: string;
}

/** The engine cannot start as configured (for example an unsupported option). */
export class EngineConfigError extends Error {}

/**
 * One node, wired: the business servers, the hub of local subscribers, the broker that links the node
 * to the mesh, the Mesh in front of them, and the API server. The engine builds, starts, stops and
 * reloads them; traffic goes through the Mesh (socket → connection → Lua → mesh, API → mesh → hub →
 * connection).
 */
export class Engine implements NodeServices {
  readonly log: Logger;
  readonly broker: Broker;
  readonly hub: Hub;
  readonly mesh: Mesh;
  readonly metrics: Metrics;
  readonly servers: (WebSocketBusinessServer | SocketBusinessServer)[] = [];
  readonly fdGuard: FdGuard;
  /** The bytes all connection contexts of this process hold, under `engine.maxContextBytes`. */
  readonly contexts: ByteBudget;
  private api: ApiServer | null = null;
  /** CONNMIX's center API, served beside the node by `dev` and `single`. */
  private center: CenterServer | null = null;
  private readonly centerApi: boolean;
  private memoryQueue: MemoryQueue | null = null;
  private unwatchConfig: (() => void) | null = null;
  private currentConfig: Config;
  /** The connections this process may hold under `engine.maxConnections` (0 = no limit). */
  private readonly connectionShare: number;

  /** The running config: as loaded, plus the hot keys changed since. */
  get config(): Config {
    return this.currentConfig;
  }

  constructor(
    config: Config,
    options: {
      log?: Logger;
      workers?: number;
      /** Also serve the center API on `center.apiServer`, listing this node's mesh (`dev`, `single`). */
      centerApi?: boolean;
    } = {},
  ) {
    this.currentConfig = config;
    this.centerApi = options.centerApi ?? false;
    // Workers are handed connections in turn, so each holding its share caps the engine as a whole.
    this.connectionShare = Math.ceil(config.engine.maxConnections / (options.workers ?? 1));
    this.log = options.log ?? new Logger(config.logging.level);
    const apiAddress = advertisedAddress(config.engine.apiServer.bind, config.engine.apiServer.port);
    this.broker =
      config.engine.mesh.broker === 'redis'
        ? new RedisBroker(config.engine.mesh.redis, apiAddress, this.log)
        : new MemoryBroker(apiAddress);
    this.metrics = new Metrics(config.prometheus.summary, {
      clients: (protocol) => this.servers.reduce((sum, server) => sum + (server.protocol === protocol ? server.connectionCount : 0), 0),
      channels: () => this.hub.channelCount,
      queueWaiting: () => this.memoryQueue?.waitingItems ?? 0,
      queueBytes: () => this.memoryQueue?.waitingBytes ?? 0,
      contextBytes: () => this.contexts.held,
      brokerReady: () => this.broker.ready(),
      logDropped: () => this.log.dropped,
      meshExpired: () => (this.broker instanceof RedisBroker ? this.broker.expired : 0),
      meshSubscriptionRepairs: () => (this.broker instanceof RedisBroker ? this.broker.subscriptionRepairs : 0),
      meshSubscriptions: () => (this.broker instanceof RedisBroker ? this.broker.subscriptions() : { wanted: 0, unsynced: 0, queued: 0 }),
    }, { node: this.broker.nodeId });
    this.hub = new Hub(this.broker, this.metrics);
    this.mesh = new Mesh(this.broker, this.hub, this.metrics, { localOnly: this.broker instanceof MemoryBroker });
    this.fdGuard = new FdGuard(openFileLimit(), config.engine.fdReserve, this.log, this.metrics);
    this.contexts = new ByteBudget(config.engine.maxContextBytes);
    for (const server of config.engine.servers) {
      const Server = server.protocol === 'socket' ? SocketBusinessServer : WebSocketBusinessServer;
      this.servers.push(new Server(server, this, this.log, config.engine.luavm.callBudget, this.metrics));
    }
  }

  /** Starts the broker, loads every Lua entry, and opens the listeners. */
  async start(): Promise<Listener[]> {
    await this.broker.start(this.hub);
    // Before the servers: a v1.0.1 entry's init() creates its queues as its server starts.
    this.memoryQueue = new MemoryQueue(this.broker.nodeId, this.config.engine.luavm.queue);
    this.fdGuard.start();
    const listeners: Listener[] = [];
    for (const server of this.servers) {
      const address = await server.start();
      const protocol = server instanceof SocketBusinessServer ? 'socket' : 'websocket';
      listeners.push({ name: `${protocol} server ${server.vm.chunkName}`, address: formatAddress(address) });
    }
    this.api = new ApiServer(this.config.engine.apiServer, { mesh: this.mesh, queue: this.queue }, this.config.access.users, this.log, this.metrics, this.fdGuard);
    const apiAddress = await this.api.start();
    this.mesh.setServing(true);
    listeners.push({ name: 'api server', address: formatAddress(apiAddress) });
    if (this.centerApi) {
      this.center = new CenterServer(this.config.center.apiServer, this.mesh, this.config.access.users, this.log, this.fdGuard);
      listeners.push({ name: 'center server', address: formatAddress(await this.center.start()) });
    }
    if (this.config.file) {
      this.unwatchConfig = watchConfig(this.config.file, CONFIG_POLL_MS, (next) => this.applyConfig(next), (error) =>
        this.log.error('config reload failed, the running config stays', { error: error.message }),
      );
    }
    return listeners;
  }

  /**
   * Graceful stop: every listener stops accepting at once; the node leaves the node list while every
   * client is closed with 1001 (so it reconnects to another node) and its on_close hook runs; then the
   * API's connections close, once the requests in flight are answered (their publishes reach the mesh)
   * and the queue consumers got what those on_close hooks pushed; only then does the node disconnect
   * from the mesh. Each step is bounded, so the whole stop takes a few seconds at most.
   */
  async stop(): Promise<void> {
    this.mesh.setServing(false);
    this.unwatchConfig?.();
    this.api?.stopAccepting();
    await Promise.all([this.broker.leave(), ...this.servers.map((server) => server.stop(CloseCode.GOING_AWAY))]);
    await Promise.all([this.api?.stop(), this.center?.stop()]);
    this.hub.close();
    await this.broker.stop();
    this.fdGuard.stop();
  }

  /** The node's memory queue (`mix.queue.push` → `/ws/v1 queue.pop`). */
  get queue(): MemoryQueue {
    if (!this.memoryQueue) throw new Error('engine not started');
    return this.memoryQueue;
  }

  /** Applies the hot keys of a new config version and names the changed keys that need a restart. */
  applyConfig(next: Config): void {
    const current = this.config;
    if (next.logging.level !== current.logging.level) {
      this.log.setLevel(next.logging.level);
      this.log.info('logging.level changed', { level: next.logging.level });
    }
    if (JSON.stringify(next.access) !== JSON.stringify(current.access)) {
      this.api?.updateUsers(next.access.users);
      this.center?.updateUsers(next.access.users);
      this.log.info('access changed', { users: next.access.users.length });
    }
    const cold = changedKeys(current, next).filter((key) => !HOT_KEYS.some((hot) => key === hot || key.startsWith(`${hot}.`)));
    if (cold.length > 0) this.log.warn('config keys changed that need a restart', { keys: cold.join(',') });
    this.currentConfig = { ...current, logging: { ...current.logging, level: next.logging.level }, access: next.access };
  }

  get nodeId(): string {
    return this.broker.nodeId;
  }

  queuePush(item: QueueItem): number {
    try {
      return this.queue.push(item);
    } catch (error) {
      if (error instanceof QueueError) this.metrics.queueRefused.inc({ reason: error.reason });
      throw error;
    }
  }

  queueNew(topic: string, size: number): void {
    this.queue.declare(topic, size);
  }

  nodeFull(): boolean {
    return this.connectionShare > 0 && this.servers.reduce((sum, server) => sum + server.connectionCount, 0) >= this.connectionShare;
  }
}

export function formatAddress(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

/** The API address other nodes and SDKs should use: the bind address, or this host's first external IPv4. */
export function advertisedAddress(bind: string, port: number): string {
  if (bind !== '0.0.0.0' && bind !== '::' && bind !== '') return bind.includes(':') ? `[${bind}]:${port}` : `${bind}:${port}`;
  for (const addresses of Object.values(os.networkInterfaces())) {
    const external = addresses?.find((address) => address.family === 'IPv4' && !address.internal);
    if (external) return `${external.address}:${port}`;
  }
  return `127.0.0.1:${port}`;
}
