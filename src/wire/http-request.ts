import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * Request headers keyed the way Go's net/http presents them to CONNMIX scripts
 * (`Sec-Websocket-Key`, `User-Agent`); repeated headers are joined with ", ".
 */
export function canonicalHeaders(rawHeaders: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
    headers[name] = name in headers ? `${headers[name]}, ${rawHeaders[i + 1]}` : rawHeaders[i + 1];
  }
  return headers;
}

/** The peer's IP, with IPv4-mapped IPv6 addresses shown as IPv4. */
export function clientIp(socket: Socket): string {
  return (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** `ip:port` of the peer (`[ip]:port` for IPv6). */
export function remoteAddress(socket: Socket): string {
  const ip = clientIp(socket);
  return ip.includes(':') ? `[${ip}]:${socket.remotePort}` : `${ip}:${socket.remotePort}`;
}

/** A glob (`*` matches any run of characters, the rest is literal) as an anchored pattern. */
export function globPattern(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/**
 * Whether a request URL is served by a server whose `path` option is `path`: the same path exactly, or
 * anything below it when `path` ends with "/" (Go ServeMux rules, which CONNMIX's listener follows).
 */
export function pathMatches(path: string, url: string | undefined): boolean {
  const pathname = (url ?? '/').split('?', 1)[0];
  return path.endsWith('/') ? pathname.startsWith(path) : pathname === path;
}

/**
 * A socket 'error' listener that closes over nothing. One written inline in an upgrade handler would
 * share that handler's V8 context and keep the request and its headers alive as long as the socket.
 */
export function destroySocket(this: Duplex): void {
  this.destroy();
}
