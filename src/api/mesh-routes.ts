import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import { ApiError, ErrorCode, invalidParams } from './errors';
import { countRequest, parseBody, publishRequest, sendRequest } from './requests';
import type { ApiNode, Authorize } from './http-api';

/** The largest publish or send body accepted, in bytes. */
const MAX_BODY = 16 * 1024 * 1024;

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
export function serveMeshRoute(route: MeshRoute, req: IncomingMessage, res: ServerResponse, node: ApiNode, authorize: Authorize, log: Logger, metrics?: Metrics): void {
  const finish = (status: number, body: unknown, code: number, headers: Record<string, string> = {}) => {
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
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('error', () => res.destroy());
  req.on('end', () => {
    try {
      if (tooLarge) throw invalidParams(`invalid request: the body is larger than ${MAX_BODY} bytes`);
      const body = parseBody(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      const kind = ROUTES[route];
      const answer = kind === 'publish' ? publish(node, body) : kind === 'send' ? send(node, body) : count(node, body);
      if (answer instanceof Promise) answer.then((r) => finish(200, { E: null, r }, 0), fail);
      else finish(200, { E: null, r: answer }, 0);
    } catch (error) {
      fail(error);
    }
  });
}

type Answer = { s: number; f: number } | { s: true } | { n: number; f: number };

function publish(node: ApiNode, body: Record<string, unknown>): Answer | Promise<Answer> {
  const { target, payload, binary } = publishRequest(body);
  return settleMesh(() => node.publish(target, payload, binary), (result) => ({ s: result.s, f: result.f }));
}

function send(node: ApiNode, body: Record<string, unknown>): Answer | Promise<Answer> {
  const { target, payload, binary } = sendRequest(body);
  return settleMesh(() => node.send(target, payload, binary), (sent) => {
    if (!sent) throw new ApiError(ErrorCode.SEND_FAILED, `send failed: client ${target} not found or gone`);
    return { s: true };
  });
}

function count(node: ApiNode, body: Record<string, unknown>): Answer | Promise<Answer> {
  const channel = countRequest(body);
  return settleMesh(() => node.count(channel), (result) => ({ n: result.n, f: result.f }));
}

/**
 * Runs a mesh operation and shapes its answer, staying synchronous when the mesh is (the memory
 * broker); a failure of the mesh itself answers code 500, never a false success.
 */
function settleMesh<T>(operation: () => T | Promise<T>, shape: (value: T) => Answer): Answer | Promise<Answer> {
  const unavailable = (error: unknown): never => {
    throw new ApiError(ErrorCode.MESH_UNAVAILABLE, `mesh unavailable: ${(error as Error).message}`);
  };
  let value: T | Promise<T>;
  try {
    value = operation();
  } catch (error) {
    return unavailable(error);
  }
  return value instanceof Promise ? value.then(shape, unavailable) : shape(value);
}
