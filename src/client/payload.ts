import type { Payload, PayloadOptions } from './types';

/** `{d, t}` of a publish or send request. */
export function encodePayload(data: Payload, options: PayloadOptions = {}): { d: string; t?: 'binary' } {
  const bytes = data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : null;
  if (options.binary) {
    const raw = bytes ?? Buffer.from(typeof data === 'string' ? data : JSON.stringify(data), 'utf8');
    return { d: raw.toString('base64'), t: 'binary' };
  }
  if (bytes) return { d: bytes.toString('utf8') };
  return { d: typeof data === 'string' ? data : JSON.stringify(data) };
}
