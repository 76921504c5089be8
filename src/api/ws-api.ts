import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import type { Logger } from '../log';
import type { MeshCommands } from '../mesh/mesh';
import type { MemoryQueue, QueueConsumer } from '../queue/memory-queue';
import { busy, invalidParams } from '../wire/api-errors';
import { parseJsonKeepingIds } from './requests';
import type { Reply } from '../wire/api-answers';
import * as commands from './commands';
import { textFrame } from '../wire/frame';
import { WriteBatch, blockedFor } from '../wire/write-batch';
import { Peer } from '../wire/peer';
import { whenSettled, type MaybePromise } from '../wire/maybe-promise';
import { CloseCode } from '../wire/close-codes';
import type { ByteBudget } from '../wire/byte-budget';
import { fromLongForm, isLongForm, longFormEvent, longFormFailure, longFormOk } from './ws-long-form';
import { monotonicMs } from '../wire/clock';

/** What the WebSocket API needs from its node: the mesh for `mesh.*` and `conn.call`, the queue for `queue.*`. */
export interface WsApiNode {
  readonly mesh: MeshCommands;
  readonly queue: MemoryQueue;
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
  /** The API server's `maxBytesInFlight`, shared with the HTTP requests: each request holds its frame's bytes until its command settles. */
  budget: ByteBudget;
}

/**
 * How deeply a request id may nest: answers echo it, and JSON.stringify of a value nested ~10,000 levels
 * overflows the stack (a 200 KB frame of brackets is enough).
 */
const MAX_ID_DEPTH = 64;

/** Bytes a consumer may have waiting to be sent before queue items wait in the queue instead. */
const CONSUMER_HIGH_WATER = 1024 * 1024;


/**
 * A backend connection to `/ws/v1`: requests `{m, p, i}` answered `{E, r, i}` in request order (the
 * PHP SDK's sync mode reads "the next frame" as the answer), and `queue.pop` events pushed to it.
 * Answers and events go out through the API's write batch: a backend that pipelines requests gets
 * every answer of a turn in one socket write instead of one syscall each.
 */
class ApiSession extends Peer implements QueueConsumer {
  /** Answers still being computed, so later answers wait for earlier ones. */
  private pending: Promise<void> | null = null;
  /** Set by the first long-form request (CONNMIX's 2022 format): queue events then go out in that form too. */
  longForm = false;

  constructor(
    readonly ws: WebSocket,
    socket: Socket,
    private readonly batch: WriteBatch,
    private readonly maxBufferedBytes: number,
    private readonly log: Logger,
  ) {
    super(socket);
  }

  get flushable(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  offer(event: string): boolean {
    if (this.ws.readyState !== WebSocket.OPEN || this.socket.writableLength + this.queuedBytes > CONSUMER_HIGH_WATER) return false;
    this.batch.write(this, textFrame(this.longForm ? longFormEvent(event) : event));
    return true;
  }

  /** Sends the answer to a request (a reply, or a text frame as it is), after every earlier answer. */
  answer(reply: Reply | object | string | Promise<Reply | object>): void {
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

  private write(reply: Reply | object | string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const frame = textFrame(typeof reply === 'string' ? reply : JSON.stringify(reply));
    // Answers cannot be skipped like deliveries: past the limit the backend that does not read them goes.
    if (this.socket.writableLength + this.queuedBytes + frame.length > this.maxBufferedBytes) this.abort(`send buffer full (${CloseCode.POLICY})`);
    else this.batch.write(this, frame);
  }
}

/** The engine's WebSocket API at `/ws/v1` (CONNMIX docs, websocket-api). */
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
    // The upgraded socket is the request's: the session gets it here rather than from ws's internals.
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req.socket));
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const session of this.sessions) session.close(CloseCode.GOING_AWAY, 'server shutting down');
  }

  /** Drops the connections that did not finish their close handshake. */
  terminate(): void {
    for (const session of this.sessions) session.ws.terminate();
  }

  private accept(ws: WebSocket, socket: Socket): void {
    const session = new ApiSession(ws, socket, this.batch, this.options.maxBufferedBytes, this.log);
    this.sessions.add(session);
    const touch = () => {
      session.lastReadAt = monotonicMs();
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
    // CONNMIX's docs (since August 2022) give browsers, which cannot send ping frames, a text `ping`.
    if (data.length === 4 && data.toString('latin1') === 'ping') {
      session.answer('pong');
      return;
    }
    let id: unknown = null;
    let longForm = false;
    const fail = (error: unknown): object => (longForm ? longFormFailure(commands.errorOf(error), id) : failure(error, id));
    try {
      const request = parseJsonKeepingIds(data.toString('utf8')) as Record<string, unknown> | null;
      if (request === null || typeof request !== 'object' || Array.isArray(request)) throw invalidParams('a request must be a JSON object {m, p, i}');
      longForm = isLongForm(request);
      if (longForm) session.longForm = true;
      id = longForm ? request.id ?? null : request.i ?? request.id ?? null;
      if (commands.nestedDeeper(id, MAX_ID_DEPTH)) {
        id = null;
        throw invalidParams(`i may nest at most ${MAX_ID_DEPTH} levels`);
      }
      // A command waiting on the broker keeps its payload (and the frame's parse) alive until it settles:
      // the frame holds its bytes of the budget until then, whether or not the connection stays open.
      const { budget } = this.options;
      const bytes = data.length;
      if (!budget.take(bytes)) throw busy(budget.limit);
      session.answer(whenSettled(this.run(session, request, longForm, id, fail), (answer) => {
        budget.give(bytes);
        return answer;
      }));
    } catch (error) {
      session.answer(fail(error instanceof SyntaxError ? invalidParams(`invalid JSON: ${error.message}`) : error));
    }
  }

  /** Runs a request's command: its answer in the request's form, a failure included (never a throw or a rejection). */
  private run(session: ApiSession, request: Record<string, unknown>, longForm: boolean, id: unknown,
    fail: (error: unknown) => object): MaybePromise<object> {
    try {
      const call = longForm ? fromLongForm(request.method as string, request.params) : { method: request.m, params: unwrapParams(request.p) };
      return whenSettled(this.dispatch(session, call.method, call.params),
        (r) => (longForm ? longFormOk(call.method as string, r, id) : ok(r, id)), fail);
    } catch (error) {
      return fail(error);
    }
  }

  /** Decodes `m` into a command; the commands validate `p` and shape the answer. */
  private dispatch(session: ApiSession, method: unknown, params: Record<string, unknown>): unknown {
    switch (method) {
      case 'mesh.publish':
        return commands.publish(this.node.mesh, params);
      case 'mesh.send':
        return commands.send(this.node.mesh, params);
      case 'mesh.count':
        return commands.count(this.node.mesh, params);
      case 'conn.call':
        return commands.call(this.node.mesh, params);
      case 'queue.pop':
        return commands.pop(this.node.queue, session, params);
      case 'queue.unpop':
        return commands.unpop(this.node.queue, session);
      case 'server.ping':
        // The keep-alive request of the API page from May to August 2022, whose answer named its key
        // `s` until August 5 and `m` after: both are there.
        return SERVER_PONG;
      default:
        // Only a string is echoed: any other value may be too deep to serialise.
        throw invalidParams(typeof method === 'string' ? `unknown method ${JSON.stringify(method)}` : 'm must be a method name (a string)');
    }
  }

  /** Enforces readTimeout (nothing received) and writeTimeout (answers not draining), as the business servers do. */
  private sweep(): void {
    const now = monotonicMs();
    const { readTimeout, writeTimeout } = this.options;
    for (const session of this.sessions) {
      if (writeTimeout > 0 && blockedFor(session, now) > writeTimeout * 1000) session.abort(`write timeout (${CloseCode.WRITE_TIMEOUT})`);
      else if (readTimeout > 0 && session.lastReadAt < now - readTimeout * 1000) session.close(CloseCode.READ_TIMEOUT, 'read timeout');
    }
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

const SERVER_PONG = { s: 'server.pong', m: 'server.pong' } as const;

function ok(result: unknown, id: unknown): Reply {
  return { E: null, r: result, i: id };
}

function failure(error: unknown, id: unknown): Reply {
  const { c, m } = commands.errorOf(error);
  return { E: { c, m }, i: id };
}
