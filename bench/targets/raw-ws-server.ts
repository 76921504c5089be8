/**
 * raw-ws: the smallest Node + ws server doing the barrage's job, the practical ceiling for Node.
 *   - viewers on /barrage-videos send the seed's {"op":"subscribe","channel":"<id>@video"} and get
 *     {"result":true} (unsubscribe likewise);
 *   - POST /v1/mesh/publish {"c","d"} and /ws/v1 {"m":"mesh.publish","p":{"c","d"},"i"} deliver `d`
 *     to every subscriber of `c`: framed once, and every socket corked on its first write of a
 *     turn and uncorked once after the turn's I/O (stack-notes 2.4), so one writev per socket per turn;
 *   - CONNMIX's quick-start chat room on the same path, as lua/examples/chat-room.lua does it (the
 *     chat-room scenario): {"op":"join","room_id"} leaves the previous room, joins room:<room_id> and
 *     answers {"status":"success"}; {"op":"send","msg"} answers {"status":"success"} and delivers
 *     {"client_id","msg"} to the sender's room, the sender included; {"op":"quit"} leaves it and
 *     answers. A join without room_id or a send without msg is ignored; send or quit before any join
 *     closes the connection with 1011, as the script's Lua error does.
 * usage: node raw-ws-server.js <port>; prints "raw-ws listening on <port>"; exits when stdin closes.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2]);
const channels = new Map<string, Set<WebSocket>>();
const subscriptions = new WeakMap<WebSocket, Set<string>>();
/** A chat member's client_id: a number per connection, as connmix-ts's is. */
const ids = new WeakMap<WebSocket, string>();
let nextId = 0;
/** The room_id a chat member joined last (kept after quit, as the script keeps its context value). */
const rooms = new WeakMap<WebSocket, string>();

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
  let message: ChatRequest & { channel?: unknown };
  try {
    message = JSON.parse(raw.toString());
  } catch {
    ws.close();
    return;
  }
  if (message.op === 'join' || message.op === 'send' || message.op === 'quit') {
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

interface ChatRequest {
  op?: unknown;
  room_id?: unknown;
  msg?: unknown;
}

function onChat(ws: WebSocket, message: ChatRequest): void {
  if (message.op === 'join') {
    if (typeof message.room_id !== 'string' && typeof message.room_id !== 'number') return;
    const previous = rooms.get(ws);
    if (previous !== undefined) leave(ws, `room:${previous}`);
    join(ws, `room:${message.room_id}`);
    rooms.set(ws, String(message.room_id));
    ws.send('{"status":"success"}');
    return;
  }
  if (message.op === 'send' && (message.msg === undefined || message.msg === null)) return;
  const room = rooms.get(ws);
  if (room === undefined) {
    ws.close(1011);
    return;
  }
  if (message.op === 'quit') {
    leave(ws, `room:${room}`);
    ws.send('{"status":"success"}');
    return;
  }
  ws.send('{"status":"success"}');
  publish(`room:${room}`, JSON.stringify({ client_id: ids.get(ws), msg: message.msg }));
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
