/**
 * `mix.parse_url` (also `parse_str`, `url_parse`): a port of Go's net/url.Parse, on "binary" strings
 * (one char per byte, as Go strings are), since CONNMIX's parse_url is Go's.
 */
import { lua, lauxlib, bytesView, raise, type LuaState, type LuaFunction } from '../fengari/index';
import { pushNilError } from '../vm';
import { stateLimits } from '../limits';

const { lua_pushstring, lua_pushboolean, lua_createtable, lua_setfield } = lua;
const { luaL_checklstring, luaL_checkstack } = lauxlib;

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
  // eslint-disable-next-line no-control-regex -- Go's url.Parse refuses ASCII control bytes, and so do we
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
  const [scheme, afterScheme] = getScheme(raw);
  let rest = afterScheme;
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
export const parseUrlFn: LuaFunction = (L) => {
  const bytes: Uint8Array = luaL_checklstring(L, 1);
  // Parsing takes about 0.1 us a byte (1.5 s for a 12 MiB URL); no real URL comes near the cap.
  const maxItems = stateLimits(L).maxItems;
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
