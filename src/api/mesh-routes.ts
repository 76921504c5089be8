import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import { ApiError, ErrorCode } from '../wire/api-errors';
import { whenSettled, type MaybePromise } from '../wire/maybe-promise';
import type { CountAnswer, PublishAnswer, SendAnswer } from '../wire/api-answers';
import { countRequest, parseBody, publishRequest, sendRequest } from './requests';
import type { ApiNode, Authorize } from './http-api';
import type { BodyBudget } from './body-budget';

/** How request bodies are bounded: each by `maxBodySize`, all of them together by `budget`. */
export interface BodyLimits {
  maxBodySize: number;
  budget: BodyBudget;
}

const ROUTES = { '/v1/mesh/publish': 'publish', '/v1/mesh/send': 'send', '/v1/mesh/count': 'count' } as const;
type MeshRoute = keyof typeof ROUTES;

/** The mesh route a request is for, if it is `POST /v1/mesh/publish`, `/v1/mesh/send` or `/v1/mesh/count`. */
export function meshRouteOf(req: IncomingMessage): MeshRoute | null {
  if (req.method !== 'POST') return null;
  const path = (req.url ?? '').split('?', 1)[0];
  return Object.hasOwn(ROUTES, path) ? (path as MeshRoute) : null;
}

/**
 * Serves `POST /v1/mesh/publish`, `POST /v1/mesh/send` and `POST /v1/mesh/count` on the plain HTTP server. These are the routes
 * backends call per message, and express's router and body parser cost several times the publish
 * itself (profiled in bench/: ~2-3k requests/s through express). Answers and codes are the API's.
 */
export function serveMeshRoute(route: MeshRoute, req: IncomingMessage, res: ServerResponse, node: ApiNode, authorize: Authorize,
  log: Logger, limits: BodyLimits, metrics?: Metrics): void {
  const finish = (status: number, body: unknown, code: number, headers: Record<string, string> = {}) => {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
    metrics?.countApiRequest(route, code);
  };
  const fail = (error: unknown) => {
    if (error instanceof ApiError) return finish(200, { E: { c: error.code, m: error.message } }, error.code);
    log.error('API request failed', { path: route, error: (error as Error).stack ?? String(error) });
    finish(500, { E: { c: ErrorCode.MESH_UNAVAILABLE, m: (error as Error).message } }, ErrorCode.MESH_UNAVAILABLE);
  };
  // A count changes nothing: the `read` role may ask for it.
  const denial = authorize(req, ROUTES[route] === 'count' ? 'read' : 'write');
  if (denial) {
    finish(denial.status, { E: { c: denial.status, m: denial.message } }, denial.status, denial.status === 401 ? { 'www-authenticate': 'Basic realm="connmix"' } : {});
    req.resume();
    return;
  }
  // Refusals that come before the body is read close the connection, so the unread body goes with it.
  const tooLarge = () => finish(413, { E: { c: ErrorCode.INVALID_PARAMS, m: `invalid request: the body is larger than ${limits.maxBodySize} bytes` } },
    ErrorCode.INVALID_PARAMS, { connection: 'close' });
  const busy = () => finish(503, { E: { c: ErrorCode.BUSY, m: `busy: ${limits.budget.limit} bytes of request bodies are being read; retry` } },
    ErrorCode.BUSY, { connection: 'close', 'retry-after': '1' });
  const declared = declaredLength(req);
  if (declared > limits.maxBodySize) return tooLarge();
  let taken = 0;
  if (declared > 0) {
    if (!limits.budget.take(declared)) return busy();
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
    const over = size > limits.maxBodySize ? tooLarge : size > taken && !limits.budget.take(size - taken) ? busy : null;
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
      const kind = ROUTES[route];
      const answer = kind === 'publish' ? publish(node, body) : kind === 'send' ? send(node, body) : count(node, body);
      if (answer instanceof Promise) answer.then((r) => finish(200, { E: null, r }, 0), fail);
      else finish(200, { E: null, r: answer }, 0);
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

type MeshAnswer = PublishAnswer | SendAnswer | CountAnswer;

function publish(node: ApiNode, body: Record<string, unknown>): MaybePromise<MeshAnswer> {
  const { target, payload, binary } = publishRequest(body);
  return settleMesh(() => node.publish(target, payload, binary), (result) => ({ s: result.s, f: result.f }));
}

function send(node: ApiNode, body: Record<string, unknown>): MaybePromise<MeshAnswer> {
  const { target, payload, binary } = sendRequest(body);
  return settleMesh(() => node.send(target, payload, binary), (sent) => {
    if (!sent) throw new ApiError(ErrorCode.SEND_FAILED, `send failed: client ${target} not found or gone`);
    return { s: true };
  });
}

function count(node: ApiNode, body: Record<string, unknown>): MaybePromise<MeshAnswer> {
  const channel = countRequest(body);
  return settleMesh(() => node.count(channel), (result) => ({ n: result.n, f: result.f }));
}

/**
 * Runs a mesh operation and shapes its answer, staying synchronous when the mesh is (the memory
 * broker); a failure of the mesh itself answers code 500, never a false success.
 */
function settleMesh<T>(operation: () => MaybePromise<T>, shape: (value: T) => MeshAnswer): MaybePromise<MeshAnswer> {
  const unavailable = (error: unknown): never => {
    throw new ApiError(ErrorCode.MESH_UNAVAILABLE, `mesh unavailable: ${(error as Error).message}`);
  };
  let value: MaybePromise<T>;
  try {
    value = operation();
  } catch (error) {
    return unavailable(error);
  }
  return whenSettled(value, shape, unavailable);
}
