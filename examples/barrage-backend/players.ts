import { InputError, type Barrage, type Mode } from './barrage';

// The comment formats of the two players the page and the DPlayer API speak. Modes map one to one:
// scroll, top, bottom are ArtPlayer's 0, 1, 2 and DPlayer's types 0 ("right"), 1, 2.

const MODE_NUMBERS: Record<Mode, 0 | 1 | 2> = { scroll: 0, top: 1, bottom: 2 };
const MODES_BY_NUMBER: readonly Mode[] = ['scroll', 'top', 'bottom'];

/** A comment as `artplayer-plugin-danmuku` takes it (its `Danmu`): `id` lets the page skip one it already shows. */
export interface ArtplayerDanmu {
  id: string;
  text: string;
  /** Video seconds. */
  time: number;
  mode: 0 | 1 | 2;
  color: string;
}

export function toArtplayer(barrage: Barrage): ArtplayerDanmu {
  return { id: String(barrage.id), text: barrage.msg, time: barrage.time, mode: MODE_NUMBERS[barrage.mode], color: barrage.color };
}

/** One history entry of DPlayer's v3 API: `[time, type, color as a number, author, text]`. */
export type DplayerDanmaku = [time: number, type: 0 | 1 | 2, color: number, author: string, text: string];

/**
 * DPlayer draws history entries with innerHTML (src/js/danmaku.js), so their text goes out HTML-escaped;
 * otherwise any viewer's comment could run script in every other viewer's page.
 */
export function toDplayer(barrage: Barrage): DplayerDanmaku {
  return [barrage.time, MODE_NUMBERS[barrage.mode], Number.parseInt(barrage.color.slice(1), 16), String(barrage.uid), escapeHtml(barrage.msg)];
}

/** A DPlayer `POST v3/` body `{id, author, time, text, color, type, token}` as the fields `parseBarrage` checks. */
export function fromDplayer(body: unknown): { video_id: unknown; msg: unknown; time: unknown; color: unknown; mode: unknown } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InputError('the body must be a JSON object');
  const { id, text, time, color, type } = body as Record<string, unknown>;
  if (color !== undefined && !(Number.isInteger(color) && (color as number) >= 0 && (color as number) <= 0xffffff)) {
    throw new InputError('color must be a number from 0 to 16777215 (0xrrggbb)');
  }
  if (type !== undefined && !(type === 0 || type === 1 || type === 2)) throw new InputError('type must be 0 (right), 1 (top) or 2 (bottom)');
  return {
    video_id: id,
    msg: text,
    // DPlayer sends the video time as a number; older builds sent it as a string.
    time: typeof time === 'string' && time.trim() !== '' ? Number(time) : time,
    color: color === undefined ? undefined : `#${(color as number).toString(16).padStart(6, '0')}`,
    mode: type === undefined ? undefined : MODES_BY_NUMBER[type as number],
  };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'/]/g, (c) => `&#${c.charCodeAt(0)};`);
}
