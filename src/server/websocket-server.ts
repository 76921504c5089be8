import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { BusinessServerConfig } from '../config/schema';
import type { Logger } from '../log';
import { lua, K, type LuaState } from '../lua/fengari/index';
import { LuaVM, type LuaHookError, type PushArgs } from '../lua/vm';
import { HookQueue } from '../session/hook-queue';
import type { ScriptConnection } from '../lua/mix';
import { releaseConn } from '../lua/mix/conn';
import { LuaRedisPool } from '../lua/mix/redis';
import { Connection, type ConnectionLimits } from './connection';
import type { NodeServices } from './node-services';
import { createScriptHost, maintenanceTimers } from './script-host';
import { WriteBatch, blockedFor } from '../wire/write-batch';
import { Admission } from './admission';
import { CloseCode, closeCodeLabel, protocolErrorCode } from '../wire/close-codes';
import { canonicalHeaders, remoteAddress, clientIp, pathMatches, globPattern, destroySocket } from '../wire/http-request';
import { refuse } from '../wire/refusal';
import { secondsSince, type Metrics } from '../metrics';

const { lua_pushstring, lua_createtable, lua_setfield, lua_pushboolean, lua_pushnil } = lua;

/** Hooks a `protocol: websocket` entry must define (reference 3.2). */
export const WEBSOCKET_HOOKS = ['on_handshake', 'on_message', 'on_close'] as const;

/** Close codes that end a connection without an error for on_close (1005: the peer sent no code). */
const CLEAN_CLOSES = new Set<number>([CloseCode.NORMAL, CloseCode.GOING_AWAY, 1005]);

/** Events one connection may have waiting behind a hook call that waits; more closes it with 1008. */
const MAX_PENDING_EVENTS = 1024;

interface Session {
  readonly conn: Connection;
  readonly hooks: HookQueue;
  readonly ip: string;
  /** The second (epoch) `inWindow` counts messages for, for maxMessagesPerSecond. */
  window: number;
  inWindow: number;
  /** Bytes of messages waiting in `hooks`; past maxPendingBytes the socket is not read until they run. */
  pendingBytes: number;
  /** Reading is paused because of pendingBytes. */
  paused: boolean;
}

/**
 * One `engine.servers[]` entry with `protocol: websocket`: an HTTP listener that upgrades requests on
 * its `path`, one Lua state running the entry's hooks, and the connections it accepted.
 */
export class WebSocketBusinessServer {
  readonly vm: LuaVM<ScriptConnection>;
  private readonly http: http.Server;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<Connection, Session>();
  private readonly path: string;
  private readonly timers: NodeJS.Timeout[] = [];
  /** What every connection of this server shares: its limits and its write batch. */
  private readonly limits: ConnectionLimits;
  /** Set by stop(): upgrades that arrive while the server drains are refused. */
  private stopping = false;
  private readonly redis: LuaRedisPool;
  private readonly admission: Admission;
  /** The Origin allow-list as patterns, or null when every origin is allowed. */
  private readonly origins: RegExp[] | null;
  /** Sockets counted by Admission.handshakeRefused, with their IP, until they upgrade or close. */
  private readonly handshaking = new WeakMap<Socket, string>();

  constructor(
    private readonly config: BusinessServerConfig,
    private readonly services: NodeServices,
    private readonly log: Logger,
    callBudget: number,
    private readonly metrics?: Metrics,
  ) {
    this.admission = new Admission(config, () => services.nodeFull());
    this.limits = {
      maxBufferedBytes: config.maxBufferedBytes,
      softBufferedBytes: config.softBufferedBytes,
      maxChannels: config.maxChannelsPerConnection,
      batch: new WriteBatch(config.writeWindow),
      metrics,
    };
    this.origins = config.origins.length > 0 ? config.origins.map(globPattern) : null;
    this.path = config.options.find((option) => option.name === 'path')?.value ?? '/';
    ({ vm: this.vm, redis: this.redis } = createScriptHost(config, services, log, callBudget, {
      protocol: 'websocket',
      hooks: WEBSOCKET_HOOKS,
    }));
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.http = http.createServer({
      // The upgrade request must arrive within handshakeTimeout; Node checks every connectionsCheckingInterval.
      headersTimeout: config.handshakeTimeout * 1000,
      requestTimeout: config.handshakeTimeout * 1000,
      connectionsCheckingInterval: Math.min(1000, config.handshakeTimeout * 1000),
    }, (req, res) => {
      const upgrade = pathMatches(this.path, req.url);
      refuse(res, upgrade ? 426 : 404, { body: upgrade ? 'Upgrade Required\n' : 'Not Found\n', contentType: 'text/plain' });
    });
    this.http.on('connection', (socket: Socket) => this.connected(socket));
    this.http.on('upgrade', (req, socket, head) => {
      this.handshakeEnded(req.socket);
      socket.on('error', destroySocket);
      const refusal = this.refusal(req);
      if (refusal) {
        this.metrics?.refused.inc({ reason: refusal.reason });
        refuse(socket, refusal.status);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
    });
    this.http.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') this.metrics?.refused.inc({ reason: 'handshake_timeout' });
      socket.destroy();
    });
  }

  readonly protocol = 'websocket' as const;

  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Loads the Lua entry (throws LuaLoadError) and starts listening. */
  async start(): Promise<AddressInfo> {
    this.vm.load();
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.config.port, this.config.bind, () => {
        this.http.off('error', reject);
        // accept() failing (EMFILE while the table is full) must not be an unhandled 'error' event.
        this.http.on('error', (error) => this.log.warn('websocket server: accept failed', { error: error.message }));
        resolve();
      });
    });
    this.timers.push(...maintenanceTimers(this.config, this.vm, () => this.sweep()));
    return this.http.address() as AddressInfo;
  }

  /** Stops accepting, closes every connection with `code`, and waits for their on_close hooks. */
  async stop(code: number = CloseCode.GOING_AWAY): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    for (const conn of this.sessions.keys()) conn.close(code, 'server shutting down');
    const deadline = Date.now() + 2000;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const conn of this.sessions.keys()) conn.ws.terminate();
    this.http.closeAllConnections();
    await closed;
    this.redis.close();
  }

  /**
   * A TCP connection arrived, before its upgrade request: the per-IP limit (counting unfinished
   * handshakes), then the descriptor guard may refuse it; handshakeTimeout ends it if it stays silent.
   */
  private connected(socket: Socket): void {
    const ip = clientIp(socket);
    if (this.admission.handshakeRefused(ip)) {
      this.metrics?.refused.inc({ reason: 'max_connections_per_ip' });
      socket.destroy();
      return;
    }
    if (this.config.maxConnectionsPerIp > 0) {
      this.handshaking.set(socket, ip);
      socket.once('close', () => this.handshakeEnded(socket));
    }
    this.services.fdGuard?.admit(socket, 'business');
  }

  private handshakeEnded(socket: Socket): void {
    const ip = this.handshaking.get(socket);
    if (ip === undefined) return;
    this.handshaking.delete(socket);
    this.admission.handshakeEnded(ip);
  }

  /** Why an upgrade request is refused (draining, path, origin, connection limits), or null to accept it. */
  private refusal(req: http.IncomingMessage): { status: number; reason: string } | null {
    // An upgrade that raced the stop (cluster workers get connections until the primary knows) is told to retry elsewhere.
    if (this.stopping) return { status: 503, reason: 'shutting_down' };
    if (!pathMatches(this.path, req.url)) return { status: 404, reason: 'path' };
    if (this.origins && !this.origins.some((pattern) => pattern.test(req.headers.origin ?? ''))) {
      return { status: 403, reason: 'origin' };
    }
    const reason = this.admission.refusal(clientIp(req.socket), this.sessions.size);
    if (reason === null) return null;
    return { status: reason === 'max_connections_per_ip' ? 429 : 503, reason };
  }

  private accept(ws: WebSocket, req: http.IncomingMessage): void {
    const conn = new Connection(ws, this.services.mesh.nextClientId(), remoteAddress(req.socket), this.limits);
    const ip = clientIp(req.socket);
    this.admission.admitted(ip);
    const session: Session = { conn, hooks: new HookQueue(MAX_PENDING_EVENTS), ip, window: 0, inWindow: 0, pendingBytes: 0, paused: false };
    this.sessions.set(conn, session);
    this.services.mesh.attach(conn);
    const touch = () => {
      conn.lastReadAt = Date.now();
    };
    ws.on('ping', touch);
    ws.on('pong', touch);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      touch();
      this.metrics?.countRead('websocket');
      if (this.overRate(session)) {
        conn.close(CloseCode.POLICY, 'rate limit exceeded');
        return;
      }
      this.dispatch(session, 'on_message', (L) => pushMessage(L, data, isBinary), data.length);
    });
    ws.on('error', (error) => {
      this.log.debug('websocket error', { client_id: conn.clientId, error: error.message });
      const code = protocolErrorCode(error);
      if (code !== null) conn.abortedWith ??= { code, reason: error.message };
    });
    ws.on('close', (code: number, reason: Buffer) => this.closed(session, code, reason.toString()));
    this.handshake(session, req);
  }

  /**
   * Queues on_handshake. Its own scope on purpose: closures share their function's context in V8, so
   * built inside accept() the long-lived socket listeners would keep the request and its headers alive.
   */
  private handshake(session: Session, req: http.IncomingMessage): void {
    const clientId = Buffer.from(session.conn.clientId);
    const headers = canonicalHeaders(req.rawHeaders);
    const server = {
      Method: req.method ?? 'GET',
      RequestUri: req.url ?? '/',
      ServerProtocol: `HTTP/${req.httpVersion}`,
      Host: req.headers.host ?? '',
      RemoteAddr: session.conn.remoteAddr,
    };
    this.dispatch(session, 'on_handshake', (L) => {
      lua_pushstring(L, clientId);
      pushStringTable(L, headers);
      pushStringTable(L, server);
      return 3;
    });
  }

  /** Counts a message in the connection's current one-second window; true past maxMessagesPerSecond. */
  private overRate(session: Session): boolean {
    const limit = this.config.maxMessagesPerSecond;
    if (limit <= 0) return false;
    const second = Math.floor(Date.now() / 1000);
    if (session.window !== second) {
      session.window = second;
      session.inWindow = 0;
    }
    return ++session.inWindow > limit;
  }

  /**
   * Queues a hook call behind the connection's earlier events. `bytes` (an inbound message's size) count
   * against maxPendingBytes while the call waits: a hook that waits (mix.http.request) must not let its
   * client queue messages without end, so past the limit the socket is not read until the queue drains.
   */
  private dispatch(session: Session, hook: string, pushArgs: PushArgs, bytes = 0): void {
    // Nothing to run (the seed's on_handshake): neither the call nor its arguments (a headers table per connection).
    if (this.vm.isEmptyHook(hook)) return;
    const { conn } = session;
    session.pendingBytes += bytes;
    const accepted = session.hooks.push((done) => {
      if (bytes > 0) this.taken(session, bytes);
      if (hook !== 'on_close' && !conn.open) return done();
      const started = process.hrtime.bigint();
      this.vm.call(conn, hook, pushArgs, (error) => {
        this.metrics?.observeHook(hook, secondsSince(started));
        if (error) this.hookFailed(conn, error);
        done();
      });
    }, hook === 'on_close');
    if (!accepted) {
      session.pendingBytes -= bytes;
      conn.close(CloseCode.POLICY, 'too many pending messages');
      return;
    }
    if (!session.paused && session.pendingBytes > this.config.maxPendingBytes) {
      session.paused = true;
      conn.ws.pause();
      this.log.debug('reading paused: messages wait for a hook', { client_id: conn.clientId, bytes: session.pendingBytes });
    }
  }

  /** A waiting message was handed to its hook; reading resumes once half the limit is free again. */
  private taken(session: Session, bytes: number): void {
    session.pendingBytes -= bytes;
    if (session.paused && session.pendingBytes <= this.config.maxPendingBytes / 2) {
      session.paused = false;
      session.conn.ws.resume();
    }
  }

  private hookFailed(conn: Connection, error: LuaHookError): void {
    this.metrics?.hookErrors.inc({ hook: error.hook, kind: error.timedOut ? 'timeout' : 'error' });
    this.log.error(error.timedOut ? 'Lua hook stopped: budget exceeded' : 'Lua hook failed', {
      client_id: conn.clientId,
      hook: error.hook,
      error: error.traceback,
    });
    if (error.hook !== 'on_close') conn.close(CloseCode.SCRIPT_ERROR, error.timedOut ? 'script timeout' : 'script error');
  }

  private closed(session: Session, code: number, reason: string): void {
    const { conn } = session;
    if (conn.abortedWith) ({ code, reason } = conn.abortedWith);
    this.metrics?.closes.inc({ code: closeCodeLabel(code) });
    this.admission.left(session.ip);
    this.services.mesh.detach(conn);
    conn.context.close('connection closed');
    // A hook waiting on HTTP or Redis for this connection stops waiting, so on_close need not.
    this.vm.release(conn);
    const err = CLEAN_CLOSES.has(code) ? null : `close ${code}${reason ? `: ${reason}` : ''}`;
    this.dispatch(session, 'on_close', (L) => {
      lua_pushstring(L, Buffer.from(conn.clientId));
      if (err === null) lua_pushnil(L);
      else lua_pushstring(L, Buffer.from(err));
      return 2;
    });
    session.hooks.push((done) => {
      releaseConn(this.vm, conn);
      this.sessions.delete(conn);
      done();
    }, true);
  }

  /**
   * Enforces readTimeout (nothing received) and writeTimeout (writes not draining). A connection silent
   * for half its readTimeout is pinged: a live client's pong counts as data (browsers cannot ping but
   * always answer pings), so only dead or stalled peers reach the timeout.
   */
  private sweep(): void {
    const now = Date.now();
    const { readTimeout, writeTimeout } = this.config;
    for (const conn of this.sessions.keys()) {
      if (!conn.open) continue;
      const silent = now - conn.lastReadAt;
      if (readTimeout > 0 && silent > readTimeout * 1000) {
        conn.close(CloseCode.READ_TIMEOUT, 'read timeout');
        continue;
      }
      // `<=`: on loopback a pong can arrive in the very millisecond of its ping.
      if (readTimeout > 0 && silent > (readTimeout * 1000) / 2 && conn.pingedAt <= conn.lastReadAt) {
        conn.pingedAt = now;
        conn.ws.ping();
      }
      if (writeTimeout > 0 && blockedFor(conn, now) > writeTimeout * 1000) {
        this.log.warn('write timeout, dropping the connection', { client_id: conn.clientId });
        conn.abort(CloseCode.WRITE_TIMEOUT, 'write timeout');
      }
    }
  }
}

const TYPE = K('type');
const DATA = K('data');
const FINISH = K('finish');
const TEXT = K('text');
const BINARY = K('binary');

/** `msg = {type = "text"|"binary", data = <bytes>, finish = true}` (reference 3.2). */
function pushMessage(L: LuaState, data: Buffer, isBinary: boolean): number {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, isBinary ? BINARY : TEXT);
  lua_setfield(L, -2, TYPE);
  lua_pushstring(L, data);
  lua_setfield(L, -2, DATA);
  lua_pushboolean(L, true);
  lua_setfield(L, -2, FINISH);
  return 1;
}

function pushStringTable(L: LuaState, values: Record<string, string>): void {
  const entries = Object.entries(values);
  lua_createtable(L, 0, entries.length);
  for (const [key, value] of entries) {
    lua_pushstring(L, Buffer.from(value));
    lua_setfield(L, -2, Buffer.from(key));
  }
}
