import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import type { Logger } from '../log';
import { CONN_FUNCTIONS, type CallOutcome, type ConnFunction, type CountResult, type PublishResult } from '../mesh/broker';
import { QueueError, type MemoryQueue, type QueueConsumer } from '../queue/memory-queue';
import { ApiError, ErrorCode, invalidParams } from '../wire/api-errors';
import { countRequest, parseJsonKeepingIds, publishRequest, sendRequest } from './requests';
import { textFrame } from '../wire/frame';
import { whenSettled } from '../wire/maybe-promise';
import type { Reply } from '../wire/api-answers';
import { WriteBatch, blockedFor, type Batchable } from '../wire/write-batch';

/** What the WebSocket API needs from its node. */
export interface WsApiNode {
  readonly queue: MemoryQueue;
  publish(channel: string, payload: Buffer, binary: boolean): PublishResult | Promise<PublishResult>;
  send(clientId: string, payload: Buffer, binary: boolean): boolean | Promise<boolean>;
  /** Runs `fn(args)` on the connection, wherever it is; resolves to an error message or null. */
  call(clientId: string, fn: ConnFunction, args: unknown[]): CallOutcome;
  /** Subscribers of a channel over the mesh. */
  count(channel: string): CountResult | Promise<CountResult>;
}

export interface WsApiOptions {
  /** Seconds without any inbound data (requests or pings) before an API connection is closed; 0 = never. */
  readTimeout: number;
  /** Largest request in bytes. */
  maxPayload: number;
  /** Bytes that may wait to be sent to one connection; an answer past it drops the connection (1008). */
  maxBufferedBytes: number;
  /** Seconds pending writes may fail to drain before the connection is dropped (4002); 0 = never. */
  writeTimeout: number;
}

/** Bytes a consumer may have waiting to be sent before queue items wait in the queue instead. */
const CONSUMER_HIGH_WATER = 1024 * 1024;

/** A success carries `r`; an error only `E` and `i`, as CONNMIX's documented `{"E":{"c","m"},"i"}`. */

/**
 * A backend connection to `/ws/v1`: requests `{m, p, i}` answered `{E, r, i}` in request order (the
 * PHP SDK's sync mode reads "the next frame" as the answer), and `queue.pop` events pushed to it.
 * Answers and events go out through the API's write batch: a backend that pipelines requests gets
 * every answer of a turn in one socket write instead of one syscall each.
 */
class ApiSession implements QueueConsumer, Batchable {
  lastReadAt = Date.now();
  queued: Buffer | Buffer[] | null = null;
  queuedBytes = 0;
  /** Since when (ms) writes have been waiting to drain, 0 when the buffer is empty (for writeTimeout). */
  blockedSince = 0;
  readonly socket: Socket;
  /** Answers still being computed, so later answers wait for earlier ones. */
  private pending: Promise<void> | null = null;

  constructor(
    readonly ws: WebSocket,
    private readonly batch: WriteBatch,
    private readonly maxBufferedBytes: number,
    private readonly log: Logger,
  ) {
    this.socket = (ws as unknown as { _socket: Socket })._socket;
  }

  get flushable(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  offer(event: string): boolean {
    if (this.ws.readyState !== WebSocket.OPEN || this.socket.writableLength + this.queuedBytes > CONSUMER_HIGH_WATER) return false;
    this.batch.write(this, textFrame(event));
    return true;
  }

  /** Sends the answer to a request, after every earlier answer. */
  answer(reply: Reply | Promise<Reply>): void {
    if (!(reply instanceof Promise) && this.pending === null) {
      this.write(reply);
      return;
    }
    const previous = this.pending ?? Promise.resolve();
    const done: Promise<void> = Promise.all([previous, reply]).then(([, value]) => {
      this.write(value);
      if (this.pending === done) this.pending = null;
    });
    this.pending = done;
  }

  /** Closes once the answers still being computed are written, after them and the events in the batch. */
  close(code: number, reason: string): void {
    const close = () => {
      this.batch.flushNow(this);
      this.ws.close(code, reason);
    };
    if (this.pending) void this.pending.then(close);
    else close();
  }

  /**
   * Drops the connection at once, as the business servers drop a slow consumer: a backend that does
   * not read its answers would never see a close frame queued behind them.
   */
  abort(reason: string): void {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.log.warn(`ws api connection dropped: ${reason}`, { buffered: this.socket.writableLength + this.queuedBytes });
    this.ws.terminate();
  }

  private write(reply: Reply): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const frame = textFrame(JSON.stringify(reply));
    // Answers cannot be skipped like deliveries: past the limit the backend that does not read them goes.
    if (this.socket.writableLength + this.queuedBytes + frame.length > this.maxBufferedBytes) this.abort('send buffer full (1008)');
    else this.batch.write(this, frame);
  }
}

/** The engine's WebSocket API at `/ws/v1` (reference 5.2). */
export class WsApi {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<ApiSession>();
  private readonly sweeper: NodeJS.Timeout;
  /** Answers of a turn leave together; no window, so a request-answer backend waits for nothing. */
  private readonly batch = new WriteBatch(0);

  constructor(
    private readonly node: WsApiNode,
    private readonly log: Logger,
    private readonly options: WsApiOptions,
  ) {
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: options.maxPayload });
    this.sweeper = setInterval(() => this.sweep(), 1000).unref();
  }

  /** Takes over an upgrade request the API server has already authorised. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const session of this.sessions) session.close(1001, 'server shutting down');
  }

  /** Drops the connections that did not finish their close handshake. */
  terminate(): void {
    for (const session of this.sessions) session.ws.terminate();
  }

  private accept(ws: WebSocket): void {
    const session = new ApiSession(ws, this.batch, this.options.maxBufferedBytes, this.log);
    this.sessions.add(session);
    const touch = () => {
      session.lastReadAt = Date.now();
    };
    ws.on('ping', touch);
    ws.on('message', (data: Buffer) => {
      touch();
      this.request(session, data);
    });
    ws.on('error', (error) => this.log.debug('ws api connection error', { error: error.message }));
    ws.on('close', () => {
      this.sessions.delete(session);
      this.node.queue.release(session);
    });
    // A consumer that was too busy for queue items asks for them again once its buffer drains.
    session.socket.on('drain', () => this.node.queue.resume());
  }

  private request(session: ApiSession, data: Buffer): void {
    let id: unknown = null;
    try {
      const request = parseJsonKeepingIds(data.toString('utf8')) as Record<string, unknown> | null;
      if (request === null || typeof request !== 'object' || Array.isArray(request)) throw invalidParams('a request must be a JSON object {m, p, i}');
      id = request.i ?? request.id ?? null;
      const result = this.dispatch(session, request.m, unwrapParams(request.p));
      session.answer(result instanceof Promise ? result.then((r) => ok(r, id), (error) => failure(error, id)) : ok(result, id));
    } catch (error) {
      if (error instanceof SyntaxError) session.answer(failure(invalidParams(`invalid JSON: ${error.message}`), id));
      else session.answer(failure(error, id));
    }
  }

  private dispatch(session: ApiSession, method: unknown, params: Record<string, unknown>): unknown {
    switch (method) {
      case 'queue.pop':
        return this.pop(session, params);
      case 'queue.unpop':
        if (this.node.queue.release(session) === 0) throw new ApiError(ErrorCode.UNCONSUME_FAILED, 'not consuming any topic');
        return { s: true };
      case 'conn.call':
        return this.call(params);
      case 'mesh.send': {
        const { target, payload, binary } = sendRequest(params);
        return whenSettled(this.node.send(target, payload, binary), (sent) => {
          if (!sent) throw new ApiError(ErrorCode.SEND_FAILED, `send failed: client ${target} not found or gone`);
          return { s: true };
        });
      }
      case 'mesh.publish': {
        const { target, payload, binary } = publishRequest(params);
        return whenSettled(this.node.publish(target, payload, binary), (result) => ({ s: result.s, f: result.f }));
      }
      case 'mesh.count':
        return whenSettled(this.node.count(countRequest(params)), (result) => ({ n: result.n, f: result.f }));
      default:
        throw invalidParams(`unknown method ${JSON.stringify(method)}`);
    }
  }

  private pop(session: ApiSession, params: Record<string, unknown>): unknown {
    const topics = params.t;
    if (!Array.isArray(topics) || topics.length === 0 || !topics.every((t) => typeof t === 'string' && t.length > 0)) {
      throw invalidParams('p.t must be a non-empty list of topic names');
    }
    for (const topic of topics as string[]) {
      let added: boolean;
      try {
        added = this.node.queue.consume(session, topic);
      } catch (error) {
        if (error instanceof QueueError) throw new ApiError(ErrorCode.CONSUME_FAILED, error.message);
        throw error;
      }
      if (!added) throw new ApiError(ErrorCode.DUPLICATE_CONSUME, `already consuming topic "${topic}"`);
    }
    return { s: true };
  }

  private call(params: Record<string, unknown>): unknown {
    const { c, f, a } = params;
    const clientId = typeof c === 'number' && Number.isInteger(c) ? BigInt(c).toString() : c;
    if (typeof clientId !== 'string' || !/^\d{1,20}$/.test(clientId)) throw invalidParams('p.c must be a client_id');
    if (!CONN_FUNCTIONS.includes(f as ConnFunction)) throw invalidParams(`p.f must be one of ${CONN_FUNCTIONS.join(', ')}`);
    if (!Array.isArray(a)) throw invalidParams('p.a must be a list of arguments');
    checkCallArgs(f as ConnFunction, a);
    return whenSettled(this.node.call(clientId, f as ConnFunction, a), (error) => {
      if (error) throw new ApiError(ErrorCode.CALL_FAILED, error);
      return { s: true };
    });
  }

  /** Enforces readTimeout (nothing received) and writeTimeout (answers not draining), as the business servers do. */
  private sweep(): void {
    const now = Date.now();
    const { readTimeout, writeTimeout } = this.options;
    for (const session of this.sessions) {
      if (writeTimeout > 0 && blockedFor(session, now) > writeTimeout * 1000) session.abort('write timeout (4002)');
      else if (readTimeout > 0 && session.lastReadAt < now - readTimeout * 1000) session.close(4001, 'read timeout');
    }
  }
}

/** How deeply a context value may nest: Lua reads it back through values.ts, which stops at 64 levels. */
const MAX_CONTEXT_DEPTH = 64;

/** Whether `value` nests arrays/objects deeper than `limit` levels. */
function nestedDeeper(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (limit <= 0) return true;
  return Object.values(value).some((item) => nestedDeeper(item, limit - 1));
}

function checkCallArgs(fn: ConnFunction, args: unknown[]): void {
  if (fn === 'set_context_value' && (args.length !== 2 || typeof args[0] !== 'string')) {
    throw invalidParams('set_context_value takes a = [key, value]');
  }
  if (fn === 'set_context' && (args.length !== 1 || args[0] === null || typeof args[0] !== 'object' || Array.isArray(args[0]))) {
    throw invalidParams('set_context takes a = [{...}]');
  }
  if ((fn === 'set_context_value' && nestedDeeper(args[1], MAX_CONTEXT_DEPTH))
    || (fn === 'set_context' && Object.values(args[0] as object).some((value) => nestedDeeper(value, MAX_CONTEXT_DEPTH)))) {
    throw invalidParams(`context values may nest at most ${MAX_CONTEXT_DEPTH} levels`);
  }
  if ((fn === 'subscribe' || fn === 'unsubscribe') && (args.length === 0 || !args.every((x) => typeof x === 'string'))) {
    throw invalidParams(`${fn} takes a = [channel, ...]`);
  }
}

/** `p` as an object; CONNMIX's May 2022 docs wrapped it in a one-element array, which is accepted. */
function unwrapParams(params: unknown): Record<string, unknown> {
  if (Array.isArray(params)) {
    // The 2022 SDK sent queue.pop topics as a bare array.
    if (params.every((x) => typeof x === 'string')) return { t: params };
    if (params.length === 1 && params[0] !== null && typeof params[0] === 'object') return params[0] as Record<string, unknown>;
  }
  if (params === null || params === undefined) return {};
  if (typeof params !== 'object') throw invalidParams('p must be an object');
  return params as Record<string, unknown>;
}

function ok(result: unknown, id: unknown): Reply {
  return { E: null, r: result, i: id };
}

function failure(error: unknown, id: unknown): Reply {
  if (error instanceof ApiError) return { E: { c: error.code, m: error.message }, i: id };
  return { E: { c: ErrorCode.MESH_UNAVAILABLE, m: (error as Error).message ?? String(error) }, i: id };
}
