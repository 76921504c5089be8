import { WebSocket } from 'ws';
import type { Dialect } from './dialects';

export interface ClientOptions {
  url: string;
  dialect: Dialect;
  /** Source address (127.0.0.x): each gives its own ~28,000 ephemeral ports towards one server port. */
  localAddress: string;
  timeoutMs: number;
  /** Application frames (not the dialect's protocol frames). */
  onData(ws: WebSocket, data: Buffer): void;
}

/** Opens one client and resolves once it may subscribe (after the dialect's handshake, if any). */
export function openClient(options: ClientOptions): Promise<WebSocket> {
  const { dialect } = options;
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(options.url, {
      perMessageDeflate: false,
      localAddress: options.localAddress,
      handshakeTimeout: options.timeoutMs,
      // The load generator shares the CPU with the server: skip what a real client would not notice.
      skipUTF8Validation: true,
    });
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`not ready after ${options.timeoutMs} ms`)), options.timeoutMs);
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ws);
    };
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(error);
    };
    ws.on('open', () => {
      if (dialect.readyOnOpen) done();
    });
    ws.on('message', (data: Buffer) => {
      const kind = dialect.control(ws, data);
      if (kind === 'ready') done();
      else if (kind === 'data') options.onData(ws, data);
    });
    ws.on('error', (error) => fail(error));
    ws.on('close', (code) => fail(new Error(`closed with ${code} before ready`)));
  });
}

/**
 * Opens one client, sends `greeting` and resolves once the client has its answer: `awaitAnswer` gets
 * the function to call then (the client's onData sees the answer). A client with no answer within
 * timeoutMs, or closed meanwhile, is terminated and the promise rejects.
 */
export async function openGreeted(options: ClientOptions, greeting: string, what: string,
  awaitAnswer: (answered: () => void) => void): Promise<WebSocket> {
  const ws = await openClient(options);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${what}`)), options.timeoutMs);
      awaitAnswer(() => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('close', (code) => reject(new Error(`closed with ${code} after ${what}`)));
      ws.send(greeting);
    });
  } catch (error) {
    ws.terminate();
    throw error;
  }
  ws.removeAllListeners('close');
  return ws;
}

/** How often each seed client pings. */
const KEEPALIVE_MS = 20_000;

/**
 * Seed clients ping every KEEPALIVE_MS, spread over the seconds, as real clients do: connmix.yaml closes
 * a connection that sends nothing for readTimeout (60 s), and long runs last longer (Socket.IO pings
 * from the server). Returns the timer, to clear when the clients close.
 */
export function keepAlive(clients: ReadonlyArray<{ ws: WebSocket }>): NodeJS.Timeout {
  let next = 0;
  const slices = KEEPALIVE_MS / 1000;
  return setInterval(() => {
    const n = Math.ceil(clients.length / slices);
    for (let k = 0; k < n && clients.length > 0; k++) {
      const { ws } = clients[next++ % clients.length];
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }
  }, 1000);
}

/** Runs `task(i)` for i in [0, count) with at most `limit` running at once. */
export async function forEachLimit(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}

/** Closes clients and waits (bounded) until their sockets are gone, so fds are free for the next phase. */
export async function closeAll(clients: Iterable<WebSocket>, timeoutMs = 5000): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const ws of clients) {
    if (ws.readyState === WebSocket.CLOSED) continue;
    waits.push(new Promise<void>((resolve) => ws.once('close', () => resolve())));
    // terminate: no close handshake to wait for; the server sees the TCP close at once.
    ws.terminate();
  }
  await allWithin(waits, timeoutMs);
}

/** Waits until every promise has resolved, or `timeoutMs` passed: a phase of the load never hangs on stragglers. */
export async function allWithin(waits: Promise<unknown>[], timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(waits), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}
