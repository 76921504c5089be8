import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { parseConfig } from '../../src/config';
import { Engine } from '../../src/engine';
import { memoryLogger } from './lua-harness';
import { Waker } from './waker';

/**
 * A test entry that runs each text message as Lua inside on_message and answers with the returned
 * values as a JSON array; binary messages are echoed. on_handshake keeps its arguments in `handshake`
 * and fails when asked to (header X-Fail: handshake); on_close publishes "<client_id> <err>" to `closes`.
 */
export const EVAL = `
function on_handshake(client_id, headers, server)
  if headers["X-Fail"] == "handshake" then error("handshake refused by script") end
  handshake = { id = client_id, headers = headers, server = server }
end
function on_message(msg)
  local conn = mix.websocket()
  if msg.type == "binary" then conn:send(msg.data, "binary") return end
  local f, err = load(msg.data, "=cmd")
  if not f then conn:send("compile error: " .. err) return end
  conn:send(mix.json_encode({ f() }))
end
function on_close(client_id, err)
  mix.mesh.publish("closes", client_id .. " " .. tostring(err))
end
`;

/** The repository root (tests run from dist/test). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Ports this process's freePort already returned. */
const handedOut = new Set<number>();

/**
 * A TCP port that was free a moment ago on 127.0.0.1, below Linux's ephemeral range (32768-60999): a
 * port the kernel hands out could be taken by any outgoing connection (a client reconnecting in the
 * background) before the test listens on it.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    // A port handed out earlier may not be listened on yet: two calls in a row must not return it twice.
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port between 20000 and 31999');
}

/** Whether a server can listen on 127.0.0.1:`port` right now. */
export function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface TestNode {
  engine: Engine;
  dir: string;
  /** ws://127.0.0.1:<port><path> of the first business server. */
  wsUrl: string;
  /** http://127.0.0.1:<port> of the API server. */
  apiUrl: string;
  /** 127.0.0.1:<port> of the center API (what the PHP SDK's setHost takes) when `center` asked for it, else ''. */
  centerHost: string;
  /** Port of the `protocol: socket` server on 127.0.0.1 when `socketEntry` asked for one, else 0. */
  socketPort: number;
  logs: string[];
  stop(): Promise<void>;
}

export interface TestNodeOptions {
  /** Lua files by relative path; `lua/entry.websocket.lua` defaults to the shipped barrage script. */
  lua?: Record<string, string>;
  /** Extra keys for the server entry, as yaml lines (indented under the entry). */
  serverYaml?: string;
  /** Extra yaml under `engine:` (indented by 2). */
  engineYaml?: string;
  /** Extra yaml under `engine.luavm:` (indented by 4). */
  luavmYaml?: string;
  path?: string;
  /** Extra `options` entries of the websocket server (name → value), read by Lua with `mix.server.option(name)`. */
  options?: Record<string, string>;
  callBudget?: number;
  /** `engine.apiServer.readTimeout` in seconds (default 60). */
  apiReadTimeout?: number;
  /** `engine.apiServer.bind` (default 127.0.0.1). */
  apiBind?: string;
  /** Extra keys under `engine.apiServer`, as yaml lines (indented by 4). */
  apiYaml?: string;
  /** Yaml for `access.users` entries (indented by 4). */
  accessYaml?: string;
  /** Seconds between Lua reload checks (0 = off, the default in tests). */
  byteCodeExpires?: number;
  /** Adds a `protocol: socket` server after the websocket one, running this entry (a path among `lua`). */
  socketEntry?: string;
  /** Extra keys for the socket server entry, as yaml lines (indented like serverYaml). */
  socketYaml?: string;
  /** Also serve the center API on a free loopback port, as `connmix dev` and `single` do. */
  center?: boolean;
}

/** Starts an engine in this process on free loopback ports, with its own folder of Lua files. */
export async function startNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-node-'));
  const files = {
    'lua/entry.websocket.lua': fs.readFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), 'utf8'),
    ...options.lua,
  };
  for (const [name, source] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), source);
  }
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  const socketPort = options.socketEntry ? await freePort() : 0;
  const centerPort = options.center ? await freePort() : 0;
  const socketServer = options.socketEntry
    ? `    - port: ${socketPort}
      bind: 127.0.0.1
      protocol: socket
      entry: ${options.socketEntry}
      byteCodeExpires: 0
${options.socketYaml ?? ''}`
    : '';
  const urlPath = options.path ?? '/barrage-videos';
  const extraOptions = Object.entries(options.options ?? {})
    .map(([name, value]) => `        - name: ${name}\n          value: ${JSON.stringify(value)}\n`)
    .join('');
  const yaml = `
logging:
  level: debug
access:
  users:
${options.accessYaml ?? ''}
${options.center ? `center:\n  apiServer: { port: ${centerPort}, bind: 127.0.0.1 }\n` : ''}engine:
  apiServer:
    port: ${apiPort}
    bind: ${options.apiBind ?? '127.0.0.1'}
    readTimeout: ${options.apiReadTimeout ?? 60}
${options.apiYaml ?? ''}
  luavm:
    callBudget: ${options.callBudget ?? 100}
${options.luavmYaml ?? ''}
${options.engineYaml ?? ''}
  servers:
    - port: ${wsPort}
      bind: 127.0.0.1
      options:
        - name: path
          value: ${urlPath}
${extraOptions}      entry: lua/entry.websocket.lua
      byteCodeExpires: ${options.byteCodeExpires ?? 0}
${options.serverYaml ?? ''}
${socketServer}
`;
  const file = path.join(dir, 'connmix.yaml');
  fs.writeFileSync(file, yaml);
  const { log, lines } = memoryLogger();
  const engine = new Engine(parseConfig(yaml, file, { warn: () => undefined }), { log, centerApi: options.center });
  try {
    await engine.start();
  } catch (error) {
    // A server that failed to start must not leave the ones before it listening.
    await engine.stop();
    throw error;
  }
  return {
    engine,
    dir,
    wsUrl: `ws://127.0.0.1:${wsPort}${urlPath}`,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    centerHost: options.center ? `127.0.0.1:${centerPort}` : '',
    socketPort,
    logs: lines,
    stop: () => engine.stop(),
  };
}

/** Runs `body` with a fresh node and stops the node afterwards, whatever happens. */
export async function withNode(options: TestNodeOptions, body: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await startNode(options);
  try {
    await body(node);
  } finally {
    await node.stop();
  }
}

/** A message a test client received. */
export interface Received {
  data: string;
  binary: boolean;
  raw: Buffer;
}

/** A WebSocket client that queues what it receives, so tests can await messages in order. */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waker = new Waker();

  constructor(url: string, options?: ConstructorParameters<typeof WebSocket>[2]) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (raw: Buffer, binary: boolean) => {
      this.received.push({ data: raw.toString('utf8'), binary, raw });
      this.waker.wake();
    });
    this.ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.waker.wake();
      });
    });
  }

  /** Connects, failing after 5 s when the server accepts TCP but never answers the upgrade. */
  static async open(url: string, options?: ConstructorParameters<typeof WebSocket>[2]): Promise<TestClient> {
    const client = new TestClient(url, { handshakeTimeout: 5000, ...options });
    await new Promise<void>((resolve, reject) => {
      client.ws.once('open', () => resolve());
      client.ws.once('error', reject);
      client.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return client;
  }

  send(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The next message not yet taken, waiting up to `timeoutMs` (generous: the machine may be busy). */
  async next(timeoutMs = 10_000): Promise<Received> {
    await this.waker.until(() => this.received.length > 0, timeoutMs, () => `no message within ${timeoutMs} ms`, () => {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('connection closed while waiting for a message');
    });
    return this.received.shift() as Received;
  }

  /** Sends `data` and returns the next message. */
  async request(data: string): Promise<string> {
    this.send(data);
    return (await this.next()).data;
  }

  /** Resolves to true if nothing arrives within `ms`. */
  async silentFor(ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.received.length === 0;
  }

  async waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return withTimeout(this.closed, timeoutMs, 'connection did not close');
  }

  close(): void {
    this.ws.close();
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a test's HTTP request may take before it fails (fetch alone would wait 300 s for headers). */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * A parsed JSON answer or event as tests read it. Tests check answers with deepEqual/match, and a wrong
 * shape fails the test where a field is read, so a type per answer would add nothing but noise.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- test answers are checked by deepEqual, typing each is noise
export type Json = any;

/** POSTs a JSON body (or raw text) and returns the parsed answer with its HTTP status. */
export async function post(url: string, body: unknown): Promise<{ status: number; json: Json }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: response.status, json: await response.json() };
}

export async function get(url: string): Promise<{ status: number; json: Json }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  return { status: response.status, json: await response.json() };
}

/** The value of the first /metrics sample whose line matches `pattern` (0 when there is none). */
export async function metric(apiUrl: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${apiUrl}/metrics`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).text();
  const line = text.split('\n').find((candidate) => pattern.test(candidate));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `every` ms until it returns a truthy value; fails after `ms` naming `what`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, ms = 10_000, every = 50): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(every);
  }
}
