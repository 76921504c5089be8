import { Backoff } from './backoff';
import { noAnswer } from './errors';
import { HttpApi } from './http-api';
import { NodeSocket, type NodeSocketOptions } from './node-socket';
import type { BackoffOptions, NodeInfo, QueueEvent } from './types';
import { Waiters } from './waiters';

/** Handles one queue item; `node` is the connection it came on, ready for replies. */
export type QueueHandler = (event: QueueEvent, node: NodeSocket) => void | Promise<void>;

export interface ConsumeOptions {
  /** How often the node list is read again (default 60 s); up to a sixth more at random, so consumers spread out. */
  refreshMs?: number;
  /** A node's connection consumes the topics (after every reconnection too). */
  onConnect?: (node: NodeInfo, socket: NodeSocket) => void;
  /** Failures of discovery, connections, `queue.pop`, and the handler; consuming goes on after them. */
  onError?: (error: Error, node?: NodeInfo) => void;
}

/** What a consumer needs from its client. */
export interface ConsumerSetup {
  /** The node the client was pointed at: the first place to read the node list. */
  seed: HttpApi;
  /** Builds an HTTP API for another node (`host:port`), tried when the seed does not answer. */
  httpFor(apiServer: string): HttpApi;
  /** Builds the `/ws/v1` URL of a node. */
  socketUrl(apiServer: string): string;
  socketOptions: NodeSocketOptions;
  backoff?: BackoffOptions;
}

interface Consumed {
  info: NodeInfo;
  socket: NodeSocket;
}

/**
 * Consumes queue topics on every node of the mesh, like the PHP SDK's async client: it reads
 * `GET /v1/nodes`, keeps one `/ws/v1` connection per node, sends `queue.pop` on each (again after each
 * reconnection), and rereads the node list periodically to add new nodes and drop removed ones.
 */
export class Consumer {
  private readonly consumed = new Map<string, Consumed>();
  /** Nodes whose connection has consumed the topics at least once. */
  private readonly popped = new Set<string>();
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private discovered = false;
  private readonly readyWaiters = new Waiters();

  constructor(
    private readonly setup: ConsumerSetup,
    private readonly topics: string[],
    private readonly handler: QueueHandler,
    private readonly options: ConsumeOptions = {},
  ) {
    this.backoff = new Backoff(setup.backoff);
    void this.refresh();
  }

  /** The nodes this consumer is connected to (or reconnecting to). */
  get nodes(): NodeInfo[] {
    return [...this.consumed.values()].map((entry) => entry.info);
  }

  /** Resolves once the node list was read and every node on it consumes; rejects after `timeoutMs`. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    return this.readyWaiters.wait(timeoutMs, () => noAnswer(`consumer of ${this.topics.join(', ')} not ready within ${timeoutMs} ms`));
  }

  /** Stops consuming: closes every connection and stops rereading the node list. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const entry of this.consumed.values()) entry.socket.close();
    this.consumed.clear();
  }

  private async refresh(): Promise<void> {
    let nodes: NodeInfo[];
    try {
      nodes = await this.readNodes();
    } catch (error) {
      if (this.closed) return;
      this.options.onError?.(error as Error);
      this.schedule(this.backoff.next());
      return;
    }
    if (this.closed) return;
    this.backoff.reset();
    this.apply(nodes);
    this.discovered = true;
    this.checkReady();
    const refreshMs = this.options.refreshMs ?? 60_000;
    this.schedule(refreshMs * (1 + Math.random() / 6));
  }

  /** The node list from the seed, or from any node already known when the seed does not answer. */
  private async readNodes(): Promise<NodeInfo[]> {
    const sources = [this.setup.seed, ...this.nodes.map((node) => this.setup.httpFor(node.apiServer))];
    let failure: unknown;
    for (const source of sources) {
      try {
        return await source.nodes();
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }

  private apply(nodes: NodeInfo[]): void {
    const ids = new Set(nodes.map((node) => node.id));
    for (const [id, entry] of this.consumed) {
      if (ids.has(id)) continue;
      entry.socket.close();
      this.consumed.delete(id);
      this.popped.delete(id);
    }
    for (const info of nodes) {
      if (!this.consumed.has(info.id)) this.consumed.set(info.id, { info, socket: this.open(info) });
    }
  }

  private open(info: NodeInfo): NodeSocket {
    const report = (error: Error) => this.options.onError?.(error, info);
    return new NodeSocket(this.setup.socketUrl(info.apiServer), {
      ...this.setup.socketOptions,
      onOpen: (socket) => {
        socket.pop(...this.topics).then(() => {
          this.popped.add(info.id);
          this.options.onConnect?.(info, socket);
          this.checkReady();
        }, report);
      },
      onEvent: (event, socket) => {
        try {
          Promise.resolve(this.handler(event, socket)).catch(report);
        } catch (error) {
          report(error as Error);
        }
      },
      onError: report,
    });
  }

  private isReady(): boolean {
    return this.discovered && [...this.consumed.keys()].every((id) => this.popped.has(id));
  }

  private checkReady(): void {
    if (this.isReady()) this.readyWaiters.release();
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.refresh(), ms);
  }
}
