import * as net from 'node:net';
import { dialect as dialectOf, type DialectName } from './dialects';
import { openClient, closeAll } from './connect';
import { comment } from './payload';

export interface HttpPublishLoad {
  host: string;
  port: number;
  /** Channels the publishes go to, in turn. */
  channels: string[];
  connections: number;
  /** Requests each connection keeps in flight (HTTP/1.1 pipelining: a cheap client, so the server is measured). */
  pipeline: number;
  durationMs: number;
  localAddress: string;
}

export interface WsPublishLoad {
  url: string;
  dialect: DialectName;
  channels: string[];
  connections: number;
  window: number;
  durationMs: number;
  localAddress: string;
}

export interface ApiResult {
  ok: number;
  errors: number;
  ms: number;
  firstError?: string;
}

/** Counts occurrences of a marker in a byte stream split into chunks at arbitrary places. */
class MarkerCounter {
  private carry = Buffer.alloc(0);
  constructor(private readonly marker: Buffer) {}

  count(chunk: Buffer): number {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    let n = 0;
    let at = data.indexOf(this.marker);
    while (at !== -1) {
      // A match lying wholly inside the carry was counted with the previous chunk.
      if (at + this.marker.length > this.carry.length) n++;
      at = data.indexOf(this.marker, at + 1);
    }
    this.carry = Buffer.from(data.subarray(Math.max(0, data.length - this.marker.length + 1)));
    return n;
  }
}

/** POST /v1/mesh/publish as fast as the server answers, `pipeline` requests in flight per connection. */
export async function httpPublish(load: HttpPublishLoad): Promise<ApiResult> {
  const requests = load.channels.map((channel, i) => {
    const body = JSON.stringify({ c: channel, d: comment(i, 0) });
    return Buffer.from(
      `POST /v1/mesh/publish HTTP/1.1\r\nHost: ${load.host}:${load.port}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  const started = Date.now();
  const deadline = started + load.durationMs;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const batch = (n: number) => {
    const parts: Buffer[] = [];
    for (let k = 0; k < n; k++) parts.push(requests[next++ % requests.length]);
    return Buffer.concat(parts);
  };
  await Promise.all(
    Array.from({ length: load.connections }, () => new Promise<void>((resolve) => {
      const socket = net.connect({ host: load.host, port: load.port, localAddress: load.localAddress });
      const responses = new MarkerCounter(Buffer.from('HTTP/1.1 '));
      const successes = new MarkerCounter(Buffer.from('"E":null'));
      let inFlight = 0;
      const finish = () => {
        socket.destroy();
        resolve();
      };
      const timer = setTimeout(finish, load.durationMs + 5000);
      socket.on('connect', () => {
        inFlight = load.pipeline;
        socket.write(batch(load.pipeline));
      });
      socket.on('data', (chunk: Buffer) => {
        const answered = responses.count(chunk);
        const good = successes.count(chunk);
        ok += good;
        errors += Math.max(0, answered - good);
        if (answered > good && !firstError) firstError = chunk.toString('latin1', 0, 200);
        inFlight -= answered;
        if (Date.now() < deadline) {
          inFlight += answered;
          if (answered > 0) socket.write(batch(answered));
        } else if (inFlight <= 0) {
          clearTimeout(timer);
          finish();
        }
      });
      socket.on('error', (error) => {
        errors++;
        firstError ??= error.message;
        clearTimeout(timer);
        finish();
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
    })),
  );
  return { ok, errors, ms: Date.now() - started, firstError };
}

/** `mesh.publish` on the target's WebSocket API (`/ws/v1`, or a Socket.IO event with an ack). */
export async function wsPublish(load: WsPublishLoad): Promise<ApiResult> {
  const dialect = dialectOf(load.dialect);
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  let id = 0;
  const started = Date.now();
  const deadline = started + load.durationMs;
  const clients = await Promise.all(
    Array.from({ length: load.connections }, () => {
      let onAnswer: (data: Buffer) => void = () => {};
      return openClient({
        url: load.url,
        dialect,
        localAddress: load.localAddress,
        timeoutMs: 10_000,
        onData: (_ws, data) => onAnswer(data),
      }).then((ws) => ({ ws, setHandler: (f: (data: Buffer) => void) => (onAnswer = f) }));
    }),
  );
  const bodies = load.channels.map((channel, i) => ({ channel, d: comment(i, 0) }));
  await Promise.all(
    clients.map(({ ws, setHandler }) => new Promise<void>((resolve) => {
      let inFlight = 0;
      const send = () => {
        const body = bodies[id % bodies.length];
        ws.send(dialect.apiPublish(body.channel, body.d, id++));
        inFlight++;
      };
      const timer = setTimeout(resolve, load.durationMs + 5000);
      setHandler((data) => {
        inFlight--;
        if (dialect.isApiOk(data)) ok++;
        else {
          errors++;
          firstError ??= data.toString('utf8', 0, 200);
        }
        if (Date.now() < deadline) send();
        else if (inFlight === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (let k = 0; k < load.window; k++) send();
    })),
  );
  const ms = Date.now() - started;
  await closeAll(clients.map((client) => client.ws));
  return { ok, errors, ms, firstError };
}
