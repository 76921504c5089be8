import { WebSocket } from 'ws';
import { Backoff } from './backoff';
import { answerError, ConnmixError, noAnswer } from './errors';
import { encodePayload } from './payload';
import type { BackoffOptions, CountResult, Payload, PayloadOptions, PublishResult, QueueEvent } from './types';
import type { CountAnswer, PublishAnswer } from '../wire/api-answers';
import { Waiters } from './waiters';

export interface NodeSocketOptions {
  /** Headers of the upgrade request (the `access.users` credentials). */
  headers?: Record<string, string>;
  /** How long a request may wait for its answer, including time spent waiting for a connection. */
  timeoutMs?: number;
  backoff?: BackoffOptions;
  /** Pings keep the connection past the engine's `apiServer.readTimeout`; a missed pong reconnects. */
  pingIntervalMs?: number;
  /** Runs on every (re)connection, before requests made while disconnected are sent. */
  onOpen?: (socket: NodeSocket) => void;
  /** Receives `queue.pop` events. */
  onEvent?: (event: QueueEvent, socket: NodeSocket) => void;
  /** Connection failures; the socket keeps reconnecting after them until closed. */
  onError?: (error: ConnmixError, socket: NodeSocket) => void;
}

interface Request {
  id: number;
  frame: string;
  resolve: (result: unknown) => void;
  reject: (error: ConnmixError) => void;
  timer: NodeJS.Timeout;
}

// One counter for the process, as the PHP SDK does, so ids stay unique across a client's sockets.
let lastRequestId = 0;

/**
 * A connection to one node's `/ws/v1` that reconnects with backoff until closed. Requests made while it
 * is down wait for the next connection (within their timeout); requests in flight when it drops fail with
 * `NO_ANSWER`, as nobody can tell whether the node ran them.
 */
export class NodeSocket {
  private ws: WebSocket | null = null;
  private closed = false;
  private readonly backoff: Backoff;
  private readonly inFlight = new Map<number, Request>();
  private readonly waiting: Request[] = [];
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private readonly openWaiters = new Waiters();
  private awaitingPong = false;

  constructor(
    /** `ws://host:port/ws/v1` */
    readonly url: string,
    private readonly options: NodeSocketOptions = {},
  ) {
    this.backoff = new Backoff(options.backoff);
    this.connect();
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Resolves once connected; rejects with `NO_ANSWER` after `timeoutMs`. */
  opened(timeoutMs = this.options.timeoutMs ?? 10_000): Promise<void> {
    if (this.connected) return Promise.resolve();
    return this.openWaiters.wait(timeoutMs, () => noAnswer(`${this.url}: not connected within ${timeoutMs} ms`));
  }

  /** Sends `{m, p, i}` and resolves with the answer's `r`, or rejects with its `E` as a ConnmixError. */
  call(method: string, params: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(noAnswer(`${this.url}: socket closed`));
    const id = ++lastRequestId;
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const request: Request = {
        id,
        frame: JSON.stringify({ m: method, p: params, i: id }),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.inFlight.delete(id);
          const index = this.waiting.indexOf(request);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(noAnswer(`${method} on ${this.url}: no answer within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      if (this.connected) this.write(request);
      else this.waiting.push(request);
    });
  }

  async publish(channel: string, data: Payload, options?: PayloadOptions): Promise<PublishResult> {
    const r = (await this.call('mesh.publish', { c: channel, ...encodePayload(data, options) })) as PublishAnswer;
    return { delivered: r.s, failed: r.f };
  }

  async send(clientId: string, data: Payload, options?: PayloadOptions): Promise<void> {
    await this.call('mesh.send', { c: clientId, ...encodePayload(data, options) });
  }

  /** Connections subscribed to `channel` over the mesh (the node reuses an answer for about 2 s). */
  async count(channel: string): Promise<CountResult> {
    const r = (await this.call('mesh.count', { c: channel })) as CountAnswer;
    return { subscribers: r.n, unansweredNodes: r.f };
  }

  async setContextValue(clientId: string, key: string, value: unknown): Promise<void> {
    await this.call('conn.call', { c: clientId, f: 'set_context_value', a: [key, value] });
  }

  /** Replaces the connection's whole context. */
  async setContext(clientId: string, context: Record<string, unknown>): Promise<void> {
    await this.call('conn.call', { c: clientId, f: 'set_context', a: [context] });
  }

  async subscribe(clientId: string, ...channels: string[]): Promise<void> {
    await this.call('conn.call', { c: clientId, f: 'subscribe', a: channels });
  }

  async unsubscribe(clientId: string, ...channels: string[]): Promise<void> {
    await this.call('conn.call', { c: clientId, f: 'unsubscribe', a: channels });
  }

  /** Starts consuming `topics` on this connection (until it drops: consumers pop again on reconnect). */
  async pop(...topics: string[]): Promise<void> {
    await this.call('queue.pop', { t: topics });
  }

  async unpop(): Promise<void> {
    await this.call('queue.unpop', {});
  }

  /** Closes for good: no more reconnections; pending requests fail with `NO_ANSWER`. */
  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.ws?.close(1000);
    this.failAll(this.waiting.splice(0), 'socket closed');
  }

  private connect(): void {
    const ws = new WebSocket(this.url, { headers: this.options.headers, perMessageDeflate: false, handshakeTimeout: this.options.timeoutMs ?? 10_000 });
    this.ws = ws;
    let failure: ConnmixError | null = null;
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      failure = new ConnmixError(status, `${this.url}: upgrade refused with HTTP ${status}`, status);
      ws.terminate();
    });
    ws.on('error', (error) => {
      failure ??= noAnswer(`${this.url}: ${error.message}`, error);
    });
    ws.on('open', () => this.onOpen(ws));
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('pong', () => {
      this.awaitingPong = false;
    });
    ws.on('close', () => {
      if (failure && !this.closed) this.options.onError?.(failure, this);
      this.onClose();
    });
  }

  private onOpen(ws: WebSocket): void {
    this.backoff.reset();
    this.startPings(ws);
    this.options.onOpen?.(this);
    this.openWaiters.release();
    for (const request of this.waiting.splice(0)) this.write(request);
  }

  private onMessage(data: Buffer): void {
    let frame: { E?: { c?: unknown; m?: unknown } | null; r?: unknown; i?: unknown; e?: string; p?: Record<string, unknown> };
    try {
      frame = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    if (frame.e === 'queue.pop' && frame.p) {
      const { n, c, t, d } = frame.p;
      this.options.onEvent?.({ nodeId: String(n), clientId: String(c), topic: String(t), data: d }, this);
      return;
    }
    const request = typeof frame.i === 'number' ? this.inFlight.get(frame.i) : undefined;
    if (!request) return;
    this.inFlight.delete(frame.i as number);
    clearTimeout(request.timer);
    if (frame.E) request.reject(answerError(frame.E));
    else request.resolve(frame.r);
  }

  private onClose(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.ws = null;
    const lost = [...this.inFlight.values()];
    this.inFlight.clear();
    this.failAll(lost, 'connection closed before the answer');
    if (!this.closed) this.reconnectTimer = setTimeout(() => this.connect(), this.backoff.next());
  }

  private write(request: Request): void {
    this.inFlight.set(request.id, request);
    this.ws?.send(request.frame);
  }

  private startPings(ws: WebSocket): void {
    this.awaitingPong = false;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        ws.terminate();
        return;
      }
      this.awaitingPong = true;
      ws.ping();
    }, this.options.pingIntervalMs ?? 20_000);
    this.pingTimer.unref();
  }

  private failAll(requests: Request[], why: string): void {
    for (const request of requests) {
      clearTimeout(request.timer);
      request.reject(noAnswer(`${this.url}: ${why}`));
    }
  }
}
