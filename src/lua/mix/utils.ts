import { createHash } from 'node:crypto';
import { lua, lauxlib, bytesView, luaToJsString, raise, type LuaState, type LuaFunction } from '../fengari';
import { pushValue, ConversionError, MAX_DEPTH } from '../values';
import { pushNilError } from '../vm';
import { limitsOf, DEFAULT_LIMITS } from '../limits';
import { searchBytes } from '../sandbox';

const {
  LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE,
  lua_type, lua_typename, lua_toboolean, lua_tonumber, lua_tolstring, lua_next, lua_pop, lua_pushnil,
  lua_pushstring, lua_pushboolean, lua_createtable, lua_rawseti, lua_rawgeti, lua_rawlen, lua_setfield,
  lua_gettop, lua_settop, lua_absindex,
} = lua;
const { luaL_checklstring, luaL_checktype, luaL_checkany, luaL_checkstack, luaL_argerror } = lauxlib;

/* ------------------------------------------------------------------------------------------------ */
/* JSON                                                                                             */
/* ------------------------------------------------------------------------------------------------ */

/** A Lua value that JSON cannot represent (function, NaN, a cycle…); the message is the Lua `err`. */
export class JsonEncodeError extends Error {}

/**
 * What is left of the JSON text one encoding may produce (the state's maxStringSize, in characters),
 * and of the values it may visit (maxItems: a table referenced many times is walked, and counted, at
 * every reference, so 22 levels of `{t, t}` are 4 million values, not 44).
 */
interface JsonRoom {
  left: number;
  readonly max: number;
  items: number;
  readonly maxItems: number;
}

function jsonRoom(L: LuaState): JsonRoom {
  const limits = limitsOf(L) ?? DEFAULT_LIMITS;
  return { left: limits.maxStringSize, max: limits.maxStringSize, items: limits.maxItems, maxItems: limits.maxItems };
}

/** Counts `text` against `room`; throws before a table of many large strings can exhaust the heap. */
function spend(room: JsonRoom, text: string): string {
  room.left -= text.length;
  if (room.left < 0) throw new JsonEncodeError(`JSON text exceeds the ${room.max}-byte limit`);
  return text;
}

/**
 * The Lua value at `index` as JSON text, walking the Lua stack straight into a string (no
 * intermediate JS object). Same mapping as values.ts `toJs`: a table with keys exactly 1..n is an
 * array, any other table (the empty one included) an object with string keys; strings decode as
 * UTF-8. Object keys keep the table's iteration order (Fengari: insertion order).
 * Throws JsonEncodeError; the Lua stack is left as it was only when it returns normally.
 */
export function luaToJson(L: LuaState, index: number, depth = 0, room: JsonRoom = jsonRoom(L)): string {
  if (--room.items < 0) throw new JsonEncodeError(`more than ${room.maxItems} values to encode (the maxItems limit)`);
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return 'null';
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index) ? 'true' : 'false';
    case LUA_TNUMBER: {
      const n: number = lua_tonumber(L, index);
      if (!Number.isFinite(n)) throw new JsonEncodeError(`cannot encode the number ${luaNumberName(n)} in JSON`);
      // String() prints integral floats without ".0" and big ones in plain digits up to 1e21, as Go does.
      return spend(room, String(n));
    }
    case LUA_TSTRING:
      return spend(room, jsonString(lua_tolstring(L, index)));
    case LUA_TTABLE:
      return tableToJson(L, lua_absindex(L, index), depth, room);
    default:
      throw new JsonEncodeError(`cannot encode a ${typeName(L, index)} in JSON`);
  }
}

function tableToJson(L: LuaState, index: number, depth: number, room: JsonRoom): string {
  if (depth >= MAX_DEPTH) throw new JsonEncodeError(`cannot encode a table nested deeper than ${MAX_DEPTH} levels (a cycle?)`);
  luaL_checkstack(L, 3, 'table too deep');
  const keys: Array<Uint8Array | string | number> = [];
  const values: string[] = [];
  let positiveIntegers = true;
  let maxKey = 0;
  lua_pushnil(L);
  while (lua_next(L, index) !== 0) {
    const keyType = lua_type(L, -2);
    let key: Uint8Array | string | number;
    if (keyType === LUA_TNUMBER) {
      const n: number = lua_tonumber(L, -2);
      if (Number.isInteger(n) && n >= 1) maxKey = Math.max(maxKey, n);
      else positiveIntegers = false;
      key = n;
    } else if (keyType === LUA_TSTRING) {
      key = lua_tolstring(L, -2) as Uint8Array; // a string key: tolstring converts nothing in place
      room.left -= key.length + 3;
      positiveIntegers = false;
    } else if (keyType === LUA_TBOOLEAN) {
      key = String(lua_toboolean(L, -2)); // as toJs does
      positiveIntegers = false;
    } else {
      throw new JsonEncodeError(`cannot encode a table key of type ${typeName(L, -2)} in JSON`);
    }
    keys.push(key);
    values.push(luaToJson(L, lua_gettop(L), depth + 1, room));
    lua_pop(L, 1);
  }
  // Distinct positive integer keys whose largest equals their count are exactly 1..n.
  if (positiveIntegers && keys.length > 0 && maxKey === keys.length) {
    const items: string[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) items[(keys[i] as number) - 1] = values[i];
    return `[${items.join(',')}]`;
  }
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) out += ',';
    const key = keys[i];
    out += `${key instanceof Uint8Array ? jsonString(key) : JSON.stringify(String(key))}:${values[i]}`;
  }
  return `${out}}`;
}

/**
 * Lua bytes as a JSON string literal. Short plain-ASCII strings (most keys and values) skip the
 * UTF-8 decoder and JSON.stringify, which dominate the encoder's profile otherwise.
 */
function jsonString(bytes: Uint8Array): string {
  if (bytes.length <= 64) {
    let s = '';
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b >= 0x80 || b < 0x20 || b === 0x22 || b === 0x5c) return JSON.stringify(luaToJsString(bytes));
      s += String.fromCharCode(b);
    }
    return `"${s}"`;
  }
  return JSON.stringify(luaToJsString(bytes));
}

/** `mix.json_encode(value)` → `s, err`. Never raises for bad values: they give `nil, err`. */
const jsonEncode: LuaFunction = (L) => {
  luaL_checkany(L, 1);
  const top = lua_gettop(L);
  let text: string;
  try {
    text = luaToJson(L, 1);
  } catch (error) {
    if (!(error instanceof JsonEncodeError)) throw error; // a Lua error (stack overflow) must propagate
    lua_settop(L, top);
    return pushNilError(L, error.message);
  }
  lua_pushstring(L, Buffer.from(text, 'utf8'));
  return 1;
};

/**
 * `mix.json_decode(str)` → `value, err`. Bad JSON or a non-string argument give `nil, err` (scripts
 * test `err` and close the connection). Numbers arrive as floats; JSON null inside objects
 * disappears (Lua cannot store nil); a top-level `null` gives a lone nil.
 */
const jsonDecode: LuaFunction = (L) => {
  const type = lua_type(L, 1);
  if (type !== LUA_TSTRING && type !== LUA_TNUMBER) {
    return pushNilError(L, `json_decode expects a string, got ${typeName(L, 1)}`);
  }
  const maxItems = (limitsOf(L) ?? DEFAULT_LIMITS).maxItems;
  const text: Uint8Array = lua_tolstring(L, 1);
  // Refused before parsing: JSON.parse of a 16 MiB `[0,0,...]` alone takes seconds and 350 MiB.
  const tooMuch = jsonTextTooLarge(text, maxItems);
  if (tooMuch !== null) return pushNilError(L, `invalid JSON: ${tooMuch}`);
  let value: unknown;
  try {
    value = JSON.parse(luaToJsString(text));
  } catch (error) {
    return pushNilError(L, `invalid JSON: ${(error as Error).message}`);
  }
  if (countJsonValues(value, maxItems) > maxItems) {
    return pushNilError(L, `invalid JSON: more than ${maxItems} values (the maxItems limit)`);
  }
  const top = lua_gettop(L);
  try {
    pushValue(L, value);
  } catch (error) {
    if (!(error instanceof ConversionError)) throw error;
    lua_settop(L, top);
    return pushNilError(L, `invalid JSON: ${error.message}`);
  }
  return 1;
};

/**
 * A cheap look at JSON text before it is parsed: why it surely holds more than `max` values (each `,`
 * outside strings separates two of them) or nests deeper than values.ts can push, else null. One pass
 * over the bytes, a few milliseconds for 16 MiB.
 */
function jsonTextTooLarge(text: Uint8Array, max: number): string | null {
  let separators = 0;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c) i++; // the escaped character cannot end the string
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x2c) {
      if (++separators >= max) return `more than ${max} values (the maxItems limit)`;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) return `value nested deeper than ${MAX_DEPTH} levels`;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return null;
}

/**
 * How many values (scalars, arrays and objects) a parsed JSON value holds, counting up to just past
 * `max`: building them as Lua tables costs about a microsecond each, so a 1 MiB message of `[0,0,…]`
 * would stall the node for half a second.
 */
function countJsonValues(value: unknown, max: number): number {
  let count = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0 && count <= max) {
    const item = stack.pop();
    count++;
    if (item !== null && typeof item === 'object') {
      for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push(child);
    }
  }
  return count;
}

/* ------------------------------------------------------------------------------------------------ */
/* base64                                                                                           */
/* ------------------------------------------------------------------------------------------------ */

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

/** `mix.base64_encode(s)` → standard, padded base64 of the bytes. */
const base64Encode: LuaFunction = (L) => {
  const bytes = bytesView(luaL_checklstring(L, 1));
  lua_pushstring(L, Buffer.from(bytes.toString('base64'), 'latin1'));
  return 1;
};

/** `mix.base64_decode(s)` → `bytes, err`; strict (padding required), see base64ErrorOffset. */
const base64Decode: LuaFunction = (L) => {
  const text = bytesView(luaL_checklstring(L, 1)).toString('latin1');
  const offset = base64ErrorOffset(text);
  if (offset >= 0) return pushNilError(L, `illegal base64 data at input byte ${offset}`);
  lua_pushstring(L, Buffer.from(text, 'base64'));
  return 1;
};

/* ------------------------------------------------------------------------------------------------ */
/* strings and bytes                                                                                */
/* ------------------------------------------------------------------------------------------------ */

/**
 * `mix.str_split(s, sep)` → 1-indexed table of the pieces between plain (not pattern) occurrences of
 * `sep`, empty pieces kept (`"@user"` → `{"", "user"}`), binary-safe. An empty `sep` raises, and so
 * does a split into more than maxItems pieces (each costs a Lua string and a table slot).
 */
const strSplit: LuaFunction = (L) => {
  const s: Uint8Array = luaL_checklstring(L, 1);
  const sep: Uint8Array = luaL_checklstring(L, 2);
  if (sep.length === 0) return luaL_argerror(L, 2, 'separator must not be empty');
  const maxItems = (limitsOf(L) ?? DEFAULT_LIMITS).maxItems;
  lua_createtable(L, 0, 0);
  let start = 0;
  let n = 0;
  for (;;) {
    const at = searchBytes(s, sep, start); // linear time, unlike Buffer#indexOf on long separators
    const end = at < 0 ? s.length : at;
    if (n >= maxItems) return raise(L, `str_split: more than ${maxItems} pieces (the maxItems limit)`);
    lua_pushstring(L, s.subarray(start, end)); // pushstring copies, so a view is safe
    lua_rawseti(L, -2, ++n);
    if (at < 0) return 1;
    start = at + sep.length;
  }
};

/** `mix.bytes_tostring(tb)` → the string of the byte values tb[1..#tb]; anything but 0..255 raises. */
const bytesToString: LuaFunction = (L) => {
  luaL_checktype(L, 1, LUA_TTABLE);
  const length: number = lua_rawlen(L, 1);
  const maxItems = (limitsOf(L) ?? DEFAULT_LIMITS).maxItems;
  if (length > maxItems) return raise(L, `bytes_tostring: more than ${maxItems} bytes (the maxItems limit)`);
  const out = Buffer.allocUnsafe(length);
  for (let i = 1; i <= length; i++) {
    lua_rawgeti(L, 1, i);
    const ok = lua_type(L, -1) === LUA_TNUMBER;
    const byte: number = ok ? lua_tonumber(L, -1) : NaN;
    lua_pop(L, 1);
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) {
      return luaL_argerror(L, 1, `element ${i} is not a byte (an integer 0..255)`);
    }
    out[i - 1] = byte;
  }
  lua_pushstring(L, out);
  return 1;
};

/** A digest function: hex or raw bytes of the argument's bytes (never UTF-8 decoded). */
function digest(algorithm: 'md5' | 'sha1', raw: boolean): LuaFunction {
  return (L) => {
    const hash = createHash(algorithm).update(bytesView(luaL_checklstring(L, 1)));
    lua_pushstring(L, raw ? hash.digest() : Buffer.from(hash.digest('hex'), 'latin1'));
    return 1;
  };
}

/* ------------------------------------------------------------------------------------------------ */
/* URLs: a port of Go's net/url.Parse, on "binary" strings (one char per byte, as Go strings are)   */
/* ------------------------------------------------------------------------------------------------ */

const enum Mode { Path, Host, Zone, UserPassword, QueryComponent, Fragment }

/** The fields of Go's url.URL (snake_case) plus `query`, the first value of each query parameter. */
interface ParsedUrl {
  scheme: string;
  opaque: string;
  user: string;
  host: string;
  path: string;
  raw_path: string;
  force_query: boolean;
  raw_query: string;
  fragment: string;
  raw_fragment: string;
}

class UrlError extends Error {}

function isAlnum(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function unhex(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

/** Go's shouldEscape: whether byte `c` must be %-escaped in a URL part of the given mode. */
function shouldEscape(c: number, mode: Mode): boolean {
  if (isAlnum(c)) return false;
  const ch = String.fromCharCode(c);
  if ((mode === Mode.Host || mode === Mode.Zone) && `!$&'()*+,;=:[]<>"`.includes(ch)) return false;
  if ('-_.~'.includes(ch)) return false;
  if ('$&+,/:;=?@'.includes(ch)) {
    switch (mode) {
      case Mode.Path: return c === 0x3f;
      case Mode.UserPassword: return '@/?:'.includes(ch);
      case Mode.QueryComponent: return true;
      case Mode.Fragment: return false;
      default: break;
    }
  }
  if (mode === Mode.Fragment && '!()*'.includes(ch)) return false;
  return true;
}

/** Go's unescape: decodes %XX (and `+` in query components), rejecting what Go rejects. */
function unescape(s: string, mode: Mode): string {
  let hasEscapes = false;
  for (let i = 0; i < s.length;) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) {
        throw new UrlError(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`);
      }
      const escape = s.slice(i, i + 3);
      if (mode === Mode.Host && unhex(s.charCodeAt(i + 1)) < 8 && escape !== '%25') {
        throw new UrlError(`invalid URL escape ${goQuote(escape)}`);
      }
      if (mode === Mode.Zone) {
        const v = (unhex(s.charCodeAt(i + 1)) << 4) | unhex(s.charCodeAt(i + 2));
        if (escape !== '%25' && v !== 0x20 && shouldEscape(v, Mode.Host)) {
          throw new UrlError(`invalid URL escape ${goQuote(escape)}`);
        }
      }
      hasEscapes = true;
      i += 3;
    } else {
      if ((mode === Mode.Host || mode === Mode.Zone) && c < 0x80 && shouldEscape(c, mode)) {
        throw new UrlError(`invalid character ${goQuote(s[i])} in host name`);
      }
      if (c === 0x2b && mode === Mode.QueryComponent) hasEscapes = true;
      i++;
    }
  }
  if (!hasEscapes) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      out += String.fromCharCode((unhex(s.charCodeAt(i + 1)) << 4) | unhex(s.charCodeAt(i + 2)));
      i += 2;
    } else if (c === 0x2b && mode === Mode.QueryComponent) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

/** Go's escape, for the raw_path / raw_fragment test only (so query-component spaces are not needed). */
function escape(s: string, mode: Mode): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += shouldEscape(c, mode) ? `%${c.toString(16).toUpperCase().padStart(2, '0')}` : s[i];
  }
  return out;
}

/** Go's %q, close enough for error messages. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

function getScheme(raw: string): [string, string] {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a)) continue;
    if ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e) {
      if (i === 0) return ['', raw];
      continue;
    }
    if (c === 0x3a) {
      if (i === 0) throw new UrlError('missing protocol scheme');
      return [raw.slice(0, i), raw.slice(i + 1)];
    }
    return ['', raw];
  }
  return ['', raw];
}

function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

function parseHost(host: string): string {
  if (host.startsWith('[')) {
    const i = host.lastIndexOf(']');
    if (i < 0) throw new UrlError("missing ']' in host");
    const colonPort = host.slice(i + 1);
    if (!validOptionalPort(colonPort)) throw new UrlError(`invalid port ${goQuote(colonPort)} after host`);
    const zone = host.slice(0, i).indexOf('%25');
    if (zone >= 0) {
      return unescape(host.slice(0, zone), Mode.Host) + unescape(host.slice(zone, i), Mode.Zone)
        + unescape(host.slice(i), Mode.Host);
    }
  } else {
    const i = host.lastIndexOf(':');
    if (i >= 0 && !validOptionalPort(host.slice(i))) {
      throw new UrlError(`invalid port ${goQuote(host.slice(i))} after host`);
    }
  }
  return unescape(host, Mode.Host);
}

/** Userinfo as Go's Userinfo.String() prints it: `user` or `user:password`, re-escaped. */
function parseUserinfo(userinfo: string): string {
  if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo)) throw new UrlError('net/url: invalid userinfo');
  const colon = userinfo.indexOf(':');
  if (colon < 0) return escape(unescape(userinfo, Mode.UserPassword), Mode.UserPassword);
  const username = unescape(userinfo.slice(0, colon), Mode.UserPassword);
  const password = unescape(userinfo.slice(colon + 1), Mode.UserPassword);
  return `${escape(username, Mode.UserPassword)}:${escape(password, Mode.UserPassword)}`;
}

/** Sets a decoded part and, when Go's default re-encoding would differ from the input, its raw form. */
function decodedWithRaw(raw: string, mode: Mode): [string, string] {
  const decoded = unescape(raw, mode);
  return [decoded, escape(decoded, mode) === raw ? '' : raw];
}

/** Go's url.Parse (not ParseRequestURI), so `/chat?x=1` and `http://u:p@h:1/p?q#f` both parse. */
function parseUrl(raw: string): ParsedUrl {
  const hash = raw.indexOf('#');
  const rest0 = hash < 0 ? raw : raw.slice(0, hash);
  const url: ParsedUrl = {
    scheme: '', opaque: '', user: '', host: '', path: '', raw_path: '',
    force_query: false, raw_query: '', fragment: '', raw_fragment: '',
  };
  if (/[\x00-\x1f\x7f]/.test(rest0)) throw new UrlError('net/url: invalid control character in URL');
  parseWithoutFragment(rest0, url);
  if (hash >= 0) [url.fragment, url.raw_fragment] = decodedWithRaw(raw.slice(hash + 1), Mode.Fragment);
  return url;
}

function parseWithoutFragment(raw: string, url: ParsedUrl): void {
  if (raw === '*') {
    url.path = '*';
    return;
  }
  let [scheme, rest] = getScheme(raw);
  url.scheme = scheme.toLowerCase();
  if (rest.endsWith('?') && rest.indexOf('?') === rest.length - 1) {
    url.force_query = true;
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf('?');
    if (q >= 0) [rest, url.raw_query] = [rest.slice(0, q), rest.slice(q + 1)];
  }
  if (!rest.startsWith('/')) {
    if (url.scheme !== '') {
      url.opaque = rest; // rootless paths (mailto:x) are opaque, as in Go
      return;
    }
    if (rest.split('/', 1)[0].includes(':')) throw new UrlError('first path segment in URL cannot contain colon');
  }
  if ((url.scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    rest = '';
    const slash = authority.indexOf('/');
    if (slash >= 0) [authority, rest] = [authority.slice(0, slash), authority.slice(slash)];
    const at = authority.lastIndexOf('@');
    url.host = parseHost(authority.slice(at + 1));
    if (at >= 0) url.user = parseUserinfo(authority.slice(0, at));
  }
  [url.path, url.raw_path] = decodedWithRaw(rest, Mode.Path);
}

/** Go's url.ParseQuery keeping the first value per key; bad pairs are skipped as url.Query() does. */
function parseQuery(query: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const pair of query.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    try {
      const key = unescape(eq < 0 ? pair : pair.slice(0, eq), Mode.QueryComponent);
      const value = unescape(eq < 0 ? '' : pair.slice(eq + 1), Mode.QueryComponent);
      if (!values.has(key)) values.set(key, value);
    } catch (error) {
      if (!(error instanceof UrlError)) throw error;
    }
  }
  return values;
}

/** A binary string (one char per byte) as Lua bytes. */
function pushBinary(L: LuaState, s: string): void {
  lua_pushstring(L, Buffer.from(s, 'latin1'));
}

/**
 * `mix.parse_url(url)` (alias `parse_str`, `url_parse`) → `tb, err`. `tb` has Go's url.URL fields in
 * snake_case, all strings except `force_query` (boolean): `user` is `user` or `user:password` (Go's
 * Userinfo.String(), escaped) or `""`; `raw_path`/`raw_fragment` are `""` unless the input's encoding
 * differs from Go's default. `query` maps each parameter to its first value, decoded (`+` is a space).
 * A URL longer than maxItems bytes raises.
 */
const parseUrlFn: LuaFunction = (L) => {
  const bytes: Uint8Array = luaL_checklstring(L, 1);
  // Parsing takes about 0.1 us a byte (1.5 s for a 12 MiB URL); no real URL comes near the cap.
  const maxItems = (limitsOf(L) ?? DEFAULT_LIMITS).maxItems;
  if (bytes.length > maxItems) return raise(L, `parse_url: a URL of more than ${maxItems} bytes (the maxItems limit)`);
  const raw = bytesView(bytes).toString('latin1');
  let url: ParsedUrl;
  let query: Map<string, string>;
  try {
    url = parseUrl(raw);
    query = parseQuery(url.raw_query);
  } catch (error) {
    if (!(error instanceof UrlError)) throw error;
    return pushNilError(L, `parse ${goQuote(raw)}: ${error.message}`);
  }
  luaL_checkstack(L, 3, 'parse_url');
  lua_createtable(L, 0, 11);
  for (const [name, value] of Object.entries(url)) {
    if (typeof value === 'boolean') lua_pushboolean(L, value);
    else pushBinary(L, value);
    lua_setfield(L, -2, Buffer.from(name));
  }
  lua_createtable(L, 0, query.size);
  for (const [key, value] of query) {
    pushBinary(L, value);
    lua_setfield(L, -2, Buffer.from(key, 'latin1'));
  }
  lua_setfield(L, -2, Buffer.from('query'));
  return 1;
};

/* ------------------------------------------------------------------------------------------------ */

function typeName(L: LuaState, index: number): string {
  return luaToJsString(lua_typename(L, lua_type(L, index)));
}

function luaNumberName(n: number): string {
  return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
}

/**
 * The pure utilities of CONNMIX's `mix` table (connmix.md 4.1), in JS because Lua versions are far
 * slower in Fengari. Register with `luaL_setfuncs(L, MIX_UTILS, 0)` on the `mix` table. Wrong argument
 * types raise the standard `bad argument #n to 'name' (...)`; bad data gives `nil, err`.
 */
export const MIX_UTILS: Record<string, LuaFunction> = {
  json_encode: jsonEncode,
  json_decode: jsonDecode,
  base64_encode: base64Encode,
  base64_decode: base64Decode,
  str_split: strSplit,
  parse_url: parseUrlFn,
  parse_str: parseUrlFn,
  url_parse: parseUrlFn,
  bytes_tostring: bytesToString,
  md5: digest('md5', false),
  md5_bin: digest('md5', true),
  sha1: digest('sha1', false),
  sha1_bin: digest('sha1', true),
};
