import { lua, lauxlib, K, bytesView, luaToJsString, checkJsString, type LuaState, type LuaFunction } from '../fengari/index';
import type { LuaVM } from '../vm';
import { settle } from './settle';
import { stateLimits } from '../limits';
import type { ScriptConnection } from './host';

const { LUA_TNIL, LUA_TNONE, LUA_TSTRING, LUA_TNUMBER, LUA_TTABLE, lua_type, lua_typename, lua_tonumber, lua_tolstring,
  lua_getfield, lua_next, lua_pop, lua_pushnil, lua_pushstring, lua_pushnumber, lua_createtable, lua_setfield,
  lua_newtable } = lua;
const { luaL_argerror, luaL_checkstack } = lauxlib;

/** How long a request (connect, redirects, headers and body) may take when `timeout` is not given. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** The largest response body read; a longer one fails the request with `nil, err`. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Timers cannot wait longer (about 24.8 days); longer timeouts are cut to it. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Milliseconds per unit of a Go duration string. */
const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};

/** Go's time.ParseDuration ("1h", "500ms", "1m30s", "1.5s"), in milliseconds; null if malformed. */
export function parseDuration(text: string): number | null {
  if (text === '0') return 0;
  let i = 0;
  let sign = 1;
  if (text[0] === '-' || text[0] === '+') {
    sign = text[0] === '-' ? -1 : 1;
    i = 1;
  }
  if (i === text.length) return null;
  const part = /(\d*(?:\.\d*)?)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  while (i < text.length) {
    part.lastIndex = i;
    const match = part.exec(text);
    if (!match || match[1] === '' || match[1] === '.') return null;
    total += Number(match[1]) * DURATION_UNITS[match[2]];
    i = part.lastIndex;
  }
  return sign * total;
}

/** A request as read from the Lua arguments. */
interface HttpRequest {
  method: string;
  url: string;
  query: string | null;
  body: Buffer | null;
  headers: Array<[string, string]>;
  cookies: Array<[string, string]>;
  auth: { username: string; password: string } | null;
  timeoutMs: number;
}

/** The response table of `mix.http.request` (CONNMIX docs, lua-api). */
interface HttpResponse {
  body: Buffer;
  headers: Array<[string, string]>;
  cookies: Array<[string, string]>;
  statusCode: number;
  url: string;
}

const OPTIONS = 3;

/** Reads `options.<name>` onto the stack and returns its Lua type; the caller pops it. */
function field(L: LuaState, name: string): number {
  return lua_getfield(L, OPTIONS, K(name));
}

function badOption(L: LuaState, message: string): never {
  return luaL_argerror(L, OPTIONS, Buffer.from(message)) as never;
}

function typeName(L: LuaState, index: number): string {
  return luaToJsString(lua_typename(L, lua_type(L, index)));
}

/** A string or number as text, byte for byte (header values are bytes, as in Go); null for other types. */
function scalarText(L: LuaState, index: number): string | null {
  const type = lua_type(L, index);
  if (type === LUA_TSTRING) return bytesView(lua_tolstring(L, index)!).toString('latin1');
  if (type === LUA_TNUMBER) return String(lua_tonumber(L, index));
  return null;
}

function stringOption(L: LuaState, name: string): Buffer | null {
  const type = field(L, name);
  if (type !== LUA_TNIL && type !== LUA_TSTRING) badOption(L, `${name} must be a string, got ${typeName(L, -1)}`);
  const value = type === LUA_TSTRING ? Buffer.from(lua_tolstring(L, -1)!) : null;
  lua_pop(L, 1);
  return value;
}

/** `headers` / `cookies`: a table of names to strings or numbers. */
function pairsOption(L: LuaState, name: string): Array<[string, string]> {
  const type = field(L, name);
  const pairs: Array<[string, string]> = [];
  if (type !== LUA_TNIL) {
    if (type !== LUA_TTABLE) badOption(L, `${name} must be a table, got ${typeName(L, -1)}`);
    const maxItems = stateLimits(L).maxItems;
    lua_pushnil(L);
    while (lua_next(L, -2) !== 0) {
      if (pairs.length >= maxItems) badOption(L, `${name} has more than ${maxItems} entries (the maxItems limit)`);
      const key = scalarText(L, -2);
      const value = scalarText(L, -1);
      if (key === null || value === null) badOption(L, `${name} must map strings to strings`);
      pairs.push([key as string, value as string]);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return pairs;
}

/** `timeout`: seconds (a number) or a Go duration string; must be positive. */
function timeoutOption(L: LuaState): number {
  const type = field(L, 'timeout');
  let ms = DEFAULT_TIMEOUT_MS;
  if (type === LUA_TNUMBER) {
    ms = lua_tonumber(L, -1) * 1000;
  } else if (type === LUA_TSTRING) {
    const text = luaToJsString(lua_tolstring(L, -1)!);
    const parsed = parseDuration(text);
    if (parsed === null) badOption(L, `timeout: invalid duration "${text}"`);
    ms = parsed as number;
  } else if (type !== LUA_TNIL) {
    badOption(L, `timeout must be a number of seconds or a duration string, got ${typeName(L, -1)}`);
  }
  if (!(ms > 0)) badOption(L, 'timeout must be positive');
  lua_pop(L, 1);
  return Math.min(ms, MAX_TIMEOUT_MS);
}

/** `auth = {username =, password =}` (the older `{user =, pass =}` too) for HTTP Basic. */
function authOption(L: LuaState): HttpRequest['auth'] {
  const type = field(L, 'auth');
  if (type === LUA_TNIL) {
    lua_pop(L, 1);
    return null;
  }
  if (type !== LUA_TTABLE) badOption(L, `auth must be a table, got ${typeName(L, -1)}`);
  const part = (names: string[]): string => {
    for (const name of names) {
      const fieldType = lua_getfield(L, -1, K(name));
      const text = scalarText(L, -1);
      lua_pop(L, 1);
      if (text !== null) return text;
      if (fieldType !== LUA_TNIL) badOption(L, `auth.${name} must be a string`);
    }
    return '';
  };
  const auth = { username: part(['username', 'user']), password: part(['password', 'pass']) };
  lua_pop(L, 1);
  return auth;
}

/** Reads `method, url[, options]`; wrong types raise Lua argument errors. */
function readRequest(L: LuaState): HttpRequest {
  const method = checkJsString(L, 1).toUpperCase();
  const url = checkJsString(L, 2);
  const optionsType = lua_type(L, OPTIONS);
  const request: HttpRequest = {
    method, url, query: null, body: null, headers: [], cookies: [], auth: null, timeoutMs: DEFAULT_TIMEOUT_MS,
  };
  if (optionsType === LUA_TNIL || optionsType === LUA_TNONE) return request;
  if (optionsType !== LUA_TTABLE) badOption(L, `table expected, got ${typeName(L, OPTIONS)}`);
  request.query = stringOption(L, 'query')?.toString('utf8') ?? null;
  request.body = stringOption(L, 'body');
  request.headers = pairsOption(L, 'headers');
  request.cookies = pairsOption(L, 'cookies');
  request.auth = authOption(L);
  request.timeoutMs = timeoutOption(L);
  return request;
}

/** Go's CanonicalMIMEHeaderKey: `content-type` → `Content-Type`. */
function canonicalName(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_match, dash: string, letter: string) => dash + letter.toUpperCase());
}

/** `name=value` of each Set-Cookie line (attributes dropped, quotes around the value removed). */
function parseCookies(lines: string[]): Array<[string, string]> {
  const cookies: Array<[string, string]> = [];
  for (const line of lines) {
    const pair = line.split(';', 1)[0];
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    if (name) cookies.push([name, value]);
  }
  return cookies;
}

/**
 * Bytes of response bodies the requests of this process may hold at once while reading them. Each
 * body is capped at MAX_BODY_BYTES, but every connection's hook may wait on a request of its own: a
 * script fetching a large file per connection held 16 MiB per client, out of sight of maxMemory.
 */
export const MAX_BODIES_BYTES = 16 * MAX_BODY_BYTES;
/** Bytes the bodies being read hold now. */
let bodiesBytes = 0;

/** Reads a body up to MAX_BODY_BYTES, while the bodies being read stay within MAX_BODIES_BYTES. */
async function readBody(response: Response): Promise<Buffer> {
  if (!response.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return Buffer.concat(chunks, size);
      size += value.byteLength;
      bodiesBytes += value.byteLength;
      if (size > MAX_BODY_BYTES || bodiesBytes > MAX_BODIES_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw new Error(size > MAX_BODY_BYTES ? `response body larger than ${MAX_BODY_BYTES} bytes`
          : `response bodies being read exceed ${MAX_BODIES_BYTES} bytes in all`);
      }
      chunks.push(value);
    }
  } finally {
    bodiesBytes -= size;
  }
}

class TimeoutError extends Error {}

/** The connection closed while its hook waited for the request. */
class CancelledError extends Error {}

/**
 * Performs the request with fetch, following redirects; `controller` aborts it (on timeout here, or
 * from outside when the connection closes). Rejects with the `err` text Lua gets.
 */
async function perform(request: HttpRequest, controller: AbortController): Promise<HttpResponse> {
  // Go names the failed operation after the method: Get "http://…": <cause>.
  const operation = `${request.method[0]}${request.method.slice(1).toLowerCase()} "${request.url}"`;
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new Error(`parse "${request.url}": invalid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${operation}: unsupported protocol scheme "${url.protocol.slice(0, -1)}"`);
  }
  if (request.query !== null) url.search = request.query;
  const headers = new Headers();
  try {
    if (request.auth) {
      const credentials = Buffer.from(`${request.auth.username}:${request.auth.password}`, 'latin1').toString('base64');
      headers.set('Authorization', `Basic ${credentials}`);
    }
    for (const [name, value] of request.headers) headers.set(name, value);
    if (request.cookies.length > 0) {
      const cookies = request.cookies.map(([name, value]) => `${name}=${value}`).join('; ');
      const existing = headers.get('Cookie');
      headers.set('Cookie', existing ? `${existing}; ${cookies}` : cookies);
    }
  } catch (error) {
    throw new Error(`${operation}: ${(error as Error).message}`, { cause: error });
  }
  const timer = setTimeout(() => controller.abort(new TimeoutError()), request.timeoutMs);
  try {
    const response = await fetch(url, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'follow',
      signal: controller.signal,
    });
    const body = await readBody(response);
    const responseHeaders: Array<[string, string]> = [];
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') responseHeaders.push([canonicalName(name), value]);
    });
    const setCookies = response.headers.getSetCookie();
    // Go's Header.Get gives the first Set-Cookie line.
    if (setCookies.length > 0) responseHeaders.push(['Set-Cookie', setCookies[0]]);
    return { body, headers: responseHeaders, cookies: parseCookies(setCookies), statusCode: response.status, url: response.url };
  } catch (error) {
    if (controller.signal.reason instanceof CancelledError) throw new Error(`${operation}: cancelled, the connection closed`, { cause: error });
    if (controller.signal.aborted) throw new Error(`${operation}: timed out after ${request.timeoutMs} ms`, { cause: error });
    const cause = (error as Error & { cause?: Error }).cause;
    throw new Error(`${operation}: ${cause?.message ?? (error as Error).message}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

function pushPairs(L: LuaState, pairs: Array<[string, string]>): void {
  lua_createtable(L, 0, pairs.length);
  for (const [name, value] of pairs) {
    lua_pushstring(L, Buffer.from(value, 'latin1'));
    lua_setfield(L, -2, Buffer.from(name, 'latin1'));
  }
}

function pushResponse(L: LuaState, response: HttpResponse): number {
  luaL_checkstack(L, 4, 'http response');
  lua_createtable(L, 0, 6);
  lua_pushstring(L, response.body);
  lua_setfield(L, -2, K('body'));
  lua_pushnumber(L, response.body.length);
  lua_setfield(L, -2, K('body_size'));
  pushPairs(L, response.headers);
  lua_setfield(L, -2, K('headers'));
  pushPairs(L, response.cookies);
  lua_setfield(L, -2, K('cookies'));
  lua_pushnumber(L, response.statusCode);
  lua_setfield(L, -2, K('status_code'));
  lua_pushstring(L, Buffer.from(response.url));
  lua_setfield(L, -2, K('url'));
  return 1;
}

/**
 * `mix.http.request(method, url[, options])` → `resp, err` (CONNMIX docs, lua-api; shaped after gluahttp). Options:
 * `query` (replaces the URL's query, as gluahttp does), `body`, `headers`, `cookies`, `auth`, `timeout`
 * (seconds or a Go duration, default 30 s, covering the whole exchange). Redirects are followed;
 * `resp.url` is the final URL. A non-2xx status is a response, not an error; transport failures,
 * timeouts, bodies over 16 MiB (or past 256 MiB of bodies being read at once) and non-http(s) URLs
 * give `nil, err`. A repeated response header's values are joined with ", " (except Set-Cookie, which
 * gives its first line, as Go's Header.Get).
 */
function request(vm: LuaVM<ScriptConnection>): LuaFunction {
  return (L) => {
    const spec = readRequest(L);
    const controller = new AbortController();
    return settle(vm, L, perform(spec, controller), pushResponse, undefined, () => controller.abort(new CancelledError()));
  };
}

/** Pushes the `mix.http` table. */
export function pushHttpModule(vm: LuaVM<ScriptConnection>): void {
  lua_newtable(vm.L);
  lauxlib.luaL_setfuncs(vm.L, { request: request(vm) }, 0);
}
