import { createHmac, timingSafeEqual } from 'node:crypto';

/** Who a valid token speaks for. */
export interface Viewer {
  uid: number;
  /** Unix time in seconds after which the token is refused. */
  exp: number;
}

/** A token that is missing, malformed, forged or expired. */
export class TokenError extends Error {}

/**
 * Viewer tokens: `base64url(JSON {uid, exp}) "." base64url(HMAC-SHA256(secret, first part))`. Whoever
 * holds the secret can issue them (the login service); the barrage API only verifies them.
 */
export class TokenSigner {
  constructor(
    private readonly secret: string,
    /** Lifetime of issued tokens in seconds. */
    readonly ttlSeconds = 24 * 3600,
  ) {
    if (secret.length < 16) throw new Error('the token secret must be at least 16 characters');
  }

  issue(uid: number, now = Date.now()): { token: string; viewer: Viewer } {
    const viewer = { uid, exp: Math.floor(now / 1000) + this.ttlSeconds };
    const body = Buffer.from(JSON.stringify(viewer)).toString('base64url');
    return { token: `${body}.${this.sign(body)}`, viewer };
  }

  verify(token: string, now = Date.now()): Viewer {
    const [body, signature, extra] = token.split('.');
    if (!body || !signature || extra !== undefined) throw new TokenError('malformed token');
    const expected = Buffer.from(this.sign(body));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw new TokenError('invalid token signature');
    let viewer: Partial<Viewer>;
    try {
      viewer = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw new TokenError('malformed token');
    }
    if (!Number.isSafeInteger(viewer.uid) || typeof viewer.exp !== 'number') throw new TokenError('malformed token');
    if (viewer.exp * 1000 <= now) throw new TokenError('token expired: sign in again');
    return { uid: viewer.uid as number, exp: viewer.exp };
  }

  private sign(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url');
  }
}
