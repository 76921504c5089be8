/**
 * The binary messages nodes exchange through Redis. Integers are big-endian; ids are ASCII.
 *
 *   publish  0x01 | flags u8 | request u32 | origin length u8 | origin | payload
 *   send     0x02 | flags u8 | request u32 | origin length u8 | origin | client_id length u8 | client_id | payload
 *   reply    0x03 | (request u32 | s u32 | f u32) repeated
 *   call     0x04 | flags u8 | request u32 | origin length u8 | origin | client_id length u8 | client_id | JSON {"f","a"}
 *   count    0x05 | flags u8 | request u32 | origin length u8 | origin
 *
 * `flags` bit 0 marks a binary payload. `origin` is the sending node's id: receivers answer on that
 * node's inbox channel with one reply entry per request (several requests of one tick share a reply
 * message). The payload is the rest of the message, handed on as a view, never copied or decoded.
 *
 * A publish, send or call may carry a deadline: its kind byte has bit 7 set (0x81, 0x82, 0x84) and a u48 follows the
 * origin, the mesh time in milliseconds after which the request must not be carried out (the origin
 * has answered by then). The kind byte, not a flag, marks it so that a node built before deadlines
 * ignores such a request as not one of its own, rather than reading the deadline as payload; a
 * request without the bit has no deadline.
 */

export enum Kind {
  Publish = 1,
  Send = 2,
  Reply = 3,
  /** A `conn.call` for one connection; answered s=1 on success, f=1 on failure. */
  Call = 4,
  /** How many local subscribers the channel it was published on has; answered s=count, f=0. */
  Count = 5,
}

const BINARY = 1;
const REPLY_ENTRY = 12;
/** Bit 7 of the kind byte: a deadline follows the origin. */
const WITH_DEADLINE = 0x80;
const DEADLINE_BYTES = 6;

/** A publish or send as the receiving node sees it. */
export interface Request {
  kind: Kind.Publish | Kind.Send | Kind.Call | Kind.Count;
  binary: boolean;
  request: number;
  origin: string;
  /** Only for sends: the connection it is for. */
  clientId: string;
  payload: Buffer;
  /** Mesh time (ms) after which the request must be dropped; 0 = none (a sender without deadlines). */
  deadline: number;
}

/** One node's answer to one request: connections written to and connections that failed. */
export interface ReplyEntry {
  request: number;
  s: number;
  f: number;
}

export type Envelope = Request | { kind: Kind.Reply; entries: ReplyEntry[] };

function header(kind: Kind, binary: boolean, request: number, origin: string, deadline: number, extra: number): { head: Buffer; at: number } {
  const originLength = Buffer.byteLength(origin, 'latin1');
  const timed = deadline > 0 ? DEADLINE_BYTES : 0;
  const head = Buffer.allocUnsafe(7 + originLength + timed + extra);
  head[0] = timed ? kind | WITH_DEADLINE : kind;
  head[1] = binary ? BINARY : 0;
  head.writeUInt32BE(request >>> 0, 2);
  head[6] = originLength;
  head.write(origin, 7, 'latin1');
  if (timed) head.writeUIntBE(Math.floor(deadline), 7 + originLength, DEADLINE_BYTES);
  return { head, at: 7 + originLength + timed };
}

/** A publish of `payload` from node `origin`, answered under `request`, void after `deadline` (0 = never). */
export function encodePublish(origin: string, request: number, binary: boolean, payload: Buffer, deadline = 0): Buffer {
  const { head } = header(Kind.Publish, binary, request, origin, deadline, 0);
  return Buffer.concat([head, payload], head.length + payload.length);
}

/**
 * A count of the subscribers of the channel it is published on, from node `origin`, answered under
 * `request`. Without a deadline: a late count changes nothing, and its late answer is ignored.
 */
export function encodeCount(origin: string, request: number): Buffer {
  return header(Kind.Count, false, request, origin, 0, 0).head;
}

/** A send of `payload` to `clientId` from node `origin`, answered under `request`, void after `deadline`. */
export function encodeSend(origin: string, request: number, clientId: string, binary: boolean, payload: Buffer, deadline = 0): Buffer {
  return addressed(Kind.Send, origin, request, clientId, binary, payload, deadline);
}

/** A `conn.call` of `fn(args)` on `clientId` from node `origin`, answered under `request`, void after `deadline`. */
export function encodeCall(origin: string, request: number, clientId: string, fn: string, args: unknown[], deadline = 0): Buffer {
  return addressed(Kind.Call, origin, request, clientId, false, Buffer.from(JSON.stringify({ f: fn, a: args })), deadline);
}

function addressed(kind: Kind.Send | Kind.Call, origin: string, request: number, clientId: string, binary: boolean, payload: Buffer, deadline: number): Buffer {
  const idLength = Buffer.byteLength(clientId, 'latin1');
  const { head, at } = header(kind, binary, request, origin, deadline, 1 + idLength);
  head[at] = idLength;
  head.write(clientId, at + 1, 'latin1');
  return Buffer.concat([head, payload], head.length + payload.length);
}

/** Answers to several requests of one origin in one message. */
export function encodeReply(entries: ReplyEntry[]): Buffer {
  const out = Buffer.allocUnsafe(1 + entries.length * REPLY_ENTRY);
  out[0] = Kind.Reply;
  let at = 1;
  for (const { request, s, f } of entries) {
    out.writeUInt32BE(request >>> 0, at);
    out.writeUInt32BE(s, at + 4);
    out.writeUInt32BE(f, at + 8);
    at += REPLY_ENTRY;
  }
  return out;
}

/** Reads a message; null if it is not one of ours (truncated, unknown kind). */
export function decode(message: Buffer): Envelope | null {
  const kind = message[0];
  if (kind === Kind.Reply) {
    if ((message.length - 1) % REPLY_ENTRY !== 0) return null;
    const entries: ReplyEntry[] = [];
    for (let at = 1; at < message.length; at += REPLY_ENTRY) {
      entries.push({ request: message.readUInt32BE(at), s: message.readUInt32BE(at + 4), f: message.readUInt32BE(at + 8) });
    }
    return { kind, entries };
  }
  const timed = (kind & WITH_DEADLINE) !== 0 ? DEADLINE_BYTES : 0;
  const request = kind & ~WITH_DEADLINE;
  if ((request !== Kind.Publish && request !== Kind.Send && request !== Kind.Call && request !== Kind.Count) || message.length < 7) return null;
  let at = 7 + message[6];
  if (message.length < at + timed) return null;
  const origin = message.toString('latin1', 7, at);
  const deadline = timed ? message.readUIntBE(at, DEADLINE_BYTES) : 0;
  at += timed;
  let clientId = '';
  if (request === Kind.Send || request === Kind.Call) {
    if (message.length < at + 1 || message.length < at + 1 + message[at]) return null;
    clientId = message.toString('latin1', at + 1, at + 1 + message[at]);
    at += 1 + message[at];
  }
  return {
    kind: request,
    binary: (message[1] & BINARY) !== 0,
    request: message.readUInt32BE(2),
    origin,
    clientId,
    payload: message.subarray(at),
    deadline,
  };
}
