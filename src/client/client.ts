import { authHeaders } from './credentials';
import { Consumer, type ConsumeOptions, type QueueHandler } from './consumer';
import { HttpApi } from './http-api';
import { NodeSocket, type NodeSocketOptions } from './node-socket';
import type { BackoffOptions, CountResult, Credentials, NodeInfo, Payload, PayloadOptions, PublishResult } from './types';

export interface ClientOptions {
  /** Any node's API server: `http://127.0.0.1:6789` (a bare `host:port` means http). */
  url: string;
  /** An `access.users` account, sent as HTTP Basic on every request and on the `/ws/v1` upgrade. */
  credentials?: Credentials;
  /** How long one request may take, in ms (default 10 000). */
  timeoutMs?: number;
  /** Reconnection delays of `/ws/v1` connections and node-list retries (default 500 ms doubling to 30 s). */
  backoff?: BackoffOptions;
  /** Ping period of `/ws/v1` connections, in ms (default 20 000; keep it under `apiServer.readTimeout`). */
  pingIntervalMs?: number;
}

/**
 * A backend's client of a connmix mesh: `publish` and `send` over HTTP, queue consumption on every node
 * over `/ws/v1`, and `node()` for a persistent connection that publishes, sends and calls `conn.call`
 * helpers without an HTTP round trip each.
 */
export class ConnmixClient {
  private readonly seed: HttpApi;
  private readonly secure: boolean;
  private readonly headers: Record<string, string>;
  private readonly consumers = new Set<Consumer>();
  private readonly sockets = new Map<string, NodeSocket>();

  constructor(private readonly options: ClientOptions) {
    const url = new URL(/^[a-z]+:\/\//i.test(options.url) ? options.url : `http://${options.url}`);
    this.secure = url.protocol === 'https:';
    this.headers = authHeaders(options.credentials);
    this.seed = new HttpApi(url.origin, this.headers, this.timeoutMs);
  }

  /** Delivers `data` to every subscriber of `channel` in the mesh. */
  publish(channel: string, data: Payload, options?: PayloadOptions): Promise<PublishResult> {
    return this.seed.publish(channel, data, options);
  }

  /** Delivers `data` to one connection; fails with code 401 (`SEND_FAILED`) when it is unknown or gone. */
  send(clientId: string, data: Payload, options?: PayloadOptions): Promise<void> {
    return this.seed.send(clientId, data, options);
  }

  /**
   * How many connections are subscribed to `channel` over the whole mesh: a video's viewers, say. The
   * node reuses an answer for about 2 s, so polling it every few seconds per channel stays cheap.
   */
  count(channel: string): Promise<CountResult> {
    return this.seed.count(channel);
  }

  /** The live nodes of the mesh. */
  nodes(): Promise<NodeInfo[]> {
    return this.seed.nodes();
  }

  /** The API versions the node serves (`["v1"]`). */
  version(): Promise<string[]> {
    return this.seed.version();
  }

  /**
   * Consumes `topics` on every node: `handler` gets each item Lua pushed with `mix.queue.push`, with the
   * connection it came on for replies. Items of one topic are shared among all its consumers.
   */
  consume(topics: string | string[], handler: QueueHandler, options?: ConsumeOptions): Consumer {
    const consumer = new Consumer(
      {
        seed: this.seed,
        httpFor: (apiServer) => new HttpApi(this.httpUrl(apiServer), this.headers, this.timeoutMs),
        socketUrl: (apiServer) => this.socketUrl(apiServer),
        socketOptions: this.socketOptions(),
        backoff: this.options.backoff,
      },
      typeof topics === 'string' ? [topics] : topics,
      handler,
      options,
    );
    this.consumers.add(consumer);
    return consumer;
  }

  /**
   * A connected `/ws/v1` socket to node `id`, or to the seed node when `id` is omitted or not in the
   * mesh (any node carries any request; the owner of a connection only saves a hop). Sockets are kept
   * and reused until `close()`.
   */
  async node(id?: string): Promise<NodeSocket> {
    const nodes = await this.seed.nodes();
    const target = nodes.find((node) => node.id === id);
    const apiServer = target?.apiServer ?? new URL(this.seed.baseUrl).host;
    let socket = this.sockets.get(apiServer);
    if (!socket) {
      socket = new NodeSocket(this.socketUrl(apiServer), this.socketOptions());
      this.sockets.set(apiServer, socket);
    }
    await socket.opened();
    return socket;
  }

  /** Closes every consumer and socket. */
  close(): void {
    for (const consumer of this.consumers) consumer.close();
    this.consumers.clear();
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? 10_000;
  }

  private httpUrl(apiServer: string): string {
    return `${this.secure ? 'https' : 'http'}://${apiServer}`;
  }

  private socketUrl(apiServer: string): string {
    return `${this.secure ? 'wss' : 'ws'}://${apiServer}/ws/v1`;
  }

  private socketOptions(): NodeSocketOptions {
    return { headers: this.headers, timeoutMs: this.timeoutMs, backoff: this.options.backoff, pingIntervalMs: this.options.pingIntervalMs };
  }
}
