import { isUtf8 } from 'node:buffer';

/**
 * `string.upper` and `string.lower` of UTF-8 text past ASCII, as gopher-lua (CONNMIX's Lua) does them
 * with Go's strings.ToUpper and strings.ToLower: each character is mapped to its simple case, one
 * character for one (`é` → `É`; `ß` stays, where JS would give `SS`; `Σ` lowers to `σ` wherever it is).
 * ASCII-only text, and bytes that are not UTF-8, keep Lua's byte-wise mapping (Go would replace such
 * bytes by U+FFFD, which loses binary data).
 */
export function mapsByCharacter(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return isUtf8(bytes);
  return false;
}

/** The UTF-8 text `bytes` (see mapsByCharacter) with every character mapped to its upper (or lower) simple case. */
export function mapCase(bytes: Uint8Array, upper: boolean): Buffer {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  // The whole string at once when no character maps to several, nor by context (the final sigma).
  if (upper || !text.includes('\u03a3')) {
    const whole = upper ? text.toUpperCase() : text.toLowerCase();
    if (whole.length === text.length) return Buffer.from(whole);
  }
  const cache = new Map<string, string>();
  let out = '';
  for (const character of text) {
    let mapped = cache.get(character);
    if (mapped === undefined) {
      mapped = upper ? character.toUpperCase() : character.toLowerCase();
      // Of the characters whose full mapping is several, only İ has a simple one (i).
      if ([...mapped].length !== 1) mapped = character === '\u0130' ? 'i' : character;
      cache.set(character, mapped);
    }
    out += mapped;
  }
  return Buffer.from(out);
}
