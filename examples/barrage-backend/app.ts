import { randomInt } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { PublishResult } from '../../src/client';
import { InputError, parseBarrage, parseVideoId, type Barrage } from './barrage';
import { RateLimiter } from './rate-limit';
import type { BarrageStore } from './store';
import { TokenError, type TokenSigner, type Viewer } from './token';

/** What the backend needs from the SDK: a publish (a `ConnmixClient` or a `NodeSocket`). */
export interface Publisher {
  publish(channel: string, data: object): Promise<PublishResult>;
}

/** Where pages connect for live comments. */
export interface WebSocketLocation {
  /** Port of the engine's business server; the page uses its own host name. */
  port: number;
  path: string;
  /** A full `ws(s)://` URL that replaces host, port and path (behind a proxy, say). */
  url?: string;
}

export interface BarrageAppOptions {
  publisher: Publisher;
  store: BarrageStore;
  tokens: TokenSigner;
  websocket: WebSocketLocation;
  /** Longest comment in characters (default 100). */
  maxLength?: number;
  /** Comments one viewer may post per window (default 5 per 10 s). */
  rateLimit?: { count: number; windowMs: number };
  /** A folder served at `/` (the page). */
  staticDir?: string;
  /** Serve `POST /api/token`, which signs anyone in (default true; turn off behind a real login). */
  demoLogin?: boolean;
  /** Reports failures the viewer is not told about in full (a publish that did not reach the engine). */
  onError?: (message: string, error: unknown) => void;
}

/** An answer `{error}` with an HTTP status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * The barrage API: `POST /api/token` (demo sign-in), `POST /api/barrage` (verify the viewer, check
 * and rate-limit the comment, store it, publish it to `video:<id>`), `GET /api/barrage?video_id=`
 * (the history by video time) and `GET /api/config` (where the page connects); the page's files too.
 */
export function createBarrageApp(options: BarrageAppOptions): express.Express {
  const maxLength = options.maxLength ?? 100;
  const limits = options.rateLimit ?? { count: 5, windowMs: 10_000 };
  const limiter = new RateLimiter(limits.count, limits.windowMs);
  const app = express();
  app.disable('x-powered-by');
  app.use('/api', express.json({ limit: '4kb', type: () => true }));

  app.get('/api/config', (_req, res) => {
    res.json({ websocket: options.websocket, max_length: maxLength, rate_limit: { count: limits.count, window_ms: limits.windowMs } });
  });

  if (options.demoLogin ?? true) {
    app.post('/api/token', (_req, res) => {
      const { token, viewer } = options.tokens.issue(randomInt(100_000, 1_000_000));
      res.status(201).json({ token, uid: viewer.uid, expires_at: viewer.exp });
    });
  }

  app.post('/api/barrage', async (req, res) => {
    const viewer = authenticate(req, options.tokens);
    const comment = parseBarrage(req.body, viewer.uid, maxLength);
    const waitMs = limiter.take(String(viewer.uid));
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      throw new HttpError(429, `slow down: at most ${limits.count} comments every ${limits.windowMs / 1000} s, try again in ${seconds} s`, {
        'retry-after': String(seconds),
      });
    }
    const barrage = await options.store.add(comment);
    res.status(201).json({ barrage, delivered: await publish(options, barrage) });
  });

  app.get('/api/barrage', async (req, res) => {
    const videoId = parseVideoId(req.query.video_id);
    res.json({ video_id: videoId, barrages: await options.store.list(videoId) });
  });

  app.use('/api', (req, res) => {
    res.status(404).json({ error: `not found: ${req.method} ${req.originalUrl}` });
  });
  if (options.staticDir) app.use(express.static(options.staticDir));

  app.use((error: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof HttpError) {
      res.status(error.status).set(error.headers).json({ error: error.message });
    } else if (error instanceof TokenError) {
      res.status(401).json({ error: error.message });
    } else if (error instanceof InputError) {
      res.status(400).json({ error: error.message });
    } else if (error.status && error.status < 500) {
      // body-parser: malformed JSON, a body over the limit
      res.status(error.status).json({ error: `invalid request body: ${error.message}` });
    } else {
      options.onError?.('barrage request failed', error);
      res.status(500).json({ error: 'internal error' });
    }
  });
  return app;
}

function authenticate(req: Request, tokens: TokenSigner): Viewer {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!match) throw new HttpError(401, 'sign in first: Authorization: Bearer <token> is missing');
  return tokens.verify(match[1]);
}

/**
 * Publishes the seed's event to `video:<id>`; answers how many viewers it reached, or null when the
 * engine could not be reached (the comment is stored all the same and shows up in the history).
 */
async function publish(options: BarrageAppOptions, barrage: Barrage): Promise<number | null> {
  try {
    const result = await options.publisher.publish(`video:${barrage.video_id}`, { event: '@video', data: barrage });
    return result.delivered;
  } catch (error) {
    options.onError?.(`publish to video:${barrage.video_id} failed`, error);
    return null;
  }
}
