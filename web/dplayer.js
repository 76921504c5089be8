// @ts-check
/**
 * The barrage page on an unchanged DPlayer: DPlayer itself loads the history from and posts comments to
 * the backend's DPlayer API (`api/dplayer/v3/`); this page adds the live comments from the engine, drawn
 * with DPlayer's own `danmaku.draw`, and the watching count.
 */
import { getConfig, signIn } from './api.js';
import { LiveChannel } from './live.js';
import { $, showInUrl, showStatus, showWatching, videoFromUrl, websocketUrl } from './page.js';

/** @type {any} DPlayer.min.js is a UMD script that sets the global `DPlayer`. */
const DPlayer = /** @type {any} */ (window).DPlayer;

const config = await getConfig();
const session = await signIn();
$('viewer').textContent = `uid ${session.uid}`;
const video = videoFromUrl();
$('title').textContent = `${video.title} · DPlayer`;
document.title = `${video.title} · connmix barrage · DPlayer`;
showInUrl(video.id);

const dp = new DPlayer({
  container: $('player'),
  theme: '#fb7299',
  lang: 'en',
  loop: true,
  preload: 'auto',
  video: { url: `media/${video.id}.webm` },
  danmaku: { id: String(video.id), api: 'api/dplayer/', token: session.token, user: String(session.uid), bottom: '15%' },
});
// Browsers let only muted videos start by themselves.
dp.video.muted = true;
dp.play();
/** @type {any} */ (window).dp = dp;

/** Texts this viewer sent through DPlayer: DPlayer draws them itself, so their live echo is skipped once. */
const sent = /** @type {string[]} */ ([]);
dp.on('danmaku_send', (/** @type {{ text: string }} */ data) => sent.push(data.text.trim()));

const live = new LiveChannel(websocketUrl(config), {
  onEvent: (barrage) => {
    const index = barrage.uid === session.uid ? sent.indexOf(barrage.msg) : -1;
    if (index >= 0) {
      sent.splice(index, 1);
      return;
    }
    // DPlayer's draw takes HTML: the text is escaped first.
    dp.danmaku.draw({ text: escapeHtml(barrage.msg), color: Number.parseInt(barrage.color.slice(1), 16), type: ['scroll', 'top', 'bottom'].indexOf(barrage.mode) });
  },
  onWatching: showWatching,
  onStatus: showStatus,
  // Comments posted while the connection was down only reach the history: DPlayer loads it again.
  onReconnect: () => dp.danmaku.reload(dp.danmaku.options.api),
});
live.watch(video.id);

function escapeHtml(/** @type {string} */ text) {
  return text.replace(/[&<>"'/]/g, (c) => `&#${c.charCodeAt(0)};`);
}
