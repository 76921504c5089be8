/**
 * The viewer text protocol the peer bench servers (raw-ws, socketio-redis) speak, written once so that
 * both answer exactly alike and differ only in transport:
 *   - the seed's barrage: {"op":"subscribe","channel":"<id>@video"} joins video:<id> and answers
 *     {"result":true}; "unsubscribe" leaves it likewise. Another "<a>@<b>" channel is answered without
 *     joining anything; a message without op, or a channel that is not "<a>@<b>", closes the connection;
 *   - CONNMIX's quick-start chat room, as lua/examples/chat-room.lua does it (the chat-room scenario):
 *     {"op":"join","room_id"} leaves the previous room, joins room:<room_id> and answers
 *     {"status":"success"}; {"op":"send","msg"} answers {"status":"success"} and publishes
 *     {"client_id","msg"} to the sender's room, the sender included; {"op":"quit"} leaves it and
 *     answers. A join without room_id or a send without msg is ignored; send or quit before any join
 *     closes the connection with 1011, as the script's Lua error does;
 *   - text that is not a JSON object closes the connection (no code).
 */

/** One viewer connection, as its server exposes it to the protocol. */
export interface SeedConnection {
  /** The chat's client_id: a number per connection for raw-ws (as connmix-ts's is), the socket id for Socket.IO. */
  readonly clientId: string;
  /** The room_id joined last; kept after quit, as the script keeps its context value. */
  room?: string;
  /** Add this connection to a channel's members. */
  join(channel: string): void;
  /** Remove this connection from a channel's members. */
  leave(channel: string): void;
  /** Send text to this connection only. */
  answer(text: string): void;
  /** Send text to every member of a channel. */
  publish(channel: string, text: string): void;
  /** Close this connection; `code` is the WebSocket close code where the transport has one. */
  close(code?: number): void;
}

interface SeedMessage {
  op?: unknown;
  channel?: unknown;
  room_id?: unknown;
  msg?: unknown;
}

const RESULT = '{"result":true}';
const SUCCESS = '{"status":"success"}';
/** What chat-room.lua's error on a missing room turns into: the connection closes with 1011. */
const INTERNAL_ERROR = 1011;

/** Handle one text message from a viewer. */
export function onSeedText(conn: SeedConnection, text: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    conn.close();
    return;
  }
  // `null` would throw on the property reads below, inside the transport's event handler.
  if (typeof parsed !== 'object' || parsed === null) {
    conn.close();
    return;
  }
  const message = parsed as SeedMessage;
  if (message.op === 'join' || message.op === 'send' || message.op === 'quit') {
    onChat(conn, message);
    return;
  }
  const parts = typeof message.channel === 'string' ? message.channel.split('@') : [];
  if (!message.op || parts.length !== 2) {
    conn.close();
    return;
  }
  if (parts[1] === 'video') {
    if (message.op === 'subscribe') conn.join(`video:${parts[0]}`);
    else if (message.op === 'unsubscribe') conn.leave(`video:${parts[0]}`);
  }
  conn.answer(RESULT);
}

function onChat(conn: SeedConnection, message: SeedMessage): void {
  if (message.op === 'join') {
    if (typeof message.room_id !== 'string' && typeof message.room_id !== 'number') return;
    if (conn.room !== undefined) conn.leave(`room:${conn.room}`);
    conn.room = String(message.room_id);
    conn.join(`room:${conn.room}`);
    conn.answer(SUCCESS);
    return;
  }
  if (message.op === 'send' && (message.msg === undefined || message.msg === null)) return;
  const room = conn.room;
  if (room === undefined) {
    conn.close(INTERNAL_ERROR);
    return;
  }
  if (message.op === 'quit') {
    conn.leave(`room:${room}`);
    conn.answer(SUCCESS);
    return;
  }
  conn.answer(SUCCESS);
  conn.publish(`room:${room}`, JSON.stringify({ client_id: conn.clientId, msg: message.msg }));
}
