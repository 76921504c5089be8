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

/** Whether a text matches a glob. */
export interface GlobMatcher {
  test(text: string): boolean;
}

/**
 * A glob (`*` matches any run of characters, the rest is literal) as a matcher of whole texts. Not a
 * regular expression: `^a.*b.*c.*d$` backtracks polynomially, and clients choose what is matched (an
 * Origin header of 8 KB against `https://*.*.*.example.com` froze the node for over two minutes). Here
 * the literal pieces are found left to right, each at its first place after the previous one, which for
 * `*`-only globs is as good as any: the work is one scan of the text per piece.
 */
export function globPattern(glob: string): GlobMatcher {
  const pieces = glob.split('*');
  const first = pieces[0];
  const last = pieces[pieces.length - 1];
  const middle = pieces.slice(1, -1).filter((piece) => piece.length > 0);
  return {
    test(text: string): boolean {
      if (pieces.length === 1) return text === glob;
      if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) return false;
      const end = text.length - last.length;
      let at = first.length;
      for (const piece of middle) {
        const found = text.indexOf(piece, at);
        if (found < 0 || found + piece.length > end) return false;
        at = found + piece.length;
      }
      return true;
    },
  };
}

/**
 * Whether a request URL is served by a server whose `path` option is `path`: the same path exactly, or
 * anything below it when `path` ends with "/" (Go ServeMux rules, which CONNMIX's listener follows).
 */
export function pathMatches(path: string, url: string | undefined): boolean {
  const target = url ?? '/';
  const query = target.indexOf('?');
  // Runs on every upgrade: no array from split() for the common URL that has no query.
  const pathname = query < 0 ? target : target.slice(0, query);
  return path.endsWith('/') ? pathname.startsWith(path) : pathname === path;
}

/**
 * A socket 'error' listener that closes over nothing. One written inline in an upgrade handler would
 * share that handler's V8 context and keep the request and its headers alive as long as the socket.
 */
export function destroySocket(this: Duplex): void {
  this.destroy();
}
