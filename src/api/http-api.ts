import express, { type Request, type Response, type NextFunction } from 'express';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log';
import type { AccessDenial, Role } from './access';
import type { CountResult, NodeInfo, PublishResult } from '../mesh/broker';
import { ApiError, ErrorCode } from '../wire/api-errors';
import type { Metrics } from '../metrics';

/** What the HTTP API needs from its node. */
export interface ApiNode {
  publish(channel: string, payload: Buffer, binary: boolean): PublishResult | Promise<PublishResult>;
  send(clientId: string, payload: Buffer, binary: boolean): boolean | Promise<boolean>;
  /** Subscribers of a channel over the mesh. */
  count(channel: string): CountResult | Promise<CountResult>;
  nodes(): NodeInfo[] | Promise<NodeInfo[]>;
  /** Whether the node can carry traffic (its broker is connected). */
  ready(): boolean;
}

/** What the read-only routes need: the center API serves them with no publish or send behind it. */
export type NodeListing = Pick<ApiNode, 'nodes' | 'ready'>;

/** Decides whether a request may go on (null) or is refused with an HTTP status and message. */
export type Authorize = (req: IncomingMessage, role: Role) => AccessDenial;

/**
 * The engine's HTTP API (reference 5.1 and 5.3): `POST /v1/mesh/publish`, `POST /v1/mesh/send`,
 * `GET /version`, `GET /v1/nodes`, plus `GET /metrics` (Prometheus) and the unauthenticated probes
 * `GET /healthz` and `GET /readyz`. Answers are `{"E": null, "r": ...}` or `{"E": {"c", "m"}}` with
 * HTTP 200, as CONNMIX clients key off `E`; unknown routes answer 404.
 */
export function createHttpApi(node: NodeListing, log: Logger, authorize: Authorize = () => null, metrics?: Metrics): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (metrics) {
    app.use((req, res, next) => {
      res.on('finish', () => {
        const route = (req.route?.path as string | undefined) ?? 'unknown';
        metrics.countApiRequest(route, Number(res.locals.code ?? 0));
      });
      next();
    });
  }
  // Probes for load balancers and orchestrators: no credentials, nothing revealed.
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/readyz', (_req, res) => {
    const ready = node.ready();
    res.status(ready ? 200 : 503).json({ ready });
  });
  app.use((req, res, next) => {
    const denial = authorize(req, req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'write');
    if (!denial) return next();
    if (denial.status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="connmix"');
    res.locals.code = denial.status;
    res.status(denial.status).json({ E: { c: denial.status, m: denial.message } });
  });
  if (metrics) {
    app.get('/metrics', async (_req, res) => {
      res.setHeader('content-type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
    });
  }
  // POST /v1/mesh/publish, /v1/mesh/send and /v1/mesh/count are served before express (see mesh-routes.ts).
  app.get('/version', (_req, res) => {
    res.json({ apis: ['v1'] });
  });

  app.get('/v1/nodes', async (_req, res) => {
    res.json({ nodes: await mesh(() => node.nodes()) });
  });

  app.use((req, res) => {
    res.locals.code = ErrorCode.NOT_FOUND;
    res.status(404).json({ E: { c: ErrorCode.NOT_FOUND, m: `not found: ${req.method} ${req.path}` } });
  });

  app.use((error: Error & { type?: string; status?: number }, req: Request, res: Response, _next: NextFunction) => {
    res.locals.code = error instanceof ApiError ? error.code : error.status && error.status < 500 ? ErrorCode.INVALID_PARAMS : ErrorCode.MESH_UNAVAILABLE;
    if (error instanceof ApiError) {
      res.json({ E: { c: error.code, m: error.message } });
    } else if (error.status && error.status < 500) {
      // body-parser errors: too large, aborted, bad encoding
      res.json({ E: { c: ErrorCode.INVALID_PARAMS, m: `invalid request: ${error.message}` } });
    } else {
      log.error('API request failed', { path: req.path, error: error.stack ?? String(error) });
      res.status(500).json({ E: { c: ErrorCode.MESH_UNAVAILABLE, m: error.message } });
    }
  });
  return app;
}

/** Runs a mesh operation; a failure of the mesh itself answers code 500, never a false success. */
async function mesh<T>(operation: () => T | Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw new ApiError(ErrorCode.MESH_UNAVAILABLE, `mesh unavailable: ${(error as Error).message}`);
  }
}
