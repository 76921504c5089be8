/**
 * The published comment: the seed's event format with the send time and a sequence number inside,
 * padded so that the delivered WebSocket payload is PAYLOAD_BYTES long (a typical comment).
 *
 *   {"event":"@video","data":{"s":<seq>,"t":<send time, ms>,"p":"xxxx"}}
 *
 * `t` is process.hrtime in milliseconds: CLOCK_MONOTONIC, the same clock in every process of the
 * machine, so the receiver's clock minus `t` is the latency across processes.
 */
export const PAYLOAD_BYTES = 160;

/** Milliseconds on the machine-wide monotonic clock. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The comment for sequence number `seq`, sent at `t`. */
export function comment(seq: number, t: number): string {
  const head = `{"event":"@video","data":{"s":${seq},"t":${t.toFixed(3)},"p":"`;
  const tail = '"}}';
  const pad = Math.max(0, PAYLOAD_BYTES - head.length - tail.length);
  return head + 'x'.repeat(pad) + tail;
}

/** What `scan` read from the last message. */
export const scanned = { seq: -1, t: 0 };

const QUOTE = 0x22;
const S = 0x73;
const T = 0x74;
const DOT = 0x2e;

/**
 * Reads `s` and `t` out of a delivered message without decoding it (the load generator shares the
 * two cores with the server, so it must stay cheap). Works on the seed payload as is and on the same
 * payload JSON-escaped inside a Socket.IO packet (`\"s\":12`). Returns false if there is no `s`.
 */
export function scan(data: Buffer): boolean {
  const s = numberAfterKey(data, S, 0);
  if (s < 0) return false;
  scanned.seq = value;
  const t = numberAfterKey(data, T, s);
  scanned.t = t < 0 ? 0 : value;
  return true;
}

let value = 0;

/** Finds `"<key>` from `from`, skips `\`, `"` and `:`, parses the number into `value`; returns the end or -1. */
function numberAfterKey(data: Buffer, key: number, from: number): number {
  const end = data.length;
  for (let i = from; i < end - 2; i++) {
    if (data[i] !== QUOTE || data[i + 1] !== key) continue;
    let j = i + 2;
    while (j < end && j < i + 6 && (data[j] === 0x5c || data[j] === QUOTE || data[j] === 0x3a)) j++;
    let n = 0;
    let digits = 0;
    while (j < end && data[j] >= 0x30 && data[j] <= 0x39) {
      n = n * 10 + (data[j] - 0x30);
      j++;
      digits++;
    }
    if (digits === 0) continue;
    if (data[j] === DOT) {
      j++;
      let scale = 0.1;
      while (j < end && data[j] >= 0x30 && data[j] <= 0x39) {
        n += (data[j] - 0x30) * scale;
        scale /= 10;
        j++;
      }
    }
    value = n;
    return j;
  }
  return -1;
}

/**
 * Calls `send(i, due)` for i = 0, 1, ... at `rate` per second for `durationMs`, open loop: each call is
 * made when it is due, or at once when late, and `due` is that time (ms, monotonic) for the message to
 * carry, so a sender falling behind shows as latency. Stops early once `active()` is false. Returns the
 * time it started.
 */
export async function openLoop(rate: number, durationMs: number, send: (i: number, due: number) => void,
  active: () => boolean = () => true): Promise<number> {
  const total = Math.round((rate * durationMs) / 1000);
  const started = nowMs();
  let next = 0;
  while (next < total && active()) {
    const due = Math.min(total, Math.floor(((nowMs() - started) * rate) / 1000) + 1);
    for (; next < due; next++) send(next, started + (next * 1000) / rate);
    const nextDue = started + (next * 1000) / rate;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, nextDue - nowMs())));
  }
  return started;
}
