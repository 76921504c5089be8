// @ts-check
/** What both player pages share: the videos, the header's status and watching count, notices. */

export const VIDEOS = [
  { id: 100001, title: 'Aurora', blurb: 'Colour drifting across the night sky', colors: ['#0b1d51', '#7b2ff7', '#f107a3', '#ff8c42'] },
  { id: 100002, title: 'Ocean', blurb: 'Twenty seconds of deep blue', colors: ['#03045e', '#0077b6', '#00b4d8', '#90e0ef'] },
  { id: 100003, title: 'Forest', blurb: 'Green light through the leaves', colors: ['#081c15', '#2d6a4f', '#74c69d', '#d8f3dc'] },
];

/** @typedef {typeof VIDEOS[number]} Video */

export const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** The video named by `?v=` in the address, else the first. */
export function videoFromUrl() {
  return VIDEOS.find((v) => String(v.id) === new URLSearchParams(location.search).get('v')) ?? VIDEOS[0];
}

/** Keeps the video in the address (a reload or a shared link opens the same one) and in the other player's link. */
export function showInUrl(/** @type {number} */ id) {
  const url = new URL(location.href);
  url.searchParams.set('v', String(id));
  window.history.replaceState(null, '', url);
  const other = /** @type {HTMLAnchorElement | null} */ (document.getElementById('other-player'));
  if (other) other.search = `?v=${id}`;
}

/** The engine's WebSocket URL from the backend's config. */
export function websocketUrl(/** @type {{ websocket: { port: number, path: string, url?: string } }} */ config) {
  const { url, port, path } = config.websocket;
  return url ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${port}${path}`;
}

export function showStatus(/** @type {string} */ status, /** @type {number | undefined} */ retryMs) {
  const el = $('status');
  el.dataset.status = status;
  el.textContent = status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting…' : `Reconnecting in ${Math.ceil((retryMs ?? 0) / 1000)} s`;
}

/** "N watching", from the backend's `@watching` events. */
export function showWatching(/** @type {number} */ count) {
  const el = $('watching');
  el.hidden = false;
  el.dataset.count = String(count);
  el.textContent = `${count} watching`;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let noticeTimer;
export function notify(/** @type {string} */ message) {
  const el = $('notice');
  el.textContent = message;
  el.classList.add('visible');
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => el.classList.remove('visible'), 4000);
}

export function clockText(/** @type {number} */ seconds) {
  const s = Math.floor(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
