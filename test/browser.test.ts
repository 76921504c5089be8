import { test, before, after, afterEach } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ConnmixClient } from '../src/client';
import { loadConfig } from '../src/config';
import { Engine } from '../src/engine';
import { startBarrageServer, type BarrageServer } from '../examples/barrage-backend/server';
import { MemoryStore } from '../examples/barrage-backend/store';
import { TokenSigner } from '../examples/barrage-backend/token';
import { ROOT, startNode, type TestNode, waitFor } from './support/helpers';
import { memoryLogger } from './support/lua-harness';

// The barrage product in a real browser: Debian's chromium, headless, driven by playwright-core, over a
// real engine and the example backend on free ports. The ArtPlayer page (artplayer-plugin-danmuku) and
// the DPlayer page (an unchanged DPlayer on the backend's DPlayer API) talk to each other through the
// engine. Every wait is bounded generously: outcomes are checked, never how fast they came.

// Globals of the page, for the functions that run in the browser (tests compile without the DOM lib).
/** The parts of a page element these functions touch (video, inputs, comments). */
interface PageElement {
  textContent: string | null;
  value: string;
  currentTime: number;
  paused: boolean;
  click(): void;
  getBoundingClientRect(): { left: number; x: number };
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): Iterable<PageElement> };
declare const location: { href: string };
declare const window: { shownAt?: Record<string, number>; historyLoaded?: boolean; art: { once(event: string, callback: () => void): void } };
declare class MutationObserver {
  constructor(callback: (records: unknown, observer: MutationObserver) => void);
  observe(target: unknown, options: { childList: boolean; subtree: boolean; attributes?: boolean }): void;
  disconnect(): void;
}

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Playwright gives each launch a fresh --user-data-dir of its own (and refuses one in args).
// Several pages play at once, as several viewers' screens would: none may be throttled as a background tab.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows', '--autoplay-policy=no-user-gesture-required'];
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
// Without a browser these tests fail rather than skip: a green run must mean the page was really tested.
if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)`);

/** Generous bound for anything the pages should do "soon" on a busy machine. */
const SOON = 20_000;

let node: TestNode;
let restarted: Engine | null = null;
let backend: BarrageServer;
let browser: Browser;
let tokens: TokenSigner;

before(async () => {
  node = await startNode();
  const wsUrl = new URL(node.wsUrl);
  tokens = new TokenSigner('browser-test-secret-123');
  backend = await startBarrageServer({
    port: 0,
    publisher: new ConnmixClient({ url: node.apiUrl, timeoutMs: 2000 }),
    store: new MemoryStore(),
    tokens,
    websocket: { port: Number(wsUrl.port), path: wsUrl.pathname },
    rateLimit: { count: 50, windowMs: 10_000 },
    watchingIntervalMs: 500,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 30_000 });
});

/** Every page a test opened, closed after it whatever happened, so no viewer outlives its test. */
const opened: Page[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((page) => page.context().close().catch(() => undefined)));
});

after(async () => {
  await browser?.close();
  await backend?.close();
  await (restarted ?? node)?.stop();
});

type Player = 'artplayer' | 'dplayer';

/** A viewer of its own (own cookies and storage) on video `videoId` in `player`, live and playing. */
async function openViewer(videoId: number, player: Player = 'artplayer'): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  opened.push(page);
  page.setDefaultTimeout(SOON);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${backend.url}/${player === 'dplayer' ? 'dplayer.html' : ''}?v=${videoId}`);
  await waitReady(page);
  assert.deepEqual(errors, []);
  return page;
}

async function waitReady(page: Page): Promise<void> {
  await page.waitForSelector('#status[data-status="live"]');
  await page.waitForFunction(() => {
    const video = document.querySelector('video');
    return video !== null && !video.paused && video.currentTime > 0.2;
  });
}

/**
 * Comments on screen in either player. ArtPlayer's plugin keeps finished comments' elements for reuse
 * (hidden, text kept): only those in state "emit" are showing.
 */
const ON_SCREEN = '.art-danmuku > div[data-state="emit"], .dplayer-danmaku-item';

/** The comment with this text on `page`'s player, whichever player it is. */
function comment(page: Page, text: string) {
  return page.locator(ON_SCREEN, { hasText: text });
}

/** Records, in the page, the video time at which a comment with `text` enters the player. */
async function recordShownAt(page: Page, text: string): Promise<void> {
  await page.evaluate(([wanted, selector]) => {
    window.shownAt ??= {};
    const shown = window.shownAt;
    new MutationObserver((_records, observer) => {
      if ([...document.querySelectorAll(selector)].some((el) => el.textContent === wanted)) {
        shown[wanted] = document.querySelector('video')!.currentTime;
        observer.disconnect();
      }
    }).observe(document.querySelector('.art-video-player, .dplayer'), { childList: true, subtree: true, attributes: true });
  }, [text, ON_SCREEN] as const);
}

/** Types `text` into the player's own send box and sends it, as a viewer would. */
async function sendFromPlayer(page: Page, text: string): Promise<void> {
  await page.evaluate((value) => {
    const art = document.querySelector('.apd-input');
    const input = art ?? document.querySelector('.dplayer-comment-input');
    input!.value = value;
    document.querySelector(art ? '.apd-send' : '.dplayer-send-icon')!.click();
  }, text);
}

/** Posts a comment through the backend as a viewer of its own. */
async function post(body: { video_id: number; msg: string; time: number; color?: string; mode?: string }, uid = 5000): Promise<void> {
  const response = await fetch(`${backend.url}/api/barrage`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.issue(uid).token}` },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 201, await response.text());
}

async function history(videoId: number): Promise<Array<{ msg: string; time: number; uid: number; color: string; mode: string }>> {
  return ((await (await fetch(`${backend.url}/api/barrage?video_id=${videoId}`)).json()) as { barrages: Array<{ msg: string; time: number; uid: number; color: string; mode: string }> }).barrages;
}

/** Waits until the engine has exactly `viewers` subscribers on `video:<id>`. */
async function subscribers(videoId: number, viewers: number): Promise<void> {
  const probe = new ConnmixClient({ url: node.apiUrl, timeoutMs: 2000 });
  await waitFor(`${viewers} subscriber(s) on video:${videoId}`, async () => (await probe.count(`video:${videoId}`)).subscribers === viewers, SOON);
}

/** Resolves to true if no comment with `text` shows up on `page` within `ms`. */
async function staysAway(page: Page, text: string, ms: number): Promise<boolean> {
  return comment(page, text)
    .waitFor({ state: 'attached', timeout: ms })
    .then(
      () => false,
      () => true,
    );
}

const FROM_ART = 'hello from ArtPlayer';
const FROM_DPLAYER = 'hello from DPlayer';
let artSentAt = 0;
let dplayerSentAt = 0;

test('a comment sent in ArtPlayer flies in DPlayer and in another ArtPlayer, and back; not on another video', async () => {
  const [sender, watcher, dplayer, elsewhere] = [
    await openViewer(100001), await openViewer(100001), await openViewer(100001, 'dplayer'), await openViewer(100002),
  ];
  await sender.evaluate(() => {
    document.querySelector('video')!.currentTime = 4;
  });
  await sender.waitForFunction(() => document.querySelector('video')!.currentTime >= 4);
  await sendFromPlayer(sender, FROM_ART);

  // On the other ArtPlayer page it enters from the right, over the video, and moves left.
  const box = (await watcher.locator('video').boundingBox())!;
  await watcher.waitForFunction(
    ([text, right, selector]) => [...document.querySelectorAll(selector)].some((el) => el.textContent === text && el.getBoundingClientRect().left < right),
    [FROM_ART, box.x + box.width - 4, ON_SCREEN] as const,
  );
  const first = (await comment(watcher, FROM_ART).boundingBox())!;
  await watcher.waitForFunction(([text, x, selector]) => {
    const el = [...document.querySelectorAll(selector)].find((candidate) => candidate.textContent === text);
    return el !== undefined && el.getBoundingClientRect().x < x - 10;
  }, [FROM_ART, first.x, ON_SCREEN] as const);
  assert.ok(first.y >= box.y && first.y + first.height <= box.y + box.height, 'it is over the video');
  // In DPlayer, drawn by DPlayer itself.
  await comment(dplayer, FROM_ART).waitFor({ state: 'attached' });
  assert.match((await comment(dplayer, FROM_ART).getAttribute('class')) ?? '', /dplayer-danmaku-right/);
  // On the sender's own page once, with the plugin's border for one's own comments.
  await comment(sender, FROM_ART).waitFor({ state: 'attached' });
  assert.notEqual(await comment(sender, FROM_ART).evaluate((el) => (el as { style: { border: string } }).style.border), '');
  assert.equal(await sender.locator('#comments li.own', { hasText: FROM_ART }).count(), 1, 'listed beside the player as one\'s own');
  assert.equal(await staysAway(elsewhere, FROM_ART, 1500), true, 'a viewer of another video does not get it');
  const stored = (await history(100001)).find((item) => item.msg === FROM_ART)!;
  artSentAt = stored.time;
  // Between the time it was sent from (4 s) and the sender's video time now (unless the 20 s video has
  // looped since): a busy machine may take a while to type and click, so no fixed bound.
  const senderNow = await sender.evaluate(() => document.querySelector('video')!.currentTime);
  assert.ok(artSentAt >= 4 && (artSentAt <= senderNow || senderNow < 4), `stored at the sender's video time, got ${artSentAt} (sender now at ${senderNow})`);
  assert.equal(await comment(sender, FROM_ART).count(), 1, 'its echo from the engine is not shown twice');

  // Back: DPlayer's own send box posts to the DPlayer API; the ArtPlayer pages get it live.
  const posted = dplayer.waitForResponse((response) => response.url().includes('/api/dplayer/v3') && response.request().method() === 'POST');
  await sendFromPlayer(dplayer, FROM_DPLAYER);
  const answer = await posted;
  const request = answer.request().postDataJSON() as Record<string, unknown>;
  assert.deepEqual(Object.keys(request).sort(), ['author', 'color', 'id', 'text', 'time', 'token', 'type']);
  assert.equal(request.id, '100001');
  const reply = await answer.json();
  assert.equal(reply.code, 0);
  assert.equal(reply.data[4], FROM_DPLAYER);
  for (const page of [sender, watcher]) await comment(page, FROM_DPLAYER).waitFor({ state: 'attached' });
  await comment(dplayer, FROM_DPLAYER).waitFor({ state: 'attached' });
  assert.equal(await comment(dplayer, FROM_DPLAYER).count(), 1, 'DPlayer draws its own comment once');
  dplayerSentAt = (await history(100001)).find((item) => item.msg === FROM_DPLAYER)!.time;
  assert.ok(dplayerSentAt > 0);

  // A busier moment for the screenshot: colours, top and bottom comments from other viewers.
  const crowd: Array<[string, string, string]> = [
    ['what a view', '#ffd302', 'scroll'], ['Welcome to the live room', '#ffffff', 'top'], ['so smooth', '#00a2ff', 'scroll'],
    ['2333333', '#ff7204', 'scroll'], ['colours!!!', '#f15bb5', 'scroll'], ['danmaku over connmix', '#00cd00', 'scroll'],
    ['Sent from the backend SDK', '#9b5de5', 'bottom'], ['hi everyone', '#ffffff', 'scroll'], ['love this part', '#fe0302', 'scroll'],
  ];
  for (const [index, [msg, color, mode]] of crowd.entries()) {
    await post({ video_id: 100001, msg, time: 10 + index, color, mode }, 6000 + index);
    await watcher.waitForTimeout(150);
  }
  await comment(watcher, 'love this part').waitFor({ state: 'attached' });
  await comment(dplayer, 'love this part').waitFor({ state: 'attached' });
  // Modes and colours as sent, in both players.
  assert.equal(await comment(watcher, 'Welcome to the live room').getAttribute('data-mode'), '1');
  assert.equal(await comment(watcher, 'Sent from the backend SDK').getAttribute('data-mode'), '2');
  assert.equal(await comment(watcher, 'so smooth').evaluate((el) => (el as { style: { color: string } }).style.color), 'rgb(0, 162, 255)');
  assert.match((await comment(dplayer, 'Welcome to the live room').getAttribute('class')) ?? '', /dplayer-danmaku-top/);
  assert.match((await comment(dplayer, 'Sent from the backend SDK').getAttribute('class')) ?? '', /dplayer-danmaku-bottom/);
  await watcher.hover('.art-video-player');
  await watcher.waitForTimeout(300);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await watcher.screenshot({ path: path.join(ARTIFACTS, 'barrage.png') });
  await dplayer.screenshot({ path: path.join(ARTIFACTS, 'barrage-dplayer.png') });
  assert.ok(fs.statSync(path.join(ARTIFACTS, 'barrage.png')).size > 10_000, 'the screenshot was saved');
  await Promise.all([sender, watcher, dplayer, elsewhere].map((page) => page.context().close()));
});

test('a reload replays the history at each comment\'s video time, in both players', async () => {
  assert.ok(artSentAt > 0 && dplayerSentAt > 0, 'needs the comments of the first test');
  for (const player of ['artplayer', 'dplayer'] as const) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    const page = await context.newPage();
    opened.push(page);
    page.setDefaultTimeout(SOON);
    // DPlayer's own history request, and the answer it expects.
    const historyAnswer = player === 'dplayer'
      ? page.waitForResponse((response) => response.url().includes('/api/dplayer/v3/?id=100001') && response.request().method() === 'GET')
      : null;
    await page.goto(`${backend.url}/${player === 'dplayer' ? 'dplayer.html' : ''}?v=100001`);
    await page.waitForSelector('.art-video-player, .dplayer');
    for (const text of [FROM_ART, FROM_DPLAYER]) await recordShownAt(page, text);
    if (historyAnswer) {
      const body = await (await historyAnswer).json();
      assert.equal(body.code, 0);
      const entry = body.data.find((item: unknown[]) => item[4] === FROM_ART);
      assert.ok(entry, 'the ArtPlayer comment is in DPlayer\'s history');
      assert.deepEqual([entry[0], entry[1], entry[2]], [artSentAt, 0, 0xffffff]);
    }
    await waitReady(page);
    if (player === 'artplayer') assert.equal(await page.locator('#comments li', { hasText: FROM_ART }).count(), 1, 'listed beside the player');
    for (const [text, time] of [[FROM_ART, artSentAt], [FROM_DPLAYER, dplayerSentAt]] as const) {
      await page.waitForFunction((wanted) => window.shownAt?.[wanted] !== undefined, text, { timeout: 60_000 });
      const shownAt = await page.evaluate((wanted) => window.shownAt![wanted], text);
      assert.ok(shownAt >= time - 0.6 && shownAt <= time + 1.5, `${player}: "${text}" shown at ${shownAt} s of the video, posted at ${time} s`);
    }
    await context.close();
  }
});

test('"N watching" counts the viewers of the video in both players: 1, then 2, then 1 again', async () => {
  const first = await openViewer(100003);
  await first.waitForSelector('#watching[data-count="1"]');
  assert.equal(await first.textContent('#watching'), '1 watching');
  const second = await openViewer(100003, 'dplayer');
  await first.waitForSelector('#watching[data-count="2"]');
  await second.waitForSelector('#watching[data-count="2"]');
  await second.context().close();
  await first.waitForSelector('#watching[data-count="1"]');
  await first.context().close();
});

test('a live comment that comes while the page reloads its history is not lost', async () => {
  const page = await openViewer(100001);
  // The history of the next video is fetched at once but handed to the page only after a live comment
  // has come: the plugin empties its queue when a history arrives, which used to drop that comment.
  let fetched!: () => void;
  const historyFetched = new Promise<void>((resolve) => (fetched = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  await page.route((url) => url.pathname.endsWith('/api/artplayer') && url.searchParams.get('video_id') === '100002', async (route) => {
    const response = await route.fetch();
    fetched();
    await released;
    await route.fulfill({ response });
  });
  await page.click('.video-item[data-id="100002"]');
  await historyFetched;
  await subscribers(100002, 1);
  await post({ video_id: 100002, msg: 'during the reload', time: 1 });
  await page.locator('#comments li', { hasText: 'during the reload' }).waitFor({ state: 'attached' });
  await page.evaluate(() => {
    window.historyLoaded = false;
    window.art.once('artplayerPluginDanmuku:loaded', () => (window.historyLoaded = true));
  });
  release();
  await page.waitForFunction(() => window.historyLoaded);
  await comment(page, 'during the reload').waitFor({ state: 'attached' });
});

test('switching videos moves the subscription; the page resubscribes after the engine restarts', async () => {
  const page = await openViewer(100002);
  await page.click('.video-item[data-id="100003"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('v') === '100003');
  await subscribers(100003, 1);
  await subscribers(100002, 0);
  await post({ video_id: 100003, msg: 'on the new video', time: 1 });
  await comment(page, 'on the new video').waitFor({ state: 'attached' });
  await post({ video_id: 100002, msg: 'on the old video', time: 1 });
  assert.equal(await staysAway(page, 'on the old video', 1500), true, 'unsubscribed from the old video');

  await node.stop();
  await page.waitForSelector('#status[data-status="offline"]');
  // While the engine is down the page retries with growing delays (0.5 s doubling, with jitter): watch
  // until the announced delay has grown, however long a busy machine takes to get there.
  const retries: number[] = [];
  let shown = '';
  for (const until = Date.now() + 4 * SOON; Date.now() < until && (retries.length < 3 || retries.at(-1)! <= retries[0]);) {
    const text = (await page.textContent('#status')) ?? '';
    const seconds = /Reconnecting in (\d+) s/.exec(text)?.[1];
    if (text !== shown && seconds) retries.push(Number(seconds));
    shown = text;
    await page.waitForTimeout(50);
  }
  assert.ok(retries.length >= 3, `retries seen: ${retries.join(', ')}`);
  assert.ok(retries.every((delay, i) => i === 0 || delay >= retries[i - 1]) && retries.at(-1)! > retries[0], `retries seen: ${retries.join(', ')}`);
  const { log } = memoryLogger();
  restarted = new Engine(loadConfig(path.join(node.dir, 'connmix.yaml')), { log });
  await restarted.start();
  await page.waitForSelector('#status[data-status="live"]', { timeout: 30_000 });
  await subscribers(100003, 1);
  await post({ video_id: 100003, msg: 'after the restart', time: 2 });
  await comment(page, 'after the restart').waitFor({ state: 'attached' });
  await page.context().close();
});
