import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AccessUser } from '../config/schema';
import { clientIp, globPattern, type GlobMatcher } from '../wire/http-request';

/** What a request needs: `read` for GET routes and metrics, `write` for everything that changes state. */
export type Role = 'read' | 'write';

/** The outcome of an access check: null when allowed, else the HTTP status and message to answer. */
export type AccessDenial = { status: 401 | 403; message: string } | null;

/**
 * `access.users` (CONNMIX docs, configuration-file-details): HTTP Basic accounts with roles and a client-IP glob. With no users the
 * API is open, as CONNMIX's examples assume. The account list can be replaced at run time (hot key).
 */
export class AccessControl {
  private users: Array<AccessUser & { hostPattern: GlobMatcher }> = [];

  constructor(users: AccessUser[]) {
    this.update(users);
  }

  get open(): boolean {
    return this.users.length === 0;
  }

  update(users: AccessUser[]): void {
    this.users = users.map((user) => ({ ...user, hostPattern: globPattern(user.host) }));
  }

  /** Checks the request's Basic credentials, its client address, and the account's roles. */
  check(req: IncomingMessage, role: Role): AccessDenial {
    if (this.open) return null;
    const credentials = basicCredentials(req.headers.authorization);
    if (!credentials) return { status: 401, message: 'authentication required (HTTP Basic)' };
    const user = this.users.find((candidate) => candidate.username === credentials.username);
    if (!user || !safeEqual(user.password, credentials.password)) return { status: 401, message: 'invalid username or password' };
    const ip = clientIp(req.socket);
    if (!user.hostPattern.test(ip)) return { status: 403, message: `user ${user.username} may not connect from ${ip}` };
    if (!user.roles.includes(role)) return { status: 403, message: `user ${user.username} lacks the ${role} role` };
    return null;
  }
}

function basicCredentials(header: string | undefined): { username: string; password: string } | null {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Compares in time independent of where the strings differ, so passwords cannot be guessed by timing.
 * Both sides are hashed first: timingSafeEqual needs equal lengths, and the digest hides the length too.
 */
function safeEqual(expected: string, given: string): boolean {
  return timingSafeEqual(sha256(expected), sha256(given));
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
