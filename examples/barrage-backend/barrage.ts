/** How a comment moves: across the screen, or fixed at the top or bottom. */
export type Mode = 'scroll' | 'top' | 'bottom';

export const MODES: readonly Mode[] = ['scroll', 'top', 'bottom'];

/** A stored comment, as the page receives it in `{"event":"@video","data":...}` and in the history. */
export interface Barrage {
  uid: number;
  video_id: number;
  msg: string;
  /** Seconds into the video where the viewer posted it. */
  time: number;
  /** `#rrggbb` */
  color: string;
  mode: Mode;
  id: number;
  /** When it was posted, ms since the epoch. */
  ts: number;
}

/** A comment as posted, before the store gives it an id and a timestamp. */
export type NewBarrage = Omit<Barrage, 'id' | 'ts'>;

/** A request the API refuses with HTTP 400. */
export class InputError extends Error {}

/** The longest video time accepted, in seconds. */
const MAX_TIME = 24 * 3600;

/** A video id: a positive integer, given as a JSON number or a decimal string. */
export function parseVideoId(value: unknown): number {
  const id = typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) throw new InputError('video_id must be a positive integer');
  return id;
}

/** Checks a posted `{video_id, msg, time, color?, mode?}` and gives the comment it describes. */
export function parseBarrage(body: unknown, uid: number, maxLength: number): NewBarrage {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InputError('the body must be a JSON object');
  const { video_id, msg, time, color, mode } = body as Record<string, unknown>;
  if (typeof msg !== 'string') throw new InputError('msg must be a string');
  // Line breaks and other control characters would break the one-line layout of a comment.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this strips
  const text = msg.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  if (text.length === 0) throw new InputError('msg is empty');
  const length = [...text].length;
  if (length > maxLength) throw new InputError(`msg is too long: ${length} characters, at most ${maxLength}`);
  if (typeof time !== 'number' || !Number.isFinite(time) || time < 0 || time > MAX_TIME) {
    throw new InputError('time must be the video time in seconds (a number from 0)');
  }
  if (color !== undefined && (typeof color !== 'string' || !/^#[0-9a-f]{6}$/i.test(color))) {
    throw new InputError('color must look like #rrggbb');
  }
  if (mode !== undefined && !MODES.includes(mode as Mode)) throw new InputError(`mode must be one of ${MODES.join(', ')}`);
  return {
    uid,
    video_id: parseVideoId(video_id),
    msg: text,
    time: Math.round(time * 1000) / 1000,
    color: ((color as string | undefined) ?? '#ffffff').toLowerCase(),
    mode: (mode as Mode | undefined) ?? 'scroll',
  };
}

/** Orders comments by video time, then by posting order. */
export function byVideoTime(a: Barrage, b: Barrage): number {
  return a.time - b.time || a.id - b.id;
}
