// @ts-check
/**
 * The barrage page on ArtPlayer with artplayer-plugin-danmuku: the plugin draws the comments (lanes,
 * overlap, modes, pause and seek) and has the send box; this page feeds it the history in its own format
 * and the live comments from the engine as they arrive, posts what the viewer sends to the backend, and
 * keeps what the plugin has no place for: the comment list, the video switcher, the watching count.
 */
import Artplayer from './vendor/artplayer/artplayer.mjs';
import artplayerPluginDanmuku from './vendor/artplayer-plugin-danmuku/artplayer-plugin-danmuku.mjs';
import { fetchArtplayerHistory, getConfig, postBarrage, signIn } from './api.js';
import { LiveChannel } from './live.js';
import { $, VIDEOS, clockText, notify, showInUrl, showStatus, showWatching, videoFromUrl, websocketUrl } from './page.js';

/** @typedef {{ id: string, text: string, time?: number, mode: 0 | 1 | 2, color: string, border?: boolean }} Danmu */

const MODES = /** @type {const} */ (['scroll', 'top', 'bottom']);
const COLORS = ['#ffffff', '#fe0302', '#ff7204', '#ffd302', '#00cd00', '#00a2ff', '#9b5de5', '#f15bb5'];

const config = await getConfig();
let session = await signIn();
$('viewer').textContent = `uid ${session.uid}`;

let current = videoFromUrl();
/** @type {Array<Danmu & { time: number }>} the current video's comments, for the list beside the player */
let comments = [];
/** Ids of comments the player already has, so one arriving twice (posted here, echoed live) shows once. */
const known = new Set();
/** Ids this viewer posted in this page. */
const own = new Set();

const art = new Artplayer({
  container: '#player',
  url: mediaUrl(current.id),
  autoplay: true,
  muted: true,
  loop: true,
  playsInline: true,
  autoSize: false,
  setting: true,
  fullscreen: true,
  fullscreenWeb: true,
  theme: '#fb7299',
  lang: 'en',
  moreVideoAttr: { preload: 'auto' },
  plugins: [
    artplayerPluginDanmuku({
      // The history, in the plugin's own format, of whichever video is current when it (re)loads.
      danmuku: () => loadHistory(current.id),
      speed: 7,
      fontSize: 24,
      antiOverlap: true,
      maxLength: config.max_length,
      lockTime: 1,
      theme: 'dark',
      COLOR: COLORS,
      beforeEmit: (/** @type {Danmu} */ danmu) => send(danmu),
    }),
  ],
});
const danmuku = art.plugins.artplayerPluginDanmuku;
// The plugin's send box speaks Chinese only; this page is in English.
const emitterInput = /** @type {HTMLInputElement | null} */ (document.querySelector('.apd-input'));
if (emitterInput) emitterInput.placeholder = 'Say something…';
// Where each comment showed up, in video seconds, for anyone checking the timing (the tests do).
art.on('artplayerPluginDanmuku:visible', (/** @type {Danmu & { $ref?: HTMLElement }} */ danmu) => {
  if (danmu.$ref) danmu.$ref.dataset.shownAt = art.currentTime.toFixed(2);
});
/** @type {any} */ (window).art = art;

// A load of the history empties the plugin's queue when the history comes, so a live comment emitted while
// one is under way would vanish: those wait here until no load is pending. The plugin's constructor started
// the first one; a switch counts from its start, so a comment is never timed by the old source's playhead.
let loads = 1;
/** @type {Danmu[]} */
const held = [];
const loaded = () => {
  loads -= 1;
  if (loads === 0) for (const danmu of held.splice(0)) showLive(danmu);
};
art.on('artplayerPluginDanmuku:loaded', loaded);
art.on('artplayerPluginDanmuku:error', loaded);

/** Longest wait for a new source before its history loads anyway: a stalled video must not hold the comments. */
const SOURCE_WAIT_MS = 5000;

/** Loads the current video's history again once `ready` settles (a new source, say). */
function reloadComments(/** @type {Promise<unknown>} */ ready = Promise.resolve()) {
  loads += 1;
  const waited = new Promise((resolve) => setTimeout(resolve, SOURCE_WAIT_MS));
  // Either outcome of load() fires one of the events above.
  void Promise.race([ready.catch(() => undefined), waited]).then(() => danmuku.load()).catch(() => undefined);
}

/** Shows a live comment now, wherever the playhead is, unless the player has it already. */
function showLive(/** @type {Danmu} */ danmu) {
  if (known.has(danmu.id)) return;
  known.add(danmu.id);
  // No time: the plugin shows it now.
  danmuku.emit(danmu);
}

const live = new LiveChannel(websocketUrl(config), {
  onEvent: (barrage) => {
    const mine = barrage.uid === session.uid;
    // The plugin's border marks one's own comments; the echo may come before the post's own answer.
    const danmu = { id: String(barrage.id), text: barrage.msg, mode: MODES.indexOf(barrage.mode), color: barrage.color, border: mine };
    if (mine) own.add(danmu.id);
    remember([{ ...danmu, time: barrage.time }]);
    if (loads > 0) held.push(/** @type {Danmu} */ (danmu));
    else showLive(/** @type {Danmu} */ (danmu));
  },
  onWatching: showWatching,
  onStatus: showStatus,
  // Comments posted while the connection was down only reach the history: load it again.
  onReconnect: () => reloadComments(),
});

renderVideoList();
select(current, true);

/** Switches to another video: new source, new subscription, its history. */
function select(/** @type {typeof VIDEOS[number]} */ next, first = false) {
  current = next;
  comments = [];
  known.clear();
  held.length = 0;
  renderComments();
  live.watch(next.id);
  if (!first) reloadComments(art.switchUrl(mediaUrl(next.id)).then(() => art.play()));
  $('title').textContent = next.title;
  $('blurb').textContent = next.blurb;
  document.title = `${next.title} · connmix barrage`;
  showInUrl(next.id);
  for (const el of document.querySelectorAll('.video-item')) el.classList.toggle('active', el.getAttribute('data-id') === String(next.id));
}

async function loadHistory(/** @type {number} */ videoId) {
  try {
    const list = await fetchArtplayerHistory(videoId);
    if (videoId !== current.id) return [];
    for (const danmu of list) known.add(danmu.id);
    remember(list);
    return list;
  } catch (error) {
    notify(`Could not load comments: ${/** @type {Error} */ (error).message}`);
    return [];
  }
}

/**
 * The plugin's send box calls this before showing the viewer's comment: it goes to the backend, which
 * stores and publishes it. True lets the plugin show it (with a border: it is the viewer's own).
 */
async function send(/** @type {Danmu} */ danmu) {
  const comment = {
    video_id: current.id,
    msg: danmu.text,
    time: Math.round((danmu.time ?? art.currentTime) * 1000) / 1000,
    color: danmu.color.toLowerCase(),
    mode: MODES[danmu.mode] ?? 'scroll',
  };
  try {
    let barrage;
    try {
      barrage = await postBarrage(session.token, comment);
    } catch (error) {
      if (/** @type {any} */ (error).status !== 401) throw error;
      session = await signIn(true);
      barrage = await postBarrage(session.token, comment);
    }
    const id = String(barrage.id);
    own.add(id);
    remember([{ id, text: barrage.msg, time: barrage.time, mode: danmu.mode, color: barrage.color }]);
    // The engine's echo can come before this answer; then the comment is on screen already.
    if (known.has(id) || barrage.video_id !== current.id) return false;
    known.add(id);
    danmu.id = id;
    return true;
  } catch (error) {
    notify(/** @type {Error} */ (error).message);
    return false;
  }
}

/** Adds comments to the list beside the player, once each, by video time. */
function remember(/** @type {Array<Danmu & { time: number }>} */ list) {
  const ids = new Set(comments.map((c) => c.id));
  const fresh = list.filter((c) => !ids.has(c.id));
  if (fresh.length === 0) return;
  comments = [...comments, ...fresh].sort((a, b) => a.time - b.time || Number(a.id) - Number(b.id));
  renderComments();
}

function renderComments() {
  $('count').textContent = String(comments.length);
  $('comments').replaceChildren(
    ...comments.map((c) => {
      const li = document.createElement('li');
      li.className = own.has(c.id) ? 'own' : '';
      li.title = 'Jump to this moment';
      const time = document.createElement('time');
      time.textContent = clockText(c.time);
      const swatch = document.createElement('i');
      swatch.style.background = c.color;
      const text = document.createElement('span');
      text.textContent = c.text;
      li.append(time, swatch, text);
      li.addEventListener('click', () => {
        art.seek = Math.max(0, c.time - 0.5);
      });
      return li;
    }),
  );
}

function renderVideoList() {
  $('videos').replaceChildren(
    ...VIDEOS.map((v) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'video-item';
      button.dataset.id = String(v.id);
      const thumb = document.createElement('span');
      thumb.className = 'thumb';
      thumb.style.background = `linear-gradient(100deg, ${v.colors.join(', ')})`;
      const title = document.createElement('strong');
      title.textContent = v.title;
      const meta = document.createElement('small');
      meta.textContent = `video ${v.id}`;
      const text = document.createElement('span');
      text.append(title, meta);
      button.append(thumb, text);
      button.addEventListener('click', () => {
        if (v.id !== current.id) select(v);
      });
      return button;
    }),
  );
}

function mediaUrl(/** @type {number} */ id) {
  return `media/${id}.webm`;
}
