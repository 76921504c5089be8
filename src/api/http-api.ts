import express, { type Request, type Response, type NextFunction } from 'express';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log';
import type { AccessDenial, Role } from './access';
import { ErrorCode } from '../wire/api-errors';
import { errorOf } from './commands';
import type { Metrics } from '../metrics';
import { ROUTES, isMeshRoute, type ExpressRoute, type NodeListing } from './routes';

export type { NodeListing } from './routes';

/** Decides whether a request may go on (null) or is refused with an HTTP status and message. */
export type Authorize = (req: IncomingMessage, role: Role) => AccessDenial;

/**
 * The engine's HTTP API (CONNMIX docs, websocket-api; the center routes the PHP SDK calls): `POST /v1/mesh/publish`, `POST /v1/mesh/send`,
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
  // The per-message POST routes are served before express (see mesh-routes.ts); the rest from the table:
  // first those that ask no credentials (the probes), then, behind the access check, the others.
  const served = ROUTES.filter((route) => !isMeshRoute(route) && !(route.needsMetrics && !metrics)) as ExpressRoute[];
  const register = (route: ExpressRoute) => {
    app.get(route.path, (req, res, next) => {
      Promise.resolve(route.serve(node, metrics, req, res)).catch(next);
    });
  };
  served.filter((route) => route.role === null).forEach(register);
  // GET routes need `read`: the table says so for each, and the check by method agrees with it.
  app.use((req, res, next) => {
    const denial = authorize(req, req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'write');
    if (!denial) return next();
    if (denial.status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="connmix"');
    res.locals.code = denial.status;
    res.status(denial.status).json({ E: { c: denial.status, m: denial.message } });
  });
  served.filter((route) => route.role !== null).forEach(register);

  app.use((req, res) => {
    res.locals.code = ErrorCode.NOT_FOUND;
    res.status(404).json({ E: { c: ErrorCode.NOT_FOUND, m: `not found: ${req.method} ${req.path}` } });
  });

  // No body parser is mounted (the POST routes read their own bodies), so the errors here are the routes'.
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const { c, m, expected } = errorOf(error);
    res.locals.code = c;
    if (!expected) log.error('API request failed', { path: req.path, error: (error as Error).stack ?? String(error) });
    res.status(expected ? 200 : 500).json({ E: { c, m } });
  });
  return app;
}
