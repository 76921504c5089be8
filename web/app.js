// @ts-check
/** The barrage page: a video, its comments over it, a send box, and a list of videos to switch between. */
import { fetchHistory, getConfig, postBarrage, signIn } from './api.js';
import { DanmakuLayer } from './danmaku.js';
import { LiveChannel } from './live.js';

/** @typedef {import('./danmaku.js').Barrage} Barrage */

const VIDEOS = [
  { id: 100001, title: 'Aurora', blurb: 'Colour drifting across the night sky', colors: ['#0b1d51', '#7b2ff7', '#f107a3', '#ff8c42'] },
  { id: 100002, title: 'Ocean', blurb: 'Twenty seconds of deep blue', colors: ['#03045e', '#0077b6', '#00b4d8', '#90e0ef'] },
  { id: 100003, title: 'Forest', blurb: 'Green light through the leaves', colors: ['#081c15', '#2d6a4f', '#74c69d', '#d8f3dc'] },
];

const COLORS = ['#ffffff', '#fe0302', '#ff7204', '#ffd302', '#00cd00', '#00a2ff', '#9b5de5', '#f15bb5'];

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const video = /** @type {HTMLVideoElement} */ ($('video'));
const input = /** @type {HTMLInputElement} */ ($('msg'));
const form = /** @type {HTMLFormElement} */ ($('composer'));

const config = await getConfig();
let session = await signIn();
$('viewer').textContent = `uid ${session.uid}`;

const layer = new DanmakuLayer($('layer'), video, { isOwn: (item) => item.uid === session.uid });
/** @type {Barrage[]} the current video's comments, for the list beside the player */
let comments = [];
let current = VIDEOS[0];

const live = new LiveChannel(websocketUrl(), {
  onEvent: (item) => {
    layer.live(item);
    remember([item]);
  },
  onStatus: showStatus,
  // Comments posted while the connection was down only reach the history: fetch it again.
  onReconnect: () => void loadHistory(current.id),
});

renderVideoList();
renderPalette();
input.maxLength = config.max_length;
updateCounter();
select(VIDEOS.find((v) => String(v.id) === new URLSearchParams(location.search).get('v')) ?? VIDEOS[0]);

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void send();
});
input.addEventListener('input', updateCounter);
$('toggle').addEventListener('click', () => {
  const visible = $('toggle').getAttribute('aria-pressed') !== 'true';
  $('toggle').setAttribute('aria-pressed', String(visible));
  layer.setVisible(visible);
});

function websocketUrl() {
  const { url, port, path } = config.websocket;
  return url ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${port}${path}`;
}

/** Switches to another video: new source, new subscription, its history. */
function select(/** @type {typeof VIDEOS[number]} */ next) {
  current = next;
  comments = [];
  renderComments();
  layer.reset();
  live.watch(next.id);
  video.src = `media/${next.id}.webm`;
  void video.play().catch(() => undefined);
  $('title').textContent = next.title;
  $('blurb').textContent = next.blurb;
  document.title = `${next.title} · connmix barrage`;
  showInUrl(next.id);
  for (const el of document.querySelectorAll('.video-item')) el.classList.toggle('active', el.getAttribute('data-id') === String(next.id));
  void loadHistory(next.id);
}

async function loadHistory(/** @type {number} */ videoId) {
  try {
    const list = await fetchHistory(videoId);
    if (videoId !== current.id) return;
    layer.merge(list);
    remember(list);
  } catch (error) {
    notify(`Could not load comments: ${/** @type {Error} */ (error).message}`);
  }
}

async function send() {
  const msg = input.value.trim();
  if (!msg) return;
  const fields = new FormData(form);
  const comment = { video_id: current.id, msg, time: Math.round(video.currentTime * 1000) / 1000, color: String(fields.get('color')), mode: String(fields.get('mode')) };
  try {
    let barrage;
    try {
      barrage = await postBarrage(session.token, comment);
    } catch (error) {
      if (/** @type {any} */ (error).status !== 401) throw error;
      session = await signIn(true);
      barrage = await postBarrage(session.token, comment);
    }
    input.value = '';
    updateCounter();
    if (barrage.video_id === current.id) {
      layer.live(barrage);
      remember([barrage]);
    }
  } catch (error) {
    notify(/** @type {Error} */ (error).message);
  }
}

/** Adds comments to the list beside the player, once each, by video time. */
function remember(/** @type {Barrage[]} */ list) {
  const ids = new Set(comments.map((c) => c.id));
  const fresh = list.filter((c) => c.video_id === current.id && !ids.has(c.id));
  if (fresh.length === 0) return;
  comments = [...comments, ...fresh].sort((a, b) => a.time - b.time || a.id - b.id);
  renderComments();
}

function renderComments() {
  $('count').textContent = String(comments.length);
  const list = $('comments');
  list.replaceChildren(
    ...comments.map((c) => {
      const li = document.createElement('li');
      li.className = c.uid === session.uid ? 'own' : '';
      li.title = 'Jump to this moment';
      const time = document.createElement('time');
      time.textContent = clockText(c.time);
      const text = document.createElement('span');
      text.textContent = c.msg;
      const swatch = document.createElement('i');
      swatch.style.background = c.color;
      li.append(time, swatch, text);
      li.addEventListener('click', () => {
        video.currentTime = c.time;
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
      button.addEventListener('click', () => select(v));
      return button;
    }),
  );
}

function renderPalette() {
  $('palette').replaceChildren(
    ...COLORS.map((color, index) => {
      const label = document.createElement('label');
      label.title = color;
      const radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'color';
      radio.value = color;
      radio.checked = index === 0;
      const dot = document.createElement('span');
      dot.style.background = color;
      label.append(radio, dot);
      return label;
    }),
  );
}

function updateCounter() {
  $('counter').textContent = `${[...input.value].length}/${config.max_length}`;
}

function showStatus(/** @type {string} */ status, /** @type {number | undefined} */ retryMs) {
  const el = $('status');
  el.dataset.status = status;
  el.textContent = status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting…' : `Reconnecting in ${Math.ceil((retryMs ?? 0) / 1000)} s`;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let noticeTimer;
function notify(/** @type {string} */ message) {
  const el = $('notice');
  el.textContent = message;
  el.classList.add('visible');
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => el.classList.remove('visible'), 4000);
}

/** Keeps the video in the address, so a reload or a shared link opens the same one. */
function showInUrl(/** @type {number} */ id) {
  const url = new URL(location.href);
  url.searchParams.set('v', String(id));
  window.history.replaceState(null, '', url);
}

function clockText(/** @type {number} */ seconds) {
  const s = Math.floor(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
