// @ts-check
/** The barrage backend's HTTP API, as the page uses it. */

const TOKEN_KEY = 'barrage.session';

/** @returns {Promise<{ websocket: { port: number, path: string, url?: string }, max_length: number }>} */
export async function getConfig() {
  return json(await fetch('api/config'));
}

/**
 * The viewer's session: the stored token while it is valid, else a new one from the demo sign-in.
 * @returns {Promise<{ token: string, uid: number, expires_at: number }>}
 */
export async function signIn(fresh = false) {
  const stored = fresh ? null : JSON.parse(localStorage.getItem(TOKEN_KEY) ?? 'null');
  if (stored && stored.expires_at * 1000 > Date.now() + 60_000) return stored;
  const session = await json(await fetch('api/token', { method: 'POST' }));
  localStorage.setItem(TOKEN_KEY, JSON.stringify(session));
  return session;
}

/**
 * Every comment of a video in artplayer-plugin-danmuku's format, by video time.
 * @returns {Promise<Array<{ id: string, text: string, time: number, mode: 0 | 1 | 2, color: string }>>}
 */
export async function fetchArtplayerHistory(/** @type {number} */ videoId) {
  return json(await fetch(`api/artplayer?video_id=${videoId}`));
}

/** Every comment of a video, by video time. */
export async function fetchHistory(/** @type {number} */ videoId) {
  return (await json(await fetch(`api/barrage?video_id=${videoId}`))).barrages;
}

/**
 * Posts a comment; answers the stored comment, or throws an Error with the backend's message.
 * @param {string} token
 * @param {{ video_id: number, msg: string, time: number, color: string, mode: string }} comment
 */
export async function postBarrage(token, comment) {
  const response = await fetch('api/barrage', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(comment),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error ?? `HTTP ${response.status}`), { status: response.status });
  return body.barrage;
}

async function json(/** @type {Response} */ response) {
  if (!response.ok) throw new Error(`${response.url}: HTTP ${response.status}`);
  return response.json();
}
