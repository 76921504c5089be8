import * as http from 'node:http';
import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Config } from './config/schema';
import { Logger } from './log';
import type { Broker, NodeInfo, PublishResult } from './mesh/broker';
import { MemoryBroker } from './mesh/memory-broker';
import { Hub } from './mesh/hub';
import { ClientIdGenerator } from './mesh/ids';
import { createHttpApi } from './api/http-api';
import { WebSocketBusinessServer, type NodeServices } from './server/websocket-server';
import type { Connection } from './server/connection';
import { CloseCode } from './server/close-codes';

/** A listener the engine opened, for the startup lines. */
export interface Listener {
  name: string;
  address: string;
}

/** The engine cannot start as configured (for example an unsupported option). */
export class EngineConfigError extends Error {}

/**
 * One node: the business servers, the hub of local subscribers, the broker that links the node to the
 * mesh, and the API server. Data flows socket → connection → Lua → hub/broker, and
 * API → broker → hub → connection.
 */
export class Engine implements NodeServices {
  readonly log: Logger;
  readonly broker: Broker;
  readonly hub: Hub;
  readonly servers: WebSocketBusinessServer[] = [];
  private api: http.Server | null = null;
  private ids: ClientIdGenerator | null = null;

  constructor(
    readonly config: Config,
    options: { log?: Logger } = {},
  ) {
    this.log = options.log ?? new Logger(config.logging.level);
    const apiAddress = advertisedAddress(config.engine.apiServer.bind, config.engine.apiServer.port);
    if (config.engine.mesh.broker !== 'memory') {
      throw new EngineConfigError(`${config.file}: engine.mesh.broker: "${config.engine.mesh.broker}" is not available yet`);
    }
    this.broker = new MemoryBroker(apiAddress);
    this.hub = new Hub(this.broker);
    config.engine.servers.forEach((server, index) => {
      if (server.protocol !== 'websocket') {
        throw new EngineConfigError(`${config.file}: engine.servers[${index}].protocol: "${server.protocol}" is not available yet`);
      }
      this.servers.push(new WebSocketBusinessServer(server, this, this.log, config.engine.luavm.callBudget));
    });
  }

  /** Starts the broker, loads every Lua entry, and opens the listeners. */
  async start(): Promise<Listener[]> {
    await this.broker.start(this.hub);
    this.ids = new ClientIdGenerator(this.broker.nodeNumber);
    const listeners: Listener[] = [];
    for (const server of this.servers) {
      const address = await server.start();
      listeners.push({ name: `websocket server ${server.vm.chunkName}`, address: formatAddress(address) });
    }
    const { port, bind } = this.config.engine.apiServer;
    const api = http.createServer(createHttpApi(this, this.log));
    await new Promise<void>((resolve, reject) => {
      api.once('error', reject);
      api.listen(port, bind, () => resolve());
    });
    this.api = api;
    listeners.push({ name: 'api server', address: formatAddress(api.address() as AddressInfo) });
    return listeners;
  }

  /** Closes every client with 1001 (so it reconnects elsewhere), then the API and the broker. */
  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop(CloseCode.GOING_AWAY)));
    if (this.api) {
      const api = this.api;
      await new Promise<void>((resolve) => {
        api.close(() => resolve());
        api.closeAllConnections();
      });
    }
    await this.broker.stop();
  }

  nextClientId(): string {
    if (!this.ids) throw new Error('engine not started');
    return this.ids.next();
  }

  attach(conn: Connection): void {
    this.hub.add(conn);
  }

  detach(conn: Connection): void {
    this.hub.remove(conn);
  }

  subscribe(conn: Connection, channels: string[]): string | null | Promise<string | null> {
    return this.hub.subscribe(conn, channels);
  }

  unsubscribe(conn: Connection, channels: string[]): string | null | Promise<string | null> {
    return this.hub.unsubscribe(conn, channels);
  }

  publish(channel: string, payload: Buffer, binary: boolean): PublishResult | Promise<PublishResult> {
    return this.broker.publish(channel, payload, binary);
  }

  send(clientId: string, payload: Buffer, binary: boolean): boolean | Promise<boolean> {
    return this.broker.send(clientId, payload, binary);
  }

  nodes(): NodeInfo[] | Promise<NodeInfo[]> {
    return this.broker.nodes();
  }
}

function formatAddress(address: AddressInfo): string {
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
