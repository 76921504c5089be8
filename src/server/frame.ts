/** WebSocket opcodes for data frames (RFC 6455 section 5.2). */
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

/**
 * One unmasked, final server frame (header and payload in one Buffer), so that a message published to
 * many sockets is framed once and each socket gets a single write of the same bytes.
 */
export function frame(payload: Uint8Array, binary: boolean): Buffer {
  const length = payload.length;
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
  out.set(payload, headerLength);
  return out;
}
