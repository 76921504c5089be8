/**
 * raw-ws: the smallest Node + ws server doing the barrage's job, the practical ceiling for Node.
 *   - viewers on /barrage-videos send the seed's {"op":"subscribe","channel":"<id>@video"} and get
 *     {"result":true} (unsubscribe likewise);
 *   - POST /v1/mesh/publish {"c","d"} and /ws/v1 {"m":"mesh.publish","p":{"c","d"},"i"} deliver `d`
 *     to every subscriber of `c`: framed once, and every socket corked on its first write of a
 *     turn and uncorked once after the turn's I/O (stack-notes 2.4), so one writev per socket per turn;
 *   - chat rooms on the same path, as lua/examples/chat-rooms.lua does them (the chat-room scenario):
 *     {"op":"join","room"} / {"op":"leave","room"} (answered {"op":"joined"|"left","room"}) and
 *     {"op":"say","room","text"}, published as {"op":"said","room","from","text"} to room:<room>.
 * usage: node raw-ws-server.js <port>; prints "raw-ws listening on <port>"; exits when stdin closes.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2]);
const channels = new Map<string, Set<WebSocket>>();
const subscriptions = new WeakMap<WebSocket, Set<string>>();
/** A chat member's `from`: a number per connection, as a client id would be. */
const ids = new WeakMap<WebSocket, string>();
let nextId = 0;
const ROOM = /^[A-Za-z0-9_-]{1,64}$/;

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

function onViewerMessage(ws: WebSocket, raw: Buffer): void {
  let message: { op?: unknown; channel?: unknown; room?: unknown; text?: unknown };
  try {
    message = JSON.parse(raw.toString());
  } catch {
    ws.close();
    return;
  }
  if (message.op === 'join' || message.op === 'leave' || message.op === 'say') {
    onChat(ws, message);
    return;
  }
  const parts = typeof message.channel === 'string' ? message.channel.split('@') : [];
  if (!message.op || parts.length !== 2) {
    ws.close();
    return;
  }
  if (parts[1] === 'video') {
    const channel = `video:${parts[0]}`;
    if (message.op === 'subscribe') join(ws, channel);
    else if (message.op === 'unsubscribe') leave(ws, channel);
  }
  ws.send('{"result":true}');
}

function onChat(ws: WebSocket, message: { op?: unknown; room?: unknown; text?: unknown }): void {
  const room = typeof message.room === 'string' && ROOM.test(message.room) ? message.room : null;
  const channel = `room:${room}`;
  if (room === null || (message.op === 'say' && (typeof message.text !== 'string' || !subscriptions.get(ws)!.has(channel)))) {
    ws.close();
    return;
  }
  if (message.op === 'say') {
    publish(channel, JSON.stringify({ op: 'said', room, from: ids.get(ws), text: message.text }));
  } else if (message.op === 'join') {
    join(ws, channel);
    ws.send(JSON.stringify({ op: 'joined', room }));
  } else {
    leave(ws, channel);
    ws.send(JSON.stringify({ op: 'left', room }));
  }
}

function join(ws: WebSocket, channel: string): void {
  let members = channels.get(channel);
  if (!members) channels.set(channel, (members = new Set()));
  members.add(ws);
  subscriptions.get(ws)!.add(channel);
}

function leave(ws: WebSocket, channel: string): void {
  subscriptions.get(ws)?.delete(channel);
  const members = channels.get(channel);
  if (!members) return;
  members.delete(ws);
  if (members.size === 0) channels.delete(channel);
}

const viewers = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 64 * 1024 });
const api = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 16 * 1024 * 1024 });

viewers.on('connection', (ws: WebSocket) => {
  subscriptions.set(ws, new Set());
  ids.set(ws, String(++nextId));
  ws.on('message', (raw: Buffer) => onViewerMessage(ws, raw));
  ws.on('close', () => {
    for (const channel of [...subscriptions.get(ws)!]) leave(ws, channel);
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
