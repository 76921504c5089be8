import { dialect as dialectOf, type Dialect } from './dialects';
import type { OpenClients } from './audience';
import { forEachLimit, allWithin } from './connect';
import { BareSocket } from './bare-socket';

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
  socket: BareSocket;
  video: number;
  /** Called on each `{"result":true}`. */
  onResult: () => void;
}

/**
 * subscribe-storm: new connections that subscribe at once, as fast as the target takes them; then the
 * same connections sending subscribe/unsubscribe messages back to back, which isolates the cost of one
 * script call (on_message) from the cost of a WebSocket handshake. The clients are bare sockets
 * (bare-socket.ts), so that the load costs less per connect than any server and the rate measures the
 * servers.
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
      try {
        this.clients.push(await subscribed(dialect, {
          url: dialect.url(params.urls[index % params.urls.length]),
          localAddress: params.addresses[index % params.addresses.length],
          timeoutMs: params.timeoutMs,
        }, 1_000_000 + index));
        answers++;
      } catch (error) {
        failed++;
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
          client.socket.send(flip ? dialect.unsubscribe(client.video) : dialect.subscribe(client.video));
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
    const gone = this.clients.map((client) => {
      client.socket.terminate();
      return client.socket.whenClosed();
    });
    this.clients = [];
    // Bounded, as closeAll: the fds are free for the next phase, or the run goes on anyway.
    await allWithin(gone, 5000);
  }
}

/**
 * Opens one client, waits for the dialect's handshake, subscribes to `video` and resolves on the answer.
 * Rejects (the socket terminated) on a failure or when all this takes longer than timeoutMs.
 */
function subscribed(dialect: Dialect, where: { url: string; localAddress: string; timeoutMs: number }, video: number): Promise<StormClient> {
  return new Promise<StormClient>((resolve, reject) => {
    let settled = false;
    const client: StormClient = {
      socket: null as unknown as BareSocket,
      video,
      onResult: () => {
        settled = true;
        clearTimeout(timer);
        resolve(client);
      },
    };
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.socket?.terminate();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail(`no answer to subscribe after ${where.timeoutMs} ms`), where.timeoutMs);
    BareSocket.open({
      ...where,
      onMessage: (data, socket) => {
        const kind = dialect.control(socket, data);
        if (kind === 'ready') socket.send(dialect.subscribe(video));
        else if (kind === 'data' && dialect.isResult(data)) client.onResult();
      },
    }).then((socket) => {
      client.socket = socket;
      if (settled) return socket.terminate();
      socket.onClose = (reason) => fail(`closed before the answer: ${reason}`);
      if (dialect.readyOnOpen) socket.send(dialect.subscribe(video));
    }, (error: Error) => fail(error.message));
  });
}
