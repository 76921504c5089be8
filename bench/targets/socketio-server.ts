/**
 * socketio-redis: the barrage as a Socket.IO 4 user would write it, with @socket.io/redis-adapter so
 * that several nodes share rooms through Redis; WebSocket transport only, no compression.
 *   - viewers speak the seed's barrage and CONNMIX's quick-start chat room (bench/lib/seed-protocol.ts)
 *     in the text of "message" events, both ways: a channel is a Socket.IO room, publishing is
 *     io.to(room).emit("message", text) (across nodes, through Redis), a chat member's client_id is
 *     socket.id, and closing disconnects the socket (Socket.IO has no close code to give);
 *   - POST /v1/mesh/publish {"c","d"} emits "message" d to room c (across nodes, through Redis);
 *   - the event "publish" {c, d} with an acknowledgement is its WebSocket publish API.
 * usage: node socketio-server.js <port> <redis port>; prints "socketio listening on <port>".
 */
import * as http from 'node:http';
import { Server, type Socket } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import Redis from 'ioredis';
import { onSeedText, type SeedConnection } from '../lib/seed-protocol';

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
  const viewer: SeedConnection = {
    clientId: socket.id,
    join: (channel) => {
      void socket.join(channel);
    },
    leave: (channel) => {
      void socket.leave(channel);
    },
    answer: (text) => {
      socket.emit('message', text);
    },
    publish: (channel, text) => {
      io.to(channel).emit('message', text);
    },
    close: () => {
      socket.disconnect(true);
    },
  };
  socket.on('message', (raw: unknown) => onSeedText(viewer, String(raw)));
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
