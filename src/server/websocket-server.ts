import * as http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { BusinessServerConfig } from '../config/schema';
import type { Logger } from '../log';
import { WebSocketHooks, WEBSOCKET_HOOKS, WEBSOCKET_HOOK_ALIASES } from '../lua/hooks';
import { Connection, type ConnectionLimits } from './connection';
import type { NodeServices } from './node-services';
import { WriteBatch } from '../wire/write-batch';
import { BusinessServer, type Session } from './business-server';
import { CloseCode, closeCodeLabel, protocolErrorCode } from '../wire/close-codes';
import { canonicalHeaders, remoteAddress, clientIp, pathMatches, globPattern, destroySocket, type GlobMatcher } from '../wire/http-request';
import { refuse } from '../wire/refusal';
import type { Metrics } from '../metrics';
import { monotonicMs } from '../wire/clock';

/** Close codes that end a connection without an error for on_close (1005: the peer sent no code). */
const CLEAN_CLOSES = new Set<number>([CloseCode.NORMAL, CloseCode.GOING_AWAY, 1005]);

interface WebSocketSession extends Session<Connection> {
  /** The second (of monotonicMs) `inWindow` counts messages for, for maxMessagesPerSecond. */
  window: number;
  inWindow: number;
}

/**
 * One `engine.servers[]` entry with `protocol: websocket`: an HTTP listener that upgrades requests on
 * its `path`, one Lua state running the entry's hooks, and the connections it accepted. What is not
 * about the upgrade or WebSocket messages is the core's (business-server.ts).
 */
export class WebSocketBusinessServer extends BusinessServer<Connection, WebSocketSession> {
  readonly protocol = 'websocket' as const;
  protected readonly listener: http.Server;
  private readonly wss: WebSocketServer;
  protected readonly hooks: WebSocketHooks;
  private readonly path: string;
  /** What every connection of this server shares: its limits and its write batch. */
  private readonly limits: ConnectionLimits;
  /** The Origin allow-list as patterns, or null when every origin is allowed. */
  private readonly origins: GlobMatcher[] | null;
  /** Sockets counted by Admission.handshakeRefused, with their IP, until they upgrade or close. */
  private readonly handshaking = new WeakMap<Socket, string>();

  constructor(config: BusinessServerConfig, services: NodeServices, log: Logger, callBudget: number, metrics?: Metrics) {
    super(config, services, log, callBudget, metrics, {
      protocol: 'websocket',
      hooks: WEBSOCKET_HOOKS,
      hookAliases: WEBSOCKET_HOOK_ALIASES,
      timeHooks: true,
      tooManyPending: 'too many pending messages',
    });
    this.hooks = new WebSocketHooks(this.vm);
    this.limits = {
      maxBufferedBytes: config.maxBufferedBytes,
      softBufferedBytes: config.softBufferedBytes,
      maxChannels: config.maxChannelsPerConnection,
      batch: new WriteBatch(config.writeWindow),
      contexts: services.contexts,
      metrics,
    };
    this.origins = config.origins.length > 0 ? config.origins.map(globPattern) : null;
    this.path = config.options.find((option) => option.name === 'path')?.value ?? '/';
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.listener = http.createServer({
      // The upgrade request must arrive within handshakeTimeout; Node checks every connectionsCheckingInterval.
      headersTimeout: config.handshakeTimeout * 1000,
      requestTimeout: config.handshakeTimeout * 1000,
      connectionsCheckingInterval: Math.min(1000, config.handshakeTimeout * 1000),
    }, (req, res) => {
      const upgrade = pathMatches(this.path, req.url);
      refuse(res, upgrade ? 426 : 404, { body: upgrade ? 'Upgrade Required\n' : 'Not Found\n', contentType: 'text/plain' });
    });
    this.listener.on('connection', (socket: Socket) => this.connected(socket));
    this.listener.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
      this.handshakeEnded(req.socket);
      socket.on('error', destroySocket);
      const refusal = this.refusal(req);
      if (refusal) {
        this.metrics?.refused.inc({ reason: refusal.reason });
        refuse(socket, refusal.status);
        return;
      }
      // The upgraded socket is the request's: the connection gets it here rather than from ws's internals.
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req, req.socket));
    });
    this.listener.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') this.metrics?.refused.inc({ reason: 'handshake_timeout' });
      socket.destroy();
    });
  }

  protected override drained(): void {
    this.listener.closeAllConnections();
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
    this.services.fdGuard.admit(socket, 'business');
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
    const reason = this.admissionRefusal(clientIp(req.socket));
    if (reason === null) return null;
    return { status: reason === 'max_connections_per_ip' ? 429 : 503, reason };
  }

  private accept(ws: WebSocket, req: http.IncomingMessage, socket: Socket): void {
    const conn = new Connection(ws, socket, this.services.mesh.nextClientId(), remoteAddress(socket), this.limits);
    const session: WebSocketSession = {
      conn, hooks: this.newHookQueue(), ip: clientIp(socket), pendingBytes: 0, paused: false, window: 0, inWindow: 0,
    };
    this.register(session);
    const touch = () => {
      conn.lastReadAt = monotonicMs();
    };
    ws.on('ping', touch);
    ws.on('pong', touch);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const now = monotonicMs();
      conn.lastReadAt = now;
      this.metrics?.countRead('websocket');
      if (this.overRate(session, now)) {
        // Once closing, ws reads on until the peer answers the close or 30 s pass: a peer that keeps
        // flooding had every frame parsed meanwhile (most of a core for 30 s). It is cut instead.
        if (conn.open) conn.close(CloseCode.POLICY, 'rate limit exceeded');
        else conn.drop(CloseCode.POLICY, 'rate limit exceeded');
        return;
      }
      this.dispatch(session, 'on_message', data.length, this.hooks.onMessage, data, isBinary);
    });
    ws.on('error', (error) => {
      this.log.debug('websocket error', { client_id: conn.clientId, error: error.message });
      const code = protocolErrorCode(error);
      if (code !== null) conn.abortedWith ??= { code, reason: error.message };
    });
    ws.on('close', (code: number, reason: Buffer) => this.wsClosed(session, code, reason.toString()));
    this.handshake(session, req);
  }

  /**
   * Queues on_handshake. Its own scope on purpose: closures share their function's context in V8, so
   * built inside accept() the long-lived socket listeners would keep the request and its headers alive.
   */
  private handshake(session: WebSocketSession, req: http.IncomingMessage): void {
    if (this.vm.isEmptyHook('on_handshake')) return;
    const server = {
      Method: req.method ?? 'GET',
      RequestUri: req.url ?? '/',
      ServerProtocol: `HTTP/${req.httpVersion}`,
      Host: req.headers.host ?? '',
      RemoteAddr: session.conn.remoteAddr,
    };
    this.dispatch(session, 'on_handshake', 0, this.hooks.onHandshake, canonicalHeaders(req.rawHeaders), server);
  }

  /** Counts a message (arrived at `now`, monotonicMs) in the connection's current one-second window; true past maxMessagesPerSecond. */
  private overRate(session: WebSocketSession, now: number): boolean {
    const limit = this.config.maxMessagesPerSecond;
    if (limit <= 0) return false;
    const second = Math.floor(now / 1000);
    if (session.window !== second) {
      session.window = second;
      session.inWindow = 0;
    }
    return ++session.inWindow > limit;
  }

  /** ws reports the close: its code and reason, or the engine's own when it dropped the connection, become on_close's error. */
  private wsClosed(session: WebSocketSession, code: number, reason: string): void {
    const { conn } = session;
    if (conn.abortedWith) ({ code, reason } = conn.abortedWith);
    this.metrics?.closes.inc({ code: closeCodeLabel(code) });
    this.closed(session, CLEAN_CLOSES.has(code) ? null : `close ${code}${reason ? `: ${reason}` : ''}`);
  }
}
