import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { withNode, TestClient, type TestNode } from './support/helpers';
import { SEED, prng, type Rng } from './support/fuzz';
import { rawUpgrade, upgradeRequest, encodeFrame, type FrameSpec } from './support/raw-ws';

/**
 * Hostile WebSocket peers on a real node over 127.0.0.1: malformed and random frames after a real
 * upgrade, truncated handshakes and garbage before it, invalid UTF-8. Every offender is closed (with
 * the code ws defines for what it did wrong), its on_close runs, and a bystander keeps being answered.
 *
 * Deterministic: the seed is FUZZ_SEED or a fixed default, and every failure message names the seed
 * and the case (re-run with FUZZ_SEED=<seed> to reproduce).
 */

const MAX_MESSAGE = 65536;


/** An echo entry that counts open connections (on_handshake +1, on_close -1); "open?" asks the count. */
const ECHO = `
local open = 0
function on_handshake() open = open + 1 end
function on_message(msg)
  local conn = mix.websocket()
  if msg.type == "text" and msg.data == "open?" then conn:send(tostring(open)) return end
  conn:send(msg.data, msg.type)
end
function on_close() open = open - 1 end
`;

const NODE_OPTIONS = {
  lua: { 'lua/entry.websocket.lua': ECHO },
  serverYaml: `      maxMessageSize: ${MAX_MESSAGE}\n      maxMessagesPerSecond: 0`,
};

/* ------------------------------------------------------------------------------------------------ */
/* Frames                                                                                           */
/* ------------------------------------------------------------------------------------------------ */

function frame(opcode: number, payload: Buffer | string = '', overrides: Partial<FrameSpec> = {}): FrameSpec {
  return { fin: true, rsv: 0, opcode, payload: Buffer.from(payload), masked: true, lengthForm: 'minimal', ...overrides };
}

function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(code);
  return Buffer.concat([out, Buffer.from(reason)]);
}

/** Status codes a peer may send in a close frame (RFC 6455 7.4, as ws checks them). */
function validStatusCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** The 7-bit length field encodeFrame writes (126 and 127 announce a 16- or 64-bit length). */
function sevenBitLength(spec: FrameSpec): number {
  const length = spec.declared ?? spec.payload.length;
  if (spec.lengthForm === 'minimal' && length < 126) return length;
  return spec.lengthForm !== '64' && length < 65536 ? 126 : 127;
}

/**
 * What the server answers to `frames` sent in a row, as ws (8.x) defines it: the close code it sends,
 * null when it sends no close frame (all frames were fine, or the server waits for bytes we never
 * send), or undefined when it cannot be told (a length that lies short, so payload bytes are read as
 * the next header). The model follows the order of ws's Receiver checks.
 */
function expectedClose(frames: FrameSpec[], maxPayload: number): number | null | undefined {
  let fragmented: number | null = null; // opcode of the message being fragmented
  let total = 0;
  let parts: Buffer[] = [];
  for (let f = 0; f < frames.length; f++) {
    const spec = frames[f];
    const length = spec.declared ?? spec.payload.length;
    const control = spec.opcode >= 8 && spec.opcode <= 10;
    if (spec.rsv & 0b011) return 1002;
    if (spec.rsv & 0b100) return 1002; // no extension is negotiated
    if (spec.opcode === 0) {
      if (fragmented === null) return 1002;
    } else if (spec.opcode === 1 || spec.opcode === 2) {
      if (fragmented !== null) return 1002;
    } else if (control) {
      if (!spec.fin) return 1002;
      const field = sevenBitLength(spec);
      if (field > 125 || (spec.opcode === 8 && field === 1)) return 1002;
    } else {
      return 1002;
    }
    if (!spec.masked) return 1002;
    if (length > 2 ** 53 - 1) return 1009;
    if (!control) {
      total += length;
      if (total > maxPayload) return 1009;
    }
    if (spec.declared !== undefined && spec.declared !== spec.payload.length) {
      const following = spec.payload.length + frames.slice(f + 1).reduce((sum, next) => sum + encodeFrame(next).length, 0);
      return spec.declared > following ? null : undefined;
    }
    if (spec.opcode === 8) {
      if (length === 0) return null; // an empty close: ws answers with an empty close frame
      const code = spec.payload.readUInt16BE(0);
      if (!validStatusCode(code)) return 1002;
      if (!isUtf8(spec.payload.subarray(2))) return 1007;
      return code; // ws echoes the peer's code
    }
    if (control) continue; // ping/pong
    const opcode: number = spec.opcode === 0 ? (fragmented as number) : spec.opcode;
    parts.push(spec.payload);
    if (!spec.fin) {
      fragmented = opcode;
      continue;
    }
    if (opcode === 1 && !isUtf8(Buffer.concat(parts))) return 1007;
    fragmented = null;
    total = 0;
    parts = [];
  }
  return null;
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The close code in the first close frame among unmasked server frames in `data`, or null. */
function serverCloseCode(data: Buffer): { code: number | null; sawClose: boolean } {
  let at = 0;
  while (at + 2 <= data.length) {
    const opcode = data[at] & 0x0f;
    let length = data[at + 1] & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      if (offset + 2 > data.length) break;
      length = data.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (offset + 8 > data.length) break;
      length = Number(data.readBigUInt64BE(offset));
      offset += 8;
    }
    if (offset + length > data.length) break;
    if (opcode === 8) return { code: length >= 2 ? data.readUInt16BE(offset) : null, sawClose: true };
    at = offset + length;
  }
  return { code: null, sawClose: false };
}

/** Whether `promise` settles within `ms` (its timer does not outlive it). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* Raw connections                                                                                  */
/* ------------------------------------------------------------------------------------------------ */

/**
 * Writes `bytes` after an upgrade and returns the server's close code once the connection is gone.
 * A server that waits for more (a declared length we never fill) gets our FIN after `graceMs`.
 */
async function offend(node: TestNode, bytes: Buffer, graceMs = 150): Promise<{ code: number | null; sawClose: boolean }> {
  const peer = await rawUpgrade(node);
  peer.socket.write(bytes);
  if (!(await settlesWithin(peer.closed, graceMs))) {
    peer.socket.end();
    if (!(await settlesWithin(peer.closed, 3000))) {
      peer.socket.destroy();
      throw new Error('the server did not close the connection after our FIN');
    }
  }
  return serverCloseCode(peer.after());
}

/** The bystander still gets answers, and on_close ran for every offender (only the bystander is open). */
async function checkHealthy(bystander: TestClient, context: string): Promise<void> {
  assert.equal(await bystander.request('ping'), 'ping', `bystander echo (${context})`);
  const deadline = Date.now() + 3000;
  let open = '';
  while (Date.now() < deadline) {
    open = await bystander.request('open?');
    if (open === '1') return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(open, '1', `connections still counted open after ${context}`);
}

/* ------------------------------------------------------------------------------------------------ */
/* Tests                                                                                            */
/* ------------------------------------------------------------------------------------------------ */

test('malformed frames: each offender gets the close code ws defines; a bystander keeps being answered', async () => {
  await withNode(NODE_OPTIONS, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const invalidUtf8 = Buffer.from([0x68, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xff]);
    const cases: Array<[string, FrameSpec[], number | null]> = [
      ...[3, 4, 5, 6, 7, 11, 12, 13, 14, 15].map((op): [string, FrameSpec[], number] => [`reserved opcode ${op}`, [frame(op, 'x')], 1002]),
      ['RSV1 without an extension', [frame(1, 'x', { rsv: 0b100 })], 1002],
      ['RSV2', [frame(1, 'x', { rsv: 0b010 })], 1002],
      ['RSV3 on a ping', [frame(9, '', { rsv: 0b001 })], 1002],
      ['unmasked text frame', [frame(1, 'hello', { masked: false })], 1002],
      ['unmasked close frame', [frame(8, closePayload(1000), { masked: false })], 1002],
      ['ping of 126 bytes', [frame(9, Buffer.alloc(126), { lengthForm: '16' })], 1002],
      ['close of 200 bytes', [frame(8, Buffer.concat([closePayload(1000), Buffer.alloc(198, 97)]), { lengthForm: '16' })], 1002],
      ['fragmented ping', [frame(9, 'a', { fin: false })], 1002],
      ['fragmented close', [frame(8, closePayload(1000), { fin: false })], 1002],
      ['continuation without a start', [frame(0, 'x')], 1002],
      ['new text frame inside a fragmented message', [frame(1, 'a', { fin: false }), frame(1, 'b')], 1002],
      ['binary inside a fragmented text message', [frame(1, 'a', { fin: false }), frame(2, 'b')], 1002],
      ['64-bit length over 2^53', [frame(2, '', { declared: 2 ** 60, lengthForm: '64' })], 1009],
      ['length over maxMessageSize', [frame(2, '', { declared: MAX_MESSAGE + 1, lengthForm: '64' })], 1009],
      ['fragments adding up over maxMessageSize',
        [frame(2, Buffer.alloc(40000), { fin: false }), frame(0, Buffer.alloc(40000))], 1009],
      ['invalid UTF-8 in a text frame', [frame(1, invalidUtf8)], 1007],
      ['invalid UTF-8 across fragments', [frame(1, Buffer.from([0xe2, 0x82]), { fin: false }), frame(0, Buffer.from([0x41]))], 1007],
      ['UTF-16 surrogate encoded in UTF-8', [frame(1, Buffer.from([0xed, 0xa0, 0x80]))], 1007],
      ['overlong encoding', [frame(1, Buffer.from([0xc0, 0xaf]))], 1007],
      ['close with a 1-byte payload', [frame(8, Buffer.from([3]))], 1002],
      ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code): [string, FrameSpec[], number] =>
        [`close with status ${code}`, [frame(8, closePayload(code))], 1002]),
      ['close reason not UTF-8', [frame(8, closePayload(1000, Buffer.from([0xff, 0xfe])))], 1007],
      ['declared length longer than what follows', [frame(1, 'abc', { declared: 50 })], null],
      ['non-minimal lengths are accepted', [frame(1, 'ok', { lengthForm: '64' }), frame(8, closePayload(4000))], 4000],
      ['valid UTF-8 split across fragments', [frame(1, Buffer.from([0xe2, 0x82]), { fin: false }), frame(0, Buffer.from([0xac])), frame(8, closePayload(1000))], 1000],
      ['ping, pong and a close', [frame(9, 'p'), frame(10, 'q'), frame(8, closePayload(3001, 'bye'))], 3001],
    ];
    for (const [name, frames, expected] of cases) {
      assert.equal(expectedClose(frames, MAX_MESSAGE), expected, `model disagrees with the table for: ${name}`);
      const { code } = await offend(node, Buffer.concat(frames.map(encodeFrame)));
      assert.equal(code, expected, name);
    }
    await checkHealthy(bystander, 'malformed frames');
    bystander.close();
  });
});

/** A random frame: mostly plausible, with each kind of violation at a small rate. */
function randomFrame(rng: Rng): FrameSpec {
  const opcode = rng.chance(0.88) ? rng.pick([0, 1, 1, 2, 2, 8, 9, 10]) : rng.int(16);
  const control = opcode >= 8;
  const size = control && rng.chance(0.9) ? rng.pick([0, 2, 5, 30, 125])
    : rng.pick([0, 1, 2, 5, 30, 125, 126, 200, 1000, rng.int(70000), MAX_MESSAGE - 10 + rng.int(20)]);
  let payload: Buffer;
  if (opcode === 8 && rng.chance(0.7)) {
    payload = closePayload(rng.chance(0.6) ? rng.pick([1000, 1001, 1003, 1011, 3000, 4999]) : rng.int(65536),
      rng.chance(0.8) ? 'reason' : rng.bytes(3));
  } else if (rng.chance(0.5)) {
    payload = Buffer.from(Array.from({ length: Math.min(size, 4000) }, () => rng.pick(['a', 'é', '€', '😀', ' ', '\n'])).join('')).subarray(0, size);
  } else {
    payload = rng.bytes(control ? Math.min(size, 130) : size);
  }
  return {
    fin: rng.chance(control ? 0.95 : 0.8),
    rsv: rng.chance(0.03) ? 1 + rng.int(7) : 0,
    opcode,
    payload,
    masked: rng.chance(0.96),
    lengthForm: rng.chance(0.85) ? 'minimal' : rng.pick(['16', '64'] as const),
    declared: rng.chance(0.04) ? rng.pick([payload.length + 1 + rng.int(100), 2 ** 40, 2 ** 60]) : undefined,
  };
}

test('hundreds of seeded random frame sequences: the node survives, codes match ws, the bystander is answered', async (t) => {
  const rng = prng(SEED);
  await withNode(NODE_OPTIONS, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const total = 240;
    const batch = 20;
    const counts: Record<string, number> = {};
    for (let start = 0; start < total; start += batch) {
      const work: Array<Promise<void>> = [];
      for (let i = start; i < start + batch; i++) {
        const garbage = rng.chance(0.15);
        const frames = garbage ? [] : Array.from({ length: 1 + rng.int(4) }, () => randomFrame(rng));
        const bytes = garbage ? rng.bytes(1 + rng.int(200)) : Buffer.concat(frames.map(encodeFrame));
        const expected = garbage ? undefined : expectedClose(frames, MAX_MESSAGE);
        counts[expected === undefined ? 'unknown' : String(expected)] = (counts[expected === undefined ? 'unknown' : String(expected)] ?? 0) + 1;
        const label = `seed=${SEED} case=${i} ${garbage ? 'garbage' : 'frames'}=${bytes.subarray(0, 48).toString('hex')}`;
        work.push(offend(node, bytes).then(({ code }) => {
          if (expected !== undefined) assert.equal(code, expected, label);
          else if (code !== null) assert.ok(validStatusCode(code), `${label}: close code ${code}`);
        }, (error: Error) => assert.fail(`${label}: ${error.message}`)));
      }
      await Promise.all(work);
      await checkHealthy(bystander, `random batch from case ${start} (seed=${SEED})`);
    }
    // The generator must reach every outcome, or the run proves less than it seems.
    t.diagnostic(`seed ${SEED}: outcomes ${JSON.stringify(counts)}`);
    for (const outcome of ['1002', '1007', '1009', 'null']) assert.ok((counts[outcome] ?? 0) > 0, `no case ended with ${outcome}: ${JSON.stringify(counts)}`);
    bystander.close();
  });
});

test('truncated handshakes, garbage before the upgrade and abrupt disconnects do not disturb the node', async () => {
  const rng = prng(SEED + 1);
  await withNode(NODE_OPTIONS, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const url = new URL(node.wsUrl);
    const full = upgradeRequest(url);
    const variants: Array<() => Buffer> = [
      () => Buffer.from(full.slice(0, rng.int(full.length))), // cut anywhere
      () => rng.bytes(1 + rng.int(300)), // pure garbage
      () => Buffer.concat([rng.bytes(1 + rng.int(20)), Buffer.from(full)]), // garbage before a valid request
      () => Buffer.from(full.replace('Sec-WebSocket-Version: 13', `Sec-WebSocket-Version: ${rng.int(100)}`)),
      () => Buffer.from(full.replace(/Sec-WebSocket-Key: [^\r]*/, `Sec-WebSocket-Key: ${rng.bytes(5).toString('hex')}`)),
      () => Buffer.from(full.replace('Upgrade: websocket', 'Upgrade: h2c')),
      () => Buffer.from(full.replace('GET', rng.pick(['POST', 'PUT', 'BREW', 'get']))),
      () => Buffer.from(full.replace('HTTP/1.1', rng.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/9', 'FTP/1.1']))),
      () => Buffer.from(full.replace('\r\n\r\n', `\r\nX-Long: ${'a'.repeat(20000 + rng.int(60000))}\r\n\r\n`)),
      () => Buffer.from(full.replace(/\r\n/g, rng.pick(['\n', '\r', '\r\r\n']))),
      () => Buffer.concat([Buffer.from(full), rng.bytes(rng.int(64))]), // frames right behind the request
      () => Buffer.from(full.replace('Host:', `X-${'h'.repeat(rng.int(50))}: ${rng.bytes(8).toString('latin1')}\r\nHost:`)),
    ];
    for (let i = 0; i < 120; i++) {
      const variant = i % variants.length;
      const bytes = variants[variant]();
      const socket = net.connect(Number(url.port), '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(bytes);
      if (rng.chance(0.5)) socket.end();
      else setTimeout(() => socket.destroy(), rng.int(30));
      const closed = await settlesWithin(new Promise((resolve) => socket.once('close', resolve)), 5000);
      if (!closed) socket.destroy();
      assert.ok(closed, `seed=${SEED + 1} case=${i} variant=${variant}: the connection never closed`);
      if (i % 20 === 19) await checkHealthy(bystander, `handshake case ${i} (seed=${SEED + 1})`);
    }
    await checkHealthy(bystander, 'truncated handshakes');
    bystander.close();
  });
});

test('random invalid UTF-8 in text frames closes with 1007; the same bytes as binary are echoed', async () => {
  const rng = prng(SEED + 2);
  await withNode(NODE_OPTIONS, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const broken = [
      () => Buffer.from([0x80 + rng.int(64)]), // a lone continuation byte
      () => Buffer.from([0xc2 + rng.int(30)]), // a lead byte without its continuation
      () => Buffer.from([0xe0 + rng.int(16), 0x80 + rng.int(64)]), // a 3-byte sequence cut short
      () => Buffer.from([0xf0 + rng.int(5), 0x90, 0x80]), // a 4-byte sequence cut short
      () => Buffer.from([0xc0 + rng.int(2), 0x80 + rng.int(64)]), // overlong 2-byte
      () => Buffer.from([0xe0, 0x80 + rng.int(32), 0x80]), // overlong 3-byte
      () => Buffer.from([0xed, 0xa0 + rng.int(32), 0x80 + rng.int(64)]), // a surrogate
      () => Buffer.from([0xf4, 0x90 + rng.int(48), 0x80, 0x80]), // above U+10FFFF
      () => Buffer.from([0xf5 + rng.int(11)]), // bytes that never appear in UTF-8
    ];
    const work: Array<Promise<void>> = [];
    for (let i = 0; i < 90; i++) {
      const bad = broken[i % broken.length]();
      const text = Buffer.from(Array.from({ length: rng.int(40) }, () => rng.pick(['a', 'é', '€', '😀'])).join(''));
      const at = rng.int(text.length + 1);
      const payload = Buffer.concat([text.subarray(0, at), bad, text.subarray(at)]);
      const label = `seed=${SEED + 2} case=${i} payload=${payload.toString('hex')}`;
      if (isUtf8(payload)) continue; // the cut landed inside a sequence and completed it; nothing to test
      const client = await TestClient.open(node.wsUrl);
      client.send(payload, true);
      assert.deepEqual((await client.next()).raw, payload, `${label}: binary echo`);
      client.send(payload, false);
      work.push(client.waitClosed().then(({ code }) => assert.equal(code, 1007, label)));
    }
    await Promise.all(work);
    await checkHealthy(bystander, 'invalid UTF-8');
    bystander.close();
  });
});
