import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ApiServerConfig, AccessUser } from '../config/schema';
import type { Logger } from '../log';
import { AccessControl, type AccessDenial } from './access';
import { createHttpApi, type Authorize, type NodeListing } from './http-api';
import { meshRouteOf, serveMeshRoute } from './mesh-routes';
import { WsApi, type WsApiNode } from './ws-api';
import type { Metrics } from '../metrics';
import { destroySocket } from '../wire/http-request';
import { refuse, type RefusalBody } from '../wire/refusal';
import { listenLogged } from '../wire/listen';
import { ByteBudget } from '../wire/byte-budget';
import type { FdGuard } from '../server/fd-guard';

/** How long requests in flight may take to finish when the server stops. */
const STOP_GRACE_MS = 2000;
/** How often a stopping server closes the kept-alive connections that have become idle. */
const IDLE_CHECK_MS = 20;


/**
 * The engine's API server: the HTTP API and the WebSocket API at `/ws/v1` on one port, behind
 * `access.users` (HTTP Basic; `read` for GET routes, `write` for the rest and for `/ws/v1`).
 */
export class ApiServer {
  private readonly http: http.Server;
  private readonly access: AccessControl;
  private readonly wsApi: WsApi;
  /** Resolves once the listener and every connection are closed; set when the server stops accepting. */
  private closed: Promise<void> | null = null;

  constructor(
    private readonly config: ApiServerConfig,
    node: WsApiNode & { readonly mesh: NodeListing },
    users: AccessUser[],
    private readonly log: Logger,
    metrics?: Metrics,
    fdGuard?: FdGuard,
  ) {
    this.access = new AccessControl(users);
    // One budget for both transports: a backend cannot get past it by switching from HTTP to /ws/v1.
    const budget = new ByteBudget(config.maxBytesInFlight);
    this.wsApi = new WsApi(node, log, {
      readTimeout: config.readTimeout,
      maxPayload: config.maxBodySize,
      maxBufferedBytes: config.maxBufferedBytes,
      writeTimeout: config.writeTimeout,
      budget,
    });
    const authorize: Authorize = (req, role) => this.access.check(req, role);
    const app = createHttpApi(node.mesh, log, authorize, metrics);
    const bodies = { maxBodySize: config.maxBodySize, budget };
    this.http = http.createServer({
      // A client that trickles its headers or body (slowloris) is cut off; Node checks every connectionsCheckingInterval.
      headersTimeout: config.headersTimeout * 1000,
      requestTimeout: config.requestTimeout * 1000,
      connectionsCheckingInterval: Math.min(1000, config.headersTimeout * 1000),
    }, (req, res) => {
      // A request on a kept-alive connection after the stop is served, and its connection closed after it.
      if (this.closed) res.setHeader('Connection', 'close');
      const route = meshRouteOf(req);
      if (route) serveMeshRoute(route, req, res, node.mesh, authorize, log, bodies, metrics);
      else app(req, res);
    });
    this.http.on('upgrade', (req, socket, head) => {
      socket.on('error', destroySocket);
      if ((req.url ?? '').split('?', 1)[0] !== '/ws/v1') {
        refuse(socket, 404);
        return;
      }
      const denial = this.access.check(req, 'write');
      if (denial) {
        refuse(socket, denial.status, accessRefusal(denial));
        return;
      }
      this.wsApi.handleUpgrade(req, socket, head);
    });
    this.http.on('clientError', (_error, socket) => socket.destroy());
    if (fdGuard) this.http.on('connection', (socket: Socket) => fdGuard.admit(socket, 'api'));
  }

  /** Replaces the accounts (`access` is a hot key). */
  updateUsers(users: AccessUser[]): void {
    this.access.update(users);
    this.warnIfOpen();
  }

  async start(): Promise<AddressInfo> {
    await listenLogged(this.http, this.config.port, this.config.bind, this.log, 'api');
    this.warnIfOpen();
    return this.http.address() as AddressInfo;
  }

  /**
   * Stops accepting connections. Those open are still served until stop(): backends that consume the
   * queue keep receiving what the closing clients' on_close hooks push.
   */
  stopAccepting(): void {
    if (this.closed) return;
    this.closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /** Stops accepting, lets requests in flight finish (up to STOP_GRACE_MS), then closes what is left. */
  async stop(): Promise<void> {
    this.stopAccepting();
    this.wsApi.close();
    // A kept-alive connection is closed as soon as its request in flight is answered.
    const idle = setInterval(() => this.http.closeIdleConnections(), IDLE_CHECK_MS);
    // Past the grace period, connections still open are cut: a backend that stopped reading would
    // otherwise hold a /ws/v1 close handshake open for ws's 30 s.
    const grace = setTimeout(() => {
      this.http.closeAllConnections();
      this.wsApi.terminate();
    }, STOP_GRACE_MS);
    await this.closed;
    clearInterval(idle);
    clearTimeout(grace);
  }

  private warnIfOpen(): void {
    const loopback = /^(127\.|::1$|localhost$)/.test(this.config.bind);
    if (this.access.open && !loopback) {
      this.log.warn('the API is open: no access.users are set and it listens on a non-loopback address', {
        bind: this.config.bind,
      });
    }
  }
}

/** How an upgrade the accounts deny is refused: the API's error answer, and a Basic challenge for 401. */
function accessRefusal(denial: NonNullable<AccessDenial>): RefusalBody {
  return {
    body: JSON.stringify({ E: { c: denial.status, m: denial.message } }),
    contentType: 'application/json',
    headers: denial.status === 401 ? { 'WWW-Authenticate': 'Basic realm="connmix"' } : {},
  };
}

