/** `mix.base64_encode` and `mix.base64_decode`, strict as Go's base64.StdEncoding. */
import { lua, lauxlib, bytesView, type LuaFunction } from '../fengari/index';
import { pushNilError } from '../vm';
import { stateLimits, raiseTooLarge } from '../limits';

const { lua_pushstring } = lua;
const { luaL_checklstring } = lauxlib;

const BASE64_ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[c.charCodeAt(0)] = 1;

/**
 * Where `s` (one char per byte) stops being standard, padded base64, or -1 when it is valid. Mirrors
 * Go's base64.StdEncoding.DecodeString (what CONNMIX uses): padding is required, `\r` and `\n` are
 * skipped, anything else outside the alphabet is an error.
 */
function base64ErrorOffset(s: string): number {
  let count = 0; // significant characters so far
  let padStart = -1; // count at the first '='
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0a || c === 0x0d) continue;
    if (padStart >= 0) {
      // Only "xx==" can take a second '='; nothing may follow the padding.
      if (c === 0x3d && padStart % 4 === 2 && count === padStart + 1) {
        count++;
        continue;
      }
      return i;
    }
    if (c === 0x3d) {
      if (count % 4 < 2) return i;
      padStart = count++;
      continue;
    }
    if (!BASE64_ALPHABET[c]) return i;
    count++;
  }
  return count % 4 === 0 ? -1 : s.length;
}

/** `mix.base64_encode(s)` → standard, padded base64 of the bytes; a result past maxStringSize raises, as for any string built. */
export const base64Encode: LuaFunction = (L) => {
  const bytes = bytesView(luaL_checklstring(L, 1));
  const size = 4 * Math.ceil(bytes.length / 3);
  const max = stateLimits(L).maxStringSize;
  if (size > max) raiseTooLarge(L, 'mix.base64_encode: result', size, max);
  lua_pushstring(L, Buffer.from(bytes.toString('base64'), 'latin1'));
  return 1;
};

/** `mix.base64_decode(s)` → `bytes, err`; strict (padding required), see base64ErrorOffset. */
export const base64Decode: LuaFunction = (L) => {
  const text = bytesView(luaL_checklstring(L, 1)).toString('latin1');
  const offset = base64ErrorOffset(text);
  if (offset >= 0) return pushNilError(L, `illegal base64 data at input byte ${offset}`);
  lua_pushstring(L, Buffer.from(text, 'base64'));
  return 1;
};
