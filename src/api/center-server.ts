import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AccessUser, ListenConfig } from '../config/schema';
import type { Logger } from '../log';
import type { FdGuard } from '../server/fd-guard';
import { listenLogged } from '../wire/listen';
import { AccessControl } from './access';
import { createHttpApi, type NodeListing } from './http-api';

/** How long requests in flight may take to finish when the server stops. */
const STOP_GRACE_MS = 1000;
/** The center answers two small GETs: a client that trickles its request past these is closed (slowloris). */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * CONNMIX's center API (`center.apiServer`, 6787 by default), where the PHP SDK starts: `GET /version`
 * and `GET /v1/nodes` (plus the `/healthz` and `/readyz` probes), answered by the engine API's own
 * routes behind the same `access.users`. It is read-only: the engines' API ports carry the traffic.
 */
export class CenterServer {
  private readonly http: http.Server;
  private readonly access: AccessControl;

  constructor(
    private readonly config: ListenConfig,
    listing: NodeListing,
    users: AccessUser[],
    private readonly log: Logger,
    fdGuard?: FdGuard,
  ) {
    this.access = new AccessControl(users);
    this.http = http.createServer(
      { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 },
      createHttpApi(listing, log, (req, role) => this.access.check(req, role)),
    );
    this.http.on('clientError', (_error, socket) => socket.destroy());
    // Its sockets share the API's share of the descriptor reserve (docs/operations.md "Hostile clients").
    if (fdGuard) this.http.on('connection', (socket) => fdGuard.admit(socket, 'api'));
  }

  /** Replaces the accounts (`access` is a hot key). */
  updateUsers(users: AccessUser[]): void {
    this.access.update(users);
  }

  async start(): Promise<AddressInfo> {
    await listenLogged(this.http, this.config.port, this.config.bind, this.log, 'center');
    if (this.access.open && !/^(127\.|::1$|localhost$)/.test(this.config.bind)) {
      this.log.warn('the center API is open: no access.users are set and it listens on a non-loopback address (it lists the engines\' API addresses)', {
        bind: this.config.bind,
      });
    }
    return this.http.address() as AddressInfo;
  }

  /** Stops accepting, answers the requests in flight (up to STOP_GRACE_MS), then closes what is left. */
  async stop(): Promise<void> {
    if (!this.http.listening) return;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    const grace = setTimeout(() => this.http.closeAllConnections(), STOP_GRACE_MS);
    await closed;
    clearTimeout(grace);
  }
}
