/**
 * socketio-redis: the barrage as a Socket.IO 4 user would write it, with @socket.io/redis-adapter so
 * that several nodes share rooms through Redis; WebSocket transport only, no compression.
 *   - a viewer emits "message" with the seed's JSON text; the server joins room video:<id> and emits
 *     "message" {"result":true} back;
 *   - POST /v1/mesh/publish {"c","d"} emits "message" d to room c (across nodes, through Redis);
 *   - the event "publish" {c, d} with an acknowledgement is its WebSocket publish API;
 *   - chat rooms, as lua/examples/chat-rooms.lua does them for connmix-ts (the chat-room scenario):
 *     "join" {room} joins room:<room> and emits "joined" {room}; "say" {room, text} from a member emits
 *     "said" {room, from: socket.id, text} to the whole room (sender included, across nodes); "leave"
 *     {room} leaves and emits "left" {room}; a bad room name, a text that is not a string or a say
 *     outside the room disconnects that socket.
 * usage: node socketio-server.js <port> <redis port>; prints "socketio listening on <port>".
 */
import * as http from 'node:http';
import { Server, type Socket } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import Redis from 'ioredis';

const port = Number(process.argv[2]);
const redisPort = Number(process.argv[3]);

const pub = new Redis({ host: '127.0.0.1', port: redisPort });
const sub = pub.duplicate();

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/mesh/publish') return; // Socket.IO answers its own paths
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let body: string;
    try {
      const request = JSON.parse(Buffer.concat(chunks).toString());
      if (typeof request.c !== 'string' || typeof request.d !== 'string') throw new Error('bad request');
      io.to(request.c).emit('message', request.d);
      body = '{"E":null,"r":{"s":0,"f":0}}';
    } catch (error) {
      body = JSON.stringify({ E: { c: 101, m: (error as Error).message } });
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
});

const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  adapter: createAdapter(pub, sub),
});

io.on('connection', (socket: Socket) => {
  socket.on('message', (raw: unknown) => {
    let message: { op?: unknown; channel?: unknown };
    try {
      message = JSON.parse(String(raw));
    } catch {
      socket.disconnect(true);
      return;
    }
    const parts = typeof message.channel === 'string' ? message.channel.split('@') : [];
    if (!message.op || parts.length !== 2) {
      socket.disconnect(true);
      return;
    }
    if (parts[1] === 'video') {
      if (message.op === 'subscribe') void socket.join(`video:${parts[0]}`);
      else if (message.op === 'unsubscribe') void socket.leave(`video:${parts[0]}`);
    }
    socket.emit('message', '{"result":true}');
  });
  socket.on('join', (request: { room?: unknown }) => {
    const room = roomOf(request);
    if (room === null) {
      socket.disconnect(true);
      return;
    }
    void socket.join(`room:${room}`);
    socket.emit('joined', { room });
  });
  socket.on('say', (request: { room?: unknown; text?: unknown }) => {
    const room = roomOf(request);
    if (room === null || typeof request.text !== 'string' || !socket.rooms.has(`room:${room}`)) {
      socket.disconnect(true);
      return;
    }
    io.to(`room:${room}`).emit('said', { room, from: socket.id, text: request.text });
  });
  socket.on('leave', (request: { room?: unknown }) => {
    const room = roomOf(request);
    if (room === null) {
      socket.disconnect(true);
      return;
    }
    void socket.leave(`room:${room}`);
    socket.emit('left', { room });
  });
  socket.on('publish', (request: { c?: unknown; d?: unknown }, ack?: (answer: unknown) => void) => {
    if (typeof request?.c === 'string' && typeof request.d === 'string') {
      io.to(request.c).emit('message', request.d);
      ack?.({ s: 0, f: 0 });
    } else {
      ack?.({ E: { c: 101, m: 'bad request' } });
    }
  });
});

/** The room a chat request names, or null unless it is 1 to 64 letters, digits, "_" or "-". */
function roomOf(request: { room?: unknown } | null | undefined): string | null {
  const room = request?.room;
  return typeof room === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(room) ? room : null;
}

Promise.all([pub.ping(), sub.ping()]).then(
  () => server.listen(port, '127.0.0.1', () => process.stdout.write(`socketio listening on ${port}\n`)),
  (error: Error) => {
    process.stderr.write(`socketio: redis: ${error.message}\n`);
    process.exit(1);
  },
);

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
