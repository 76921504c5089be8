/**
 * socketio-redis: the barrage as a Socket.IO 4 user would write it, with @socket.io/redis-adapter so
 * that several nodes share rooms through Redis; WebSocket transport only, no compression.
 *   - a viewer emits "message" with the seed's JSON text; the server joins room video:<id> and emits
 *     "message" {"result":true} back;
 *   - POST /v1/mesh/publish {"c","d"} emits "message" d to room c (across nodes, through Redis);
 *   - the event "publish" {c, d} with an acknowledgement is its WebSocket publish API;
 *   - CONNMIX's quick-start chat room, as lua/examples/chat-room.lua does it for connmix-ts (the
 *     chat-room scenario), in the text of "message" events like the barrage: {"op":"join","room_id"}
 *     leaves the previous room, socket.join("room:<room_id>") and emits "message" {"status":"success"};
 *     {"op":"send","msg"} emits {"status":"success"} to the sender, then io.to(room).emit("message",
 *     {"client_id":socket.id,"msg"}) as JSON text (the sender included, across nodes); {"op":"quit"}
 *     leaves and answers. A join without room_id or a send without msg is ignored; send or quit
 *     before any join disconnects the socket, as the script's Lua error closes the connection.
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
  /** The room_id this socket joined last (kept after quit, as the script keeps its context value). */
  let room: string | undefined;
  const chat = (message: { op?: unknown; room_id?: unknown; msg?: unknown }): void => {
    if (message.op === 'join') {
      if (typeof message.room_id !== 'string' && typeof message.room_id !== 'number') return;
      if (room !== undefined) void socket.leave(`room:${room}`);
      room = String(message.room_id);
      void socket.join(`room:${room}`);
      socket.emit('message', '{"status":"success"}');
      return;
    }
    if (message.op === 'send' && (message.msg === undefined || message.msg === null)) return;
    if (room === undefined) {
      socket.disconnect(true);
      return;
    }
    if (message.op === 'quit') {
      void socket.leave(`room:${room}`);
      socket.emit('message', '{"status":"success"}');
      return;
    }
    socket.emit('message', '{"status":"success"}');
    io.to(`room:${room}`).emit('message', JSON.stringify({ client_id: socket.id, msg: message.msg }));
  };
  socket.on('message', (raw: unknown) => {
    let message: { op?: unknown; channel?: unknown; room_id?: unknown; msg?: unknown };
    try {
      message = JSON.parse(String(raw));
    } catch {
      socket.disconnect(true);
      return;
    }
    if (message.op === 'join' || message.op === 'send' || message.op === 'quit') {
      chat(message);
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
  socket.on('publish', (request: { c?: unknown; d?: unknown }, ack?: (answer: unknown) => void) => {
    if (typeof request?.c === 'string' && typeof request.d === 'string') {
      io.to(request.c).emit('message', request.d);
      ack?.({ s: 0, f: 0 });
    } else {
      ack?.({ E: { c: 101, m: 'bad request' } });
    }
  });
});

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
