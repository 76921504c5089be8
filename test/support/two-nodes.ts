import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as path from 'node:path';
import { ROOT, startNode, type TestNode, type TestNodeOptions } from './helpers';
import { RedisServer } from './redis';
import { meshYaml } from './mesh';

// What every conformance file needs: the example Lua exactly as shipped under lua/examples/, and the
// smallest real mesh (two engines in this process sharing one redis-server).

/** The text of `lua/<file>` in the repository, unchanged. */
export function shippedLua(file: string): string {
  return fs.readFileSync(path.join(ROOT, 'lua', file), 'utf8');
}

/** Node options that serve `lua/examples/<file>` as the websocket entry on `urlPath`. */
export function exampleEntry(file: string, urlPath: string, extra: TestNodeOptions = {}): TestNodeOptions {
  return { ...extra, path: urlPath, lua: { 'lua/entry.websocket.lua': shippedLua(`examples/${file}`), ...extra.lua } };
}

export interface TwoNodes {
  redis: RedisServer;
  a: TestNode;
  b: TestNode;
  stop(): Promise<void>;
}

/** Starts a redis-server and two engines with the same options meshed through it (broker: redis). */
export async function startTwoNodes(options: TestNodeOptions): Promise<TwoNodes> {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  };
  try {
    const engineYaml = `${meshYaml([redis.address], 'conformance:')}${options.engineYaml ?? ''}`;
    for (let i = 0; i < 2; i++) nodes.push(await startNode({ ...options, engineYaml }));
  } catch (error) {
    await stop();
    throw error;
  }
  return { redis, a: nodes[0], b: nodes[1], stop };
}

/** One request the auth endpoint received. */
export interface AuthRequest {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

/**
 * The business auth endpoint of the message-center and exchange examples: `POST /websocket_auth` on a
 * free 127.0.0.1 port. The examples send `{"token:"<token>"}` (not valid JSON, as documented), so the
 * token is read with a pattern. Tokens: "t1002" is uid 1002, "denied" answers 401, "garbled" answers
 * 200 with a body that is not JSON, "slow" answers uid 1001 after 300 ms, "held" answers uid 1001 when
 * the test calls `releaseHeld()`; any other token is uid 1001.
 */
export class AuthServer {
  readonly requests: AuthRequest[] = [];
  /** The answers of "held" requests, waiting for releaseHeld(). */
  private readonly held: (() => void)[] = [];

  private constructor(private readonly server: http.Server) {}

  static async start(): Promise<AuthServer> {
    const auth = new AuthServer(http.createServer((req, res) => auth.handle(req, res)));
    await new Promise<void>((resolve) => auth.server.listen(0, '127.0.0.1', resolve));
    return auth;
  }

  /** The value for the examples' `auth_url` server option. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}/websocket_auth`;
  }

  /** How many "held" requests wait for their answer. */
  get heldCount(): number {
    return this.held.length;
  }

  /** Answers every "held" request. */
  releaseHeld(): void {
    for (const answer of this.held.splice(0)) answer();
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body });
      const token = /^\{"token:"(.*)"\}$/.exec(body)?.[1];
      const reply = (status: number, text: string): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(text);
      };
      if (req.method !== 'POST' || req.url !== '/websocket_auth' || token === undefined) return reply(400, '{"error":"bad request"}');
      if (token === 'denied') return reply(401, '{"error":"invalid token"}');
      if (token === 'garbled') return reply(200, '<html>oops</html>');
      if (token === 'slow') {
        setTimeout(() => reply(200, '{"uid":1001}'), 300);
        return;
      }
      if (token === 'held') {
        this.held.push(() => reply(200, '{"uid":1001}'));
        return;
      }
      reply(200, JSON.stringify({ uid: token === 't1002' ? 1002 : 1001 }));
    });
  }
}
