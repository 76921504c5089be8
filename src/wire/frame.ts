/** WebSocket opcodes for data frames (RFC 6455 section 5.2). */
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

/**
 * One unmasked, final server frame (header and payload in one Buffer), so that a message published to
 * many sockets is framed once and each socket gets a single write of the same bytes.
 */
export function frame(payload: Uint8Array, binary: boolean): Buffer {
  const out = frameWithHeader(payload.length, binary);
  out.set(payload, out.length - payload.length);
  return out;
}

/** A text frame of `text`, encoded as UTF-8 straight into the frame (no intermediate Buffer). */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const out = frameWithHeader(length, false);
  out.write(text, out.length - length);
  return out;
}

/** A frame Buffer of the right size with its header written; the payload goes in its last `length` bytes. */
function frameWithHeader(length: number, binary: boolean): Buffer {
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerLength + length);
  out[0] = 0x80 | (binary ? OPCODE_BINARY : OPCODE_TEXT);
  if (length < 126) {
    out[1] = length;
  } else if (length < 65536) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  return out;
}
