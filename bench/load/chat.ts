import type { WebSocket } from 'ws';
import { dialect as dialectOf, type Dialect } from './dialects';
import { openGreeted } from './connect';
import { Audience, type AudienceStats, type OpenClients, type OpenedClients } from './audience';
import { nowMs, openLoop } from './payload';

/**
 * The chat-room scenario's members, one share per load process. A member joins one room, then says
 * things to it when the schedule picks it; every member counts what its room delivers.
 *
 * Every target speaks the protocol of CONNMIX's quick-start chat room (lua/examples/chat-room.lua,
 * which connmix-ts serves unchanged): {"op":"join","room_id":N} subscribes room:N and is answered
 * {"status":"success"}; {"op":"send","msg":"..."} is answered {"status":"success"} and delivers
 * {"client_id":"<sender>","msg":"..."} to every member of the sender's room, the sender included.
 * `seed` targets (connmix-ts, raw-ws) take these as text frames; Socket.IO as the text of a "message"
 * event, answered and delivered the same way (as its barrage does with the seed's JSON).
 */

/** Bytes of each say's `msg`: a short chat line. */
export const TEXT_BYTES = 64;

/** The quick start's join and send requests (chat-room.lua), before the dialect wraps them. */
const joinText = (room: number) => `{"op":"join","room_id":${room}}`;
const sendText = (msg: string) => `{"op":"send","msg":"${msg}"}`;

/**
 * A say's `msg`: `~<sender>~<seq>~<due time>~` padded with x. Plain ASCII without quotes or
 * backslashes, because chat-room.lua concatenates msg into its JSON unescaped; whatever wraps it
 * (that JSON, Socket.IO's packet with the JSON escaped) leaves `~`, digits and `.` as they are, and no
 * target puts a `~` before it (client ids have none), so the receiver finds it by scanning bytes.
 */
export function sayText(sender: number, seq: number, t: number): string {
  const head = `~${sender}~${seq}~${t.toFixed(3)}~`;
  return head + 'x'.repeat(Math.max(0, TEXT_BYTES - head.length));
}

const TILDE = 0x7e;
/** The answer to join and send, {"status":"success"}: awaited after join, never a delivery. */
const SUCCESS = Buffer.from('success');

/** What `scanSay` read out of the last message. */
const said = { sender: -1, seq: -1, t: 0 };

/** Reads sender, seq and due time out of a delivered say without decoding it; false if it is none. */
function scanSay(data: Buffer): boolean {
  let i = data.indexOf(TILDE);
  if (i < 0) return false;
  const fields = [0, 0, 0];
  for (let f = 0; f < 3; f++) {
    i++;
    let n = 0;
    let digits = 0;
    while (data[i] >= 0x30 && data[i] <= 0x39) {
      n = n * 10 + (data[i++] - 0x30);
      digits++;
    }
    if (data[i] === 0x2e) {
      let scale = 0.1;
      for (i++; data[i] >= 0x30 && data[i] <= 0x39; i++, scale /= 10) n += (data[i] - 0x30) * scale;
    }
    if (digits === 0 || data[i] !== TILDE) return false;
    fields[f] = n;
  }
  [said.sender, said.seq, said.t] = fields;
  return true;
}

/** Parameters of `chat.open`: this worker's share of the members (grouped by room). */
export interface OpenMembers extends OpenClients {
  /** Member i joins room i % rooms. */
  rooms: number;
}

export interface SayRun {
  /** Says per second from this worker's members. */
  rate: number;
  durationMs: number;
}

export interface SayRunResult {
  /** Says sent on open connections, per room. */
  perRoom: Record<number, number>;
  sent: number;
  ms: number;
}

/** A step's figures; `delivered` counts the says received, the sender's own copy included. */
export interface ChatStats extends AudienceStats {
  /** A say that came again, or before an earlier say of the same sender: must stay 0. */
  outOfOrder: number;
}

interface Member {
  ws: WebSocket;
  index: number;
  room: number;
  /** Next sequence number of this member's says (they run on across steps). */
  seq: number;
  /** Highest sequence number received from each sender of the room. */
  lastSeen: Map<number, number>;
  joined: (() => void) | null;
}

export class ChatMembers extends Audience<Member> {
  private dialect: Dialect = dialectOf('seed');
  private outOfOrder = 0;

  async open(params: OpenMembers): Promise<OpenedClients> {
    const dialect = (this.dialect = dialectOf(params.dialect));
    return this.openAll(params, params.rooms, async (index, url, localAddress) => {
      const room = index % params.rooms;
      const member: Member = { ws: null as unknown as WebSocket, index, room, seq: 0, lastSeen: new Map(), joined: null };
      member.ws = await openGreeted({
        url: dialect.url(url),
        dialect,
        localAddress,
        timeoutMs: params.timeoutMs,
        onData: (_ws, data) => this.receive(member, data),
      }, dialect.message(joinText(room)), 'join', (answered) => (member.joined = answered));
      return { client: member, group: room };
    });
  }

  /**
   * Says at a fixed rate, open loop, from this worker's members in turn, each to its own room: a slow
   * server does not slow the members down, and each say carries the time it was due, so falling
   * behind shows as latency.
   */
  async say(params: SayRun): Promise<SayRunResult> {
    const result: SayRunResult = { perRoom: {}, sent: 0, ms: 0 };
    const started = await openLoop(params.rate, params.durationMs, (i, due) => {
      const member = this.clients[i % this.clients.length];
      if (member.ws.readyState !== 1) return;
      member.ws.send(this.dialect.message(sendText(sayText(member.index, member.seq++, due))));
      result.perRoom[member.room] = (result.perRoom[member.room] ?? 0) + 1;
      result.sent++;
    }, () => this.clients.length > 0);
    result.ms = nowMs() - started;
    return result;
  }

  private receive(member: Member, data: Buffer): void {
    const now = nowMs();
    if (!scanSay(data)) {
      if (member.joined && data.includes(SUCCESS)) {
        member.joined();
        member.joined = null;
      }
      return;
    }
    if (said.t < this.minT) {
      this.late++;
      return;
    }
    const last = member.lastSeen.get(said.sender) ?? -1;
    if (said.seq <= last) {
      this.outOfOrder++;
      return;
    }
    member.lastSeen.set(said.sender, said.seq);
    this.delivered++;
    this.latency.record(now - said.t);
  }

  /** Starts a step: counters to zero; says due before `minT` are late from now on. */
  override reset(minT: number): void {
    super.reset(minT);
    this.outOfOrder = 0;
  }

  stats(): ChatStats {
    return { ...this.commonStats(), outOfOrder: this.outOfOrder };
  }
}
