import { test, before, after } from 'node:test';
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
import { ROOT, startNode, type TestNode } from './helpers';
import { memoryLogger } from './lua/harness';
import { waitFor } from './redis';

// The barrage product in a real browser: Debian's chromium, headless, driven by playwright-core, over a
// real engine and the example backend on free ports. Every wait is bounded.

// Globals of the page, for the functions that run in the browser (tests compile without the DOM lib).
declare const document: { querySelector(selector: string): any; querySelectorAll(selector: string): Iterable<any> };
declare const location: { href: string };
declare const window: { shownAt?: number };
declare class MutationObserver {
  constructor(callback: (records: unknown, observer: MutationObserver) => void);
  observe(target: unknown, options: { childList: boolean; subtree: boolean }): void;
  disconnect(): void;
}

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Playwright gives each launch a fresh --user-data-dir of its own (and refuses one in args).
// Several pages play at once, as several viewers' screens would: none may be throttled as a background tab.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows'];
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
// Without a browser these tests fail rather than skip: a green run must mean the page was really tested.
if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)`);
const skip = false;

let node: TestNode;
let restarted: Engine | null = null;
let backend: BarrageServer;
let browser: Browser;
let tokens: TokenSigner;

before(async () => {
  if (skip) return;
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
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  await backend?.close();
  await (restarted ?? node)?.stop();
});

/** A viewer of its own (own cookies and storage) on video `videoId`, live and playing. */
async function openViewer(videoId: number): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${backend.url}/?v=${videoId}`);
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

/** The comment with this text on `page`'s danmaku layer. */
function comment(page: Page, text: string) {
  return page.locator('#layer .dm', { hasText: text });
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

/** Waits until the engine has exactly `viewers` subscribers on `video:<id>` (a probe the page ignores). */
async function subscribers(videoId: number, viewers: number): Promise<void> {
  const probe = new ConnmixClient({ url: node.apiUrl, timeoutMs: 1000 });
  await waitFor(`${viewers} subscriber(s) on video:${videoId}`, async () => (await probe.publish(`video:${videoId}`, '{"probe":true}')).delivered === viewers, 3000);
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

const SENT = 'hello from page A';
let sentAt = 0;

test('a comment sent on one page flies over the video on another page of that video, not on another video', { skip }, async () => {
  const [sender, watcher, elsewhere] = [await openViewer(100001), await openViewer(100001), await openViewer(100002)];
  await sender.evaluate(() => {
    document.querySelector('video').currentTime = 4;
  });
  await sender.waitForFunction(() => document.querySelector('video').currentTime >= 4);
  await sender.fill('#msg', SENT);
  // The pages stamp the click and the comment's arrival themselves (same machine clock), so the latency
  // measured is the product's, not Playwright's round trips on a busy machine.
  await watcher.evaluate((text) => {
    new MutationObserver((_records, observer) => {
      if ([...document.querySelectorAll('#layer .dm')].some((el) => el.textContent === text)) {
        window.shownAt = Date.now();
        observer.disconnect();
      }
    }).observe(document.querySelector('#layer'), { childList: true, subtree: true });
  }, SENT);
  const clickedAt = await sender.evaluate(() => {
    const at = Date.now();
    document.querySelector('#send').click();
    return at;
  });

  // Within a second it is on the other page, over the video, and moving right to left.
  const videoBox = (await watcher.locator('video').boundingBox())!;
  await watcher.waitForFunction(
    ([text, right]) => [...document.querySelectorAll('#layer .dm')].some((el) => el.textContent === text && el.getBoundingClientRect().left < right),
    [SENT, videoBox.x + videoBox.width - 4] as const,
    { timeout: 10_000 },
  );
  const shownAt = await watcher.evaluate(() => window.shownAt ?? Infinity);
  assert.ok(shownAt - clickedAt <= 1000, `shown ${shownAt - clickedAt} ms after the click`);
  const first = (await comment(watcher, SENT).boundingBox())!;
  await watcher.waitForTimeout(300);
  const second = (await comment(watcher, SENT).boundingBox())!;
  assert.ok(second.x < first.x - 10, `it moves left: x ${first.x} then ${second.x}`);
  assert.ok(first.y >= videoBox.y && first.y + first.height <= videoBox.y + videoBox.height, 'it is over the video');
  sentAt = Number(await comment(watcher, SENT).getAttribute('data-time'));
  assert.ok(sentAt >= 4 && sentAt < 5, `sent at the sender's video time, got ${sentAt}`);

  await comment(sender, SENT).waitFor({ state: 'attached' });
  assert.match((await comment(sender, SENT).getAttribute('class')) ?? '', /dm-own/);
  assert.equal(await staysAway(elsewhere, SENT, 1000), true, 'a viewer of another video does not get it');

  // A busier moment for the screenshot: colours, top and bottom comments from other viewers.
  const crowd: Array<[string, string, string]> = [
    ['what a view', '#ffd302', 'scroll'], ['Welcome to the live room', '#ffffff', 'top'], ['so smooth', '#00a2ff', 'scroll'],
    ['2333333', '#ff7204', 'scroll'], ['colours!!!', '#f15bb5', 'scroll'], ['danmaku over connmix', '#00cd00', 'scroll'],
    ['Sent from the backend SDK', '#9b5de5', 'bottom'], ['hi everyone', '#ffffff', 'scroll'], ['love this part', '#fe0302', 'scroll'],
  ];
  for (const [index, [msg, color, mode]] of crowd.entries()) {
    await post({ video_id: 100001, msg, time: 10 + index, color, mode }, 6000 + index);
    await watcher.waitForTimeout(120);
  }
  await comment(watcher, 'love this part').waitFor({ state: 'attached' });
  await watcher.waitForTimeout(900);
  // Modes and colours as sent, and scrolling comments on screen together never overlap.
  assert.match((await comment(watcher, 'Welcome to the live room').getAttribute('class')) ?? '', /\bdm-top\b/);
  assert.match((await comment(watcher, 'Sent from the backend SDK').getAttribute('class')) ?? '', /\bdm-bottom\b/);
  assert.equal(await comment(watcher, 'so smooth').evaluate((el) => (el as { style: { color: string } }).style.color), 'rgb(0, 162, 255)');
  const overlaps = await watcher.evaluate(() => {
    const boxes = [...document.querySelectorAll('#layer .dm-scroll')].map((el) => el.getBoundingClientRect());
    let count = 0;
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, b] = [boxes[i], boxes[j]];
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) count++;
      }
    }
    return { count, scrolling: boxes.length };
  });
  assert.ok(overlaps.scrolling >= 2, `${overlaps.scrolling} scrolling comments on screen`);
  assert.equal(overlaps.count, 0, 'scrolling comments overlap');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await watcher.screenshot({ path: path.join(ARTIFACTS, 'barrage.png') });
  assert.ok(fs.statSync(path.join(ARTIFACTS, 'barrage.png')).size > 10_000, 'the screenshot was saved');
  await Promise.all([sender, watcher, elsewhere].map((page) => page.context().close()));
});

test('a reload shows the comment again from the history, when the video reaches its time', { skip }, async () => {
  assert.ok(sentAt > 0, 'needs the comment of the first test');
  const page = await openViewer(100001);
  assert.equal(await page.locator('#comments li', { hasText: SENT }).count(), 1, 'listed beside the player');
  const before = await page.evaluate(() => document.querySelector('video').currentTime);
  assert.ok(before < sentAt - 0.5, `the page starts before the comment's time (${before} < ${sentAt})`);
  await comment(page, SENT).waitFor({ state: 'attached', timeout: (sentAt - before) * 1000 + 3000 });
  const shownAt = Number(await comment(page, SENT).getAttribute('data-shown-at'));
  assert.ok(Math.abs(shownAt - sentAt) < 0.5, `shown at ${shownAt} s of the video, posted at ${sentAt} s`);

  // Pausing the video freezes the comments; playing moves them again.
  await page.evaluate(() => document.querySelector('video').pause());
  const paused = (await comment(page, SENT).boundingBox())!;
  await page.waitForTimeout(300);
  assert.equal((await comment(page, SENT).boundingBox())!.x, paused.x, 'frozen while paused');
  await page.evaluate(() => document.querySelector('video').play());
  await page.waitForFunction(([x, text]) => {
    const el = [...document.querySelectorAll('#layer .dm')].find((candidate) => candidate.textContent === text);
    return el !== undefined && el.getBoundingClientRect().x < x - 10;
  }, [paused.x, SENT] as const, { timeout: 2000 });

  // Seeking back clears the screen and shows it again when the playhead gets there.
  await page.evaluate((time) => {
    document.querySelector('video').currentTime = time - 1;
  }, sentAt);
  await comment(page, SENT).waitFor({ state: 'detached', timeout: 1000 });
  await comment(page, SENT).waitFor({ state: 'attached', timeout: 3000 });
  await page.context().close();
});

test('switching videos moves the subscription; the page resubscribes after the engine restarts', { skip }, async () => {
  const page = await openViewer(100002);
  await page.click('.video-item[data-id="100003"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('v') === '100003');
  await subscribers(100003, 1);
  await subscribers(100002, 0);
  await post({ video_id: 100003, msg: 'on the new video', time: 1 });
  await comment(page, 'on the new video').waitFor({ state: 'attached', timeout: 1000 });
  await post({ video_id: 100002, msg: 'on the old video', time: 1 });
  assert.equal(await staysAway(page, 'on the old video', 800), true, 'unsubscribed from the old video');

  await node.stop();
  await page.waitForSelector('#status[data-status="offline"]', { timeout: 3000 });
  // While the engine is down the page retries with growing delays (0.5 s doubling, with jitter).
  const retries: number[] = [];
  let shown = '';
  for (const until = Date.now() + 4500; Date.now() < until;) {
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
  await page.waitForSelector('#status[data-status="live"]', { timeout: 10_000 });
  await subscribers(100003, 1);
  await post({ video_id: 100003, msg: 'after the restart', time: 2 });
  await comment(page, 'after the restart').waitFor({ state: 'attached', timeout: 1000 });
  await page.context().close();
});
