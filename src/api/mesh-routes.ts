import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { MeshCommands } from '../mesh/mesh';
import { ErrorCode, busy } from '../wire/api-errors';
import { whenSettled } from '../wire/maybe-promise';
import { parseBody } from './requests';
import type { Authorize } from './http-api';
import type { ByteBudget } from '../wire/byte-budget';
import { errorOf } from './commands';
import { ROUTES, isMeshRoute, type MeshRoute } from './routes';

/** How request bodies are bounded: each by `maxBodySize`, all of them together by `budget`. */
export interface BodyLimits {
  maxBodySize: number;
  budget: ByteBudget;
}

/** The table's per-message routes, by path. */
const MESH_ROUTES = new Map(ROUTES.filter(isMeshRoute).map((route) => [route.path, route]));

/** The mesh route a request is for, if it is `POST /v1/mesh/publish`, `/v1/mesh/send` or `/v1/mesh/count`. */
export function meshRouteOf(req: IncomingMessage): MeshRoute | null {
  if (req.method !== 'POST') return null;
  return MESH_ROUTES.get((req.url ?? '').split('?', 1)[0]) ?? null;
}

/**
 * Serves the per-message routes of the table (`POST /v1/mesh/publish`, `/send`, `/count`) on the plain
 * HTTP server, before express. Backends call these once per message, and express's router and body
 * parser cost more than the publish itself: `npm run bench -- --quick --targets connmix-ts --scenarios
 * publish-api` served the same command through `express.json()` and `app.post` at about a third of this
 * rate (December 2026, paired runs on a loaded 2-core machine: 340-1,150 against 1,300-6,000 publishes/s;
 * bench/notes.md). Everything else goes through express, declared in routes.ts. Answers and codes are
 * the commands'.
 */
export function serveMeshRoute(route: MeshRoute, req: IncomingMessage, res: ServerResponse, mesh: MeshCommands, authorize: Authorize,
  log: Logger, limits: BodyLimits, metrics?: Metrics): void {
  const finish = (status: number, body: unknown, code: number, headers: Record<string, string> = {}) => {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
    metrics?.countApiRequest(route.path, code);
  };
  const fail = (error: unknown) => {
    const { c, m, expected } = errorOf(error);
    if (!expected) log.error('API request failed', { path: route.path, error: (error as Error).stack ?? String(error) });
    finish(expected ? 200 : 500, { E: { c, m } }, c);
  };
  const denial = authorize(req, route.role);
  if (denial) {
    finish(denial.status, { E: { c: denial.status, m: denial.message } }, denial.status, denial.status === 401 ? { 'www-authenticate': 'Basic realm="connmix"' } : {});
    req.resume();
    return;
  }
  // Refusals that come before the body is read close the connection, so the unread body goes with it.
  const tooLarge = () => finish(413, { E: { c: ErrorCode.INVALID_PARAMS, m: `invalid request: the body is larger than ${limits.maxBodySize} bytes` } },
    ErrorCode.INVALID_PARAMS, { connection: 'close' });
  const refuseBusy = () => finish(503, { E: { c: ErrorCode.BUSY, m: busy(limits.budget.limit).message } },
    ErrorCode.BUSY, { connection: 'close', 'retry-after': '1' });
  const declared = declaredLength(req);
  if (declared > limits.maxBodySize) return tooLarge();
  let taken = 0;
  if (declared > 0) {
    if (!limits.budget.take(declared)) return refuseBusy();
    taken = declared;
  }
  res.once('close', () => limits.budget.give(taken));
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    // A chunked body takes its budget as it arrives.
    const over = size > limits.maxBodySize ? tooLarge : size > taken && !limits.budget.take(size - taken) ? refuseBusy : null;
    if (over) {
      refused = true;
      chunks.length = 0;
      req.pause();
      over();
      return;
    }
    taken = Math.max(taken, size);
    chunks.push(chunk);
  });
  req.on('error', () => res.destroy());
  req.on('end', () => {
    if (refused) return;
    try {
      const body = parseBody(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      chunks.length = 0;
      whenSettled(route.command(mesh, body), (r) => finish(200, { E: null, r }, 0), fail);
    } catch (error) {
      fail(error);
    }
  });
}

/** The body length the request announces (Content-Length), or 0 when it does not (chunked, or none). */
function declaredLength(req: IncomingMessage): number {
  const value = Number(req.headers['content-length']);
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}
