import { randomInt } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { InputError, parseBarrage, parseVideoId, type Barrage } from './barrage';
import { fromDplayer, toArtplayer, toDplayer } from './players';
import { RateLimiter } from './rate-limit';
import type { BarrageStore } from './store';
import { TokenError, type TokenSigner, type Viewer } from './token';
import { vendorFolders } from './vendor';
import { WatchingReporter, type CountingPublisher } from './watching';

/** What the backend needs from the SDK (a `ConnmixClient` or a `NodeSocket`): a publish, and a count for the "watching" events. */
export type Publisher = CountingPublisher;

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
  /** How often each watched video gets its `@watching` event, in ms (default 3000). */
  watchingIntervalMs?: number;
}

/** The app, and what stops its timer. */
export interface BarrageApp {
  handler: express.Express;
  close(): void;
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
 * (the history by video time), `GET /api/artplayer?video_id=` (the same in artplayer-plugin-danmuku's
 * format), DPlayer's v3 API under `/api/dplayer/` and `GET /api/config` (where the page connects); the
 * page's files and the players' scripts (`/vendor/<package>/`) too. Every video a page opens gets a
 * `@watching` event with its viewer count every few seconds.
 */
export function createBarrageApp(options: BarrageAppOptions): BarrageApp {
  const maxLength = options.maxLength ?? 100;
  const limits = options.rateLimit ?? { count: 5, windowMs: 10_000 };
  const limiter = new RateLimiter(limits.count, limits.windowMs);
  const { publisher } = options;
  const watching = new WatchingReporter(publisher, options.watchingIntervalMs, options.onError);

  /** Checks, rate-limits, stores and publishes a comment of `viewer`; answers it and its delivery count. */
  const postComment = async (viewer: Viewer, body: unknown): Promise<{ barrage: Barrage; delivered: number | null }> => {
    const comment = parseBarrage(body, viewer.uid, maxLength);
    const waitMs = limiter.take(String(viewer.uid));
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      throw new HttpError(429, `slow down: at most ${limits.count} comments every ${limits.windowMs / 1000} s, try again in ${seconds} s`, {
        'retry-after': String(seconds),
      });
    }
    const barrage = await options.store.add(comment);
    watching.touch(barrage.video_id);
    return { barrage, delivered: await publish(options, barrage) };
  };
  const history = async (value: unknown): Promise<{ videoId: number; barrages: Barrage[] }> => {
    const videoId = parseVideoId(value);
    watching.touch(videoId);
    return { videoId, barrages: await options.store.list(videoId) };
  };

  const app = express();
  app.disable('x-powered-by');
  // First, with its own body parser: every answer under it, errors included, has DPlayer's shape.
  app.use('/api/dplayer', dplayerRoutes(postComment, history, options.tokens));
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
    res.status(201).json(await postComment(authenticate(req, options.tokens), req.body));
  });

  app.get('/api/barrage', async (req, res) => {
    const { videoId, barrages } = await history(req.query.video_id);
    res.json({ video_id: videoId, barrages });
  });

  app.get('/api/artplayer', async (req, res) => {
    res.json((await history(req.query.video_id)).barrages.map(toArtplayer));
  });

  app.use('/api', (req, res) => {
    res.status(404).json({ error: `not found: ${req.method} ${req.originalUrl}` });
  });
  for (const { route, dir } of vendorFolders()) app.use(route, express.static(dir, { fallthrough: false }));
  if (options.staticDir) app.use(express.static(options.staticDir));

  app.use((error: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    const answer = errorAnswer(error);
    if (answer.status >= 500) options.onError?.('barrage request failed', error);
    res.status(answer.status).set(answer.headers).json({ error: answer.message });
  });
  return { handler: app, close: () => watching.stop() };
}

/** The HTTP status, message and headers an error answers with. */
function errorAnswer(error: Error & { status?: number }): { status: number; message: string; headers: Record<string, string> } {
  if (error instanceof HttpError) return { status: error.status, message: error.message, headers: error.headers };
  if (error instanceof TokenError) return { status: 401, message: error.message, headers: {} };
  if (error instanceof InputError) return { status: 400, message: error.message, headers: {} };
  if (error.status && error.status < 500) {
    // body-parser (it sets `type`): malformed JSON, a body over the limit; express.static: a missing file
    const message = (error as { type?: unknown }).type ? `invalid request body: ${error.message}` : error.message;
    return { status: error.status, message, headers: {} };
  }
  return { status: 500, message: 'internal error', headers: {} };
}

/**
 * DPlayer's v3 danmaku API (DPlayer's src/js/api.js and danmaku.js), for a DPlayer configured with
 * `danmaku: { api: '<backend>/api/dplayer/', id: '<video id>', token: '<viewer token>' }`:
 * `GET v3/?id=&max=` answers `{code: 0, data: [[time, type, color, author, text], ...]}`, and
 * `POST v3/` takes `{id, author, time, text, color, type, token}` and answers `{code: 0, data: [...]}`.
 * DPlayer reads `msg` only from 2xx answers whose `code` is not 0, so errors answer HTTP 200 with
 * `{code: <HTTP status>, msg}`. Answers allow any origin: the token travels in the body, never in a cookie.
 */
function dplayerRoutes(
  postComment: (viewer: Viewer, body: unknown) => Promise<{ barrage: Barrage }>,
  history: (value: unknown) => Promise<{ barrages: Barrage[] }>,
  tokens: TokenSigner,
): express.Router {
  const router = express.Router();
  router.use((req, res, next) => {
    res.set({ 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type, authorization', 'access-control-allow-methods': 'GET, POST' });
    if (req.method === 'OPTIONS') res.status(204).end();
    else next();
  });
  router.use(express.json({ limit: '4kb', type: () => true }));
  router.get('/v3', async (req, res) => {
    let { barrages } = await history(req.query.id);
    const max = Number(req.query.max);
    // `max` keeps the newest comments, still in video-time order.
    if (Number.isInteger(max) && max > 0 && barrages.length > max) {
      const newest = new Set([...barrages].sort((a, b) => b.id - a.id).slice(0, max));
      barrages = barrages.filter((barrage) => newest.has(barrage));
    }
    res.json({ code: 0, data: barrages.map(toDplayer) });
  });
  router.post('/v3', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : bearer(req);
    if (!token) throw new HttpError(401, 'sign in first: DPlayer\'s danmaku.token (or Authorization: Bearer) is missing');
    const { barrage } = await postComment(tokens.verify(token), fromDplayer(body));
    res.json({ code: 0, data: toDplayer(barrage) });
  });
  router.use((req, res) => {
    res.json({ code: 404, msg: `not found: ${req.method} ${req.originalUrl}` });
  });
  router.use((error: Error & { status?: number }, _req: Request, res: Response, next: NextFunction) => {
    const answer = errorAnswer(error);
    // A server failure goes on to the app's handler, which reports it.
    if (answer.status >= 500) return next(error);
    res.set(answer.headers).json({ code: answer.status, msg: answer.message });
  });
  return router;
}

function authenticate(req: Request, tokens: TokenSigner): Viewer {
  const token = bearer(req);
  if (!token) throw new HttpError(401, 'sign in first: Authorization: Bearer <token> is missing');
  return tokens.verify(token);
}

function bearer(req: Request): string | null {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
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
