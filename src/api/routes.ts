import type { Request, Response } from 'express';
import type { Mesh, MeshCommands } from '../mesh/mesh';
import type { Metrics } from '../metrics';
import type { Role } from './access';
import * as commands from './commands';
import type { MaybePromise } from '../wire/maybe-promise';

/** What the read-only routes need: the center API serves them with no publish or send behind it. */
export type NodeListing = Pick<Mesh, 'nodes' | 'ready'>;

/** A route express serves. `role` null: no credentials asked (the probes). */
export interface ExpressRoute {
  method: 'GET';
  path: string;
  role: Role | null;
  /** Only where the server keeps metrics (the engine's API, not the center). */
  needsMetrics?: boolean;
  serve(node: NodeListing, metrics: Metrics | undefined, req: Request, res: Response): void | Promise<void>;
}

/** A per-message route, served before express (see mesh-routes.ts): a JSON body in, a command's answer out. */
export interface MeshRoute {
  method: 'POST';
  path: string;
  role: Role;
  command(mesh: MeshCommands, params: Record<string, unknown>): MaybePromise<commands.Answer>;
}

/** Every HTTP route of the API servers (CONNMIX docs, websocket-api, and the center routes the PHP SDK calls; plus /metrics and the probes). */
export const ROUTES: readonly (ExpressRoute | MeshRoute)[] = [
  // Probes for load balancers and orchestrators: no credentials, nothing revealed.
  { method: 'GET', path: '/healthz', role: null, serve: (_node, _metrics, _req, res) => void res.json({ ok: true }) },
  {
    method: 'GET', path: '/readyz', role: null, serve: (node, _metrics, _req, res) => {
      const ready = node.ready();
      res.status(ready ? 200 : 503).json({ ready });
    },
  },
  {
    method: 'GET', path: '/metrics', role: 'read', needsMetrics: true, serve: async (_node, metrics, _req, res) => {
      if (!metrics) return;
      res.setHeader('content-type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
    },
  },
  { method: 'GET', path: '/version', role: 'read', serve: (_node, _metrics, _req, res) => void res.json({ apis: ['v1'] }) },
  { method: 'GET', path: '/v1/nodes', role: 'read', serve: async (node, _metrics, _req, res) => void res.json({ nodes: await listNodes(node) }) },
  { method: 'POST', path: '/v1/mesh/publish', role: 'write', command: commands.publish },
  { method: 'POST', path: '/v1/mesh/send', role: 'write', command: commands.send },
  // A count changes nothing: the `read` role may ask for it.
  { method: 'POST', path: '/v1/mesh/count', role: 'read', command: commands.count },
];

export function isMeshRoute(route: ExpressRoute | MeshRoute): route is MeshRoute {
  return route.method === 'POST';
}

/**
 * The node list; a failure of the mesh itself answers code 500, never a false success. Each node also
 * carries its API address as `host`, the name PHP SDK v1.0.1 to v1.0.4 read it by.
 */
async function listNodes(node: NodeListing): Promise<unknown> {
  try {
    return (await node.nodes()).map(({ id, api_server }) => ({ id, api_server, host: api_server }));
  } catch (error) {
    return commands.unavailable(error);
  }
}
