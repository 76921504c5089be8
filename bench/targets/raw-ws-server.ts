/**
 * raw-ws: the smallest Node + ws server doing the barrage's job, the practical ceiling for Node.
 *   - viewers on /barrage-videos speak the seed's barrage and CONNMIX's quick-start chat room
 *     (bench/lib/seed-protocol.ts), one Viewer per connection; a chat member's client_id is a number
 *     per connection, as connmix-ts's is;
 *   - POST /v1/mesh/publish {"c","d"} and /ws/v1 {"m":"mesh.publish","p":{"c","d"},"i"} deliver `d`
 *     to every subscriber of `c`, as chat sends do: framed once, and every socket corked on its first
 *     write of a turn and uncorked once after the turn's I/O (stack-notes 2.4), so one writev per
 *     socket per turn.
 * usage: node raw-ws-server.js <port>; prints "raw-ws listening on <port>"; exits when stdin closes.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import { onSeedText, type SeedConnection } from '../lib/seed-protocol';

const port = Number(process.argv[2]);
const channels = new Map<string, Set<WebSocket>>();
let nextId = 0;

/** Sockets corked this turn, uncorked together by one setImmediate. */
const corked: Socket[] = [];
function flush(): void {
  for (const socket of corked) socket.uncork();
  corked.length = 0;
}

/** One final, unmasked text frame, header and payload in one Buffer (what ws's Sender.frame builds: framed once per publish). */
function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(header + length);
  out[0] = 0x81;
  if (length < 126) out[1] = length;
  else if (length < 65536) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(out, header);
  return out;
}

function publish(channel: string, data: string): number {
  const members = channels.get(channel);
  if (!members) return 0;
  const frame = textFrame(Buffer.from(data));
  let sent = 0;
  for (const ws of members) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    const socket = (ws as unknown as { _socket: Socket & { writableCorked: number } })._socket;
    if (socket.writableCorked === 0) {
      socket.cork();
      if (corked.push(socket) === 1) setImmediate(flush);
    }
    socket.write(frame);
    sent++;
  }
  return sent;
}

/** One viewer connection: the channels it is in, for the protocol and for leaving them all on close. */
class Viewer implements SeedConnection {
  readonly clientId = String(++nextId);
  room?: string;
  readonly channels = new Set<string>();

  constructor(private readonly ws: WebSocket) {}

  join(channel: string): void {
    let members = channels.get(channel);
    if (!members) channels.set(channel, (members = new Set()));
    members.add(this.ws);
    this.channels.add(channel);
  }

  leave(channel: string): void {
    this.channels.delete(channel);
    const members = channels.get(channel);
    if (!members) return;
    members.delete(this.ws);
    if (members.size === 0) channels.delete(channel);
  }

  answer(text: string): void {
    this.ws.send(text);
  }

  publish(channel: string, text: string): void {
    publish(channel, text);
  }

  close(code?: number): void {
    this.ws.close(code);
  }
}

const viewers = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 64 * 1024 });
const api = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 16 * 1024 * 1024 });

viewers.on('connection', (ws: WebSocket) => {
  const viewer = new Viewer(ws);
  ws.on('message', (raw: Buffer) => onSeedText(viewer, raw.toString()));
  ws.on('close', () => {
    for (const channel of [...viewer.channels]) viewer.leave(channel);
  });
  ws.on('error', () => ws.terminate());
});

api.on('connection', (ws: WebSocket) => {
  ws.on('message', (raw: Buffer) => {
    let id: unknown = null;
    try {
      const request = JSON.parse(raw.toString());
      id = request.i ?? null;
      if (request.m !== 'mesh.publish' || typeof request.p?.c !== 'string' || typeof request.p?.d !== 'string') throw new Error('bad request');
      const s = publish(request.p.c, request.p.d);
      ws.send(`{"E":null,"r":{"s":${s},"f":0},"i":${JSON.stringify(id)}}`);
    } catch (error) {
      ws.send(JSON.stringify({ E: { c: 101, m: (error as Error).message }, r: null, i: id }));
    }
  });
  ws.on('error', () => ws.terminate());
});

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/mesh/publish') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let body: string;
    try {
      const request = JSON.parse(Buffer.concat(chunks).toString());
      if (typeof request.c !== 'string' || typeof request.d !== 'string') throw new Error('bad request');
      body = `{"E":null,"r":{"s":${publish(request.c, request.d)},"f":0}}`;
    } catch (error) {
      body = JSON.stringify({ E: { c: 101, m: (error as Error).message } });
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
});
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  const target = req.url === '/barrage-videos' ? viewers : req.url === '/ws/v1' ? api : null;
  if (!target) {
    socket.destroy();
    return;
  }
  target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`raw-ws listening on ${port}\n`));

// Never outlive the bench: it holds our stdin.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
