import type { WebSocket } from 'ws';
import { dialect as dialectOf, type Dialect } from './dialects';
import type { OpenClients } from './audience';
import { openClient, forEachLimit, closeAll } from './connect';

/** Parameters of `storm.connect`: as an audience's open, each connection a group of its own (connection i uses urls[i % urls.length]). */
export type StormConnect = OpenClients;

export interface StormMessages {
  /** How many of the storm's connections send; each keeps `window` messages in flight. */
  connections: number;
  window: number;
  durationMs: number;
}

export interface StormResult {
  /** Answers received: one per Lua on_message call (or per subscribe handled, for the peers). */
  answers: number;
  failed: number;
  errors: string[];
  ms: number;
}

interface StormClient {
  ws: WebSocket;
  video: number;
  /** Called on each `{"result":true}`. */
  onResult: () => void;
}

/**
 * subscribe-storm: new connections that subscribe at once, as fast as the target takes them; then the
 * same connections sending subscribe/unsubscribe messages back to back, which isolates the cost of one
 * script call (on_message) from the cost of a WebSocket handshake.
 */
export class Storm {
  private clients: StormClient[] = [];
  private dialect: Dialect | null = null;

  async connect(params: StormConnect): Promise<StormResult> {
    const dialect = (this.dialect = dialectOf(params.dialect));
    const started = Date.now();
    const errors: string[] = [];
    let answers = 0;
    let failed = 0;
    await forEachLimit(params.count, params.concurrency, async (i) => {
      const index = params.firstIndex + i;
      const client: StormClient = { ws: null as unknown as WebSocket, video: 1_000_000 + index, onResult: () => {} };
      try {
        const answered = new Promise<void>((resolve) => (client.onResult = resolve));
        client.ws = await openClient({
          url: dialect.url(params.urls[index % params.urls.length]),
          dialect,
          localAddress: params.addresses[index % params.addresses.length],
          timeoutMs: params.timeoutMs,
          onData: (_ws, data) => {
            if (dialect.isResult(data)) client.onResult();
          },
        });
        client.ws.send(dialect.subscribe(client.video));
        await withTimeout(answered, params.timeoutMs, 'no answer to subscribe');
        answers++;
        this.clients.push(client);
      } catch (error) {
        failed++;
        client.ws?.terminate();
        if (errors.length < 5) errors.push((error as Error).message);
      }
    });
    return { answers, failed, errors, ms: Date.now() - started };
  }

  /** Every sending connection alternates unsubscribe/subscribe of its own video, `window` in flight. */
  async messages(params: StormMessages): Promise<StormResult> {
    const dialect = this.dialect!;
    const senders = this.clients.slice(0, params.connections);
    const started = Date.now();
    const deadline = started + params.durationMs;
    let answers = 0;
    let stopped = false;
    await new Promise<void>((resolve) => {
      let running = senders.length;
      if (running === 0) resolve();
      for (const client of senders) {
        let flip = false;
        const sendOne = () => {
          flip = !flip;
          client.ws.send(flip ? dialect.unsubscribe(client.video) : dialect.subscribe(client.video));
        };
        let inFlight = params.window;
        client.onResult = () => {
          if (stopped) return;
          answers++;
          inFlight--;
          if (Date.now() < deadline) {
            inFlight++;
            sendOne();
          } else if (inFlight === 0 && --running === 0) resolve();
        };
        for (let k = 0; k < params.window; k++) sendOne();
      }
      // Bounded even if answers stop coming.
      setTimeout(() => {
        stopped = true;
        resolve();
      }, params.durationMs + 5000).unref();
    });
    stopped = true;
    return { answers, failed: 0, errors: [], ms: Date.now() - started };
  }

  async close(): Promise<void> {
    await closeAll(this.clients.map((client) => client.ws));
    this.clients = [];
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]);
}
