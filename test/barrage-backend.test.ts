import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { ConnmixClient } from '../src/client';
import { startBarrageServer, type BarrageServer } from '../examples/barrage-backend/server';
import { MemoryStore } from '../examples/barrage-backend/store';
import { openStore } from '../examples/barrage-backend/open-store';
import { RateLimiter } from '../examples/barrage-backend/rate-limit';
import { TokenError, TokenSigner } from '../examples/barrage-backend/token';
import type { BarrageAppOptions } from '../examples/barrage-backend/app';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, freePort, startNode, type Json, type TestNode, waitFor } from './support/helpers';
import { viewer } from './support/mesh';
import { RedisServer } from './support/redis';

// The example barrage backend over a real engine: sign-in tokens, checks with clear errors, the seed's
// event published to video:<id>, the history by video time, memory and Redis stores.

const SECRET = 'test-secret-0123456789';

let node: TestNode;
let backend: BarrageServer;

/** A backend on a free port publishing to `node`, with overrides. */
function backendFor(apiUrl: string, options: Partial<BarrageAppOptions> = {}): Promise<BarrageServer> {
  return startBarrageServer({
    port: 0,
    publisher: new ConnmixClient({ url: apiUrl, timeoutMs: 2000 }),
    store: new MemoryStore(),
    tokens: new TokenSigner(SECRET),
    websocket: { port: 6790, path: '/barrage-videos' },
    rateLimit: { count: 3, windowMs: 60_000 },
    maxLength: 20,
    ...options,
  });
}

async function call(method: 'GET' | 'POST', url: string, body?: unknown, token?: string): Promise<{ status: number; json: Json; headers: Headers }> {
  const response = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json(), headers: response.headers };
}

async function signIn(server: BarrageServer): Promise<{ token: string; uid: number }> {
  const { status, json } = await call('POST', `${server.url}/api/token`);
  assert.equal(status, 201);
  return json;
}

before(async () => {
  node = await startNode();
  backend = await backendFor(node.apiUrl);
});

after(async () => {
  await backend?.close();
  await node?.stop();
});

test('tokens: signed with the secret, refused when forged, tampered or expired', () => {
  const signer = new TokenSigner(SECRET, 60);
  const { token, viewer: issued } = signer.issue(4242, 1_000_000);
  assert.deepEqual(signer.verify(token, 1_000_000), { uid: 4242, exp: 1060 });
  assert.equal(issued.exp, 1060);
  assert.throws(() => signer.verify(token, 1_060_000), /expired/);
  assert.throws(() => new TokenSigner('another-secret-9876543').verify(token, 1_000_000), TokenError);
  const [body, signature] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ uid: 1, exp: 1060 })).toString('base64url');
  assert.throws(() => signer.verify(`${forged}.${signature}`, 1_000_000), /signature/);
  assert.throws(() => signer.verify(body, 1_000_000), /malformed/);
  assert.throws(() => new TokenSigner('short'), /at least 16/);
});

test('rate limiter: a sliding window per key', () => {
  const limiter = new RateLimiter(2, 1000);
  assert.equal(limiter.take('a', 0), 0);
  assert.equal(limiter.take('a', 400), 0);
  assert.equal(limiter.take('a', 500), 500);
  assert.equal(limiter.take('b', 500), 0);
  assert.equal(limiter.take('a', 1001), 0);
});

test('a posted comment reaches viewers of its video as the seed event, and only them', async () => {
  const { token, uid } = await signIn(backend);
  const watcher = await viewer(node.wsUrl, 100001);
  const other = await viewer(node.wsUrl, 100002);
  const posted = await call('POST', `${backend.url}/api/barrage`, { video_id: 100001, msg: ' Hello,World! ', time: 12.3456, color: '#FF0000', mode: 'top' }, token);
  assert.equal(posted.status, 201);
  assert.equal(posted.json.delivered, 1);
  const { barrage } = posted.json;
  assert.deepEqual(Object.keys(barrage), ['uid', 'video_id', 'msg', 'time', 'color', 'mode', 'id', 'ts']);
  assert.deepEqual({ ...barrage, id: 0, ts: 0 }, { uid, video_id: 100001, msg: 'Hello,World!', time: 12.346, color: '#ff0000', mode: 'top', id: 0, ts: 0 });
  const frame = await watcher.next();
  assert.equal(frame.data, JSON.stringify({ event: '@video', data: barrage }));
  assert.equal(await other.silentFor(200), true);
  watcher.close();
  other.close();
});

test('the history lists every comment of a video by video time', async () => {
  const { token } = await signIn(backend);
  for (const [time, msg] of [[5, 'third'], [1, 'first'], [3, 'second']] as const) {
    assert.equal((await call('POST', `${backend.url}/api/barrage`, { video_id: 777, msg, time }, token)).status, 201);
  }
  const { status, json } = await call('GET', `${backend.url}/api/barrage?video_id=777`);
  assert.equal(status, 200);
  assert.equal(json.video_id, 777);
  assert.deepEqual(json.barrages.map((b: { msg: string }) => b.msg), ['first', 'second', 'third']);
  assert.deepEqual(json.barrages.map((b: { color: string; mode: string }) => [b.color, b.mode]), Array(3).fill(['#ffffff', 'scroll']));
  assert.deepEqual((await call('GET', `${backend.url}/api/barrage?video_id=778`)).json.barrages, []);
});

test('clear errors: sign-in, checks and the rate limit answer 4xx with {error}', async () => {
  const url = `${backend.url}/api/barrage`;
  const good = { video_id: 1, msg: 'hi', time: 0 };
  const expect = async (answer: Promise<{ status: number; json: Json }>, status: number, pattern: RegExp) => {
    const { status: got, json } = await answer;
    assert.equal(got, status, JSON.stringify(json));
    assert.match(json.error, pattern);
  };
  await expect(call('POST', url, good), 401, /sign in/);
  await expect(call('POST', url, good, 'not.a-token'), 401, /signature/);
  const expired = new TokenSigner(SECRET, 1).issue(5, Date.now() - 10_000).token;
  await expect(call('POST', url, good, expired), 401, /expired/);

  const { token } = await signIn(backend);
  await expect(call('POST', url, { ...good, msg: 'x'.repeat(21) }, token), 400, /too long: 21 characters, at most 20/);
  const emoji = await call('POST', url, { ...good, msg: '😀'.repeat(20) }, token);
  assert.equal(emoji.status, 201, 'the length counts characters, not UTF-16 units');
  await expect(call('POST', url, { ...good, msg: '  \n ' }, token), 400, /empty/);
  await expect(call('POST', url, { ...good, msg: 5 }, token), 400, /msg must be a string/);
  await expect(call('POST', url, { ...good, time: -1 }, token), 400, /time/);
  await expect(call('POST', url, { ...good, color: 'red' }, token), 400, /#rrggbb/);
  await expect(call('POST', url, { ...good, mode: 'sideways' }, token), 400, /scroll, top, bottom/);
  await expect(call('POST', url, { ...good, video_id: 'abc' }, token), 400, /video_id/);
  await expect(call('POST', url, '{"video_id":', token), 400, /invalid request body/);
  await expect(call('GET', `${backend.url}/api/barrage`), 400, /video_id/);
  await expect(call('GET', `${backend.url}/api/nothing`), 404, /not found/);

  // The emoji comment above counted; two more fill the window of 3.
  assert.equal((await call('POST', url, good, token)).status, 201);
  assert.equal((await call('POST', url, good, token)).status, 201);
  const limited = await call('POST', url, good, token);
  assert.equal(limited.status, 429);
  assert.match(limited.json.error, /at most 3 comments every 60 s, try again in \d+ s/);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  const someoneElse = await signIn(backend);
  assert.equal((await call('POST', url, good, someoneElse.token)).status, 201);
});

test('an unreachable engine does not lose the comment: stored, delivered null', async () => {
  const offline = await backendFor(`http://127.0.0.1:${await freePort()}`);
  try {
    const { token } = await signIn(offline);
    const posted = await call('POST', `${offline.url}/api/barrage`, { video_id: 9, msg: 'later', time: 1 }, token);
    assert.equal(posted.status, 201);
    assert.equal(posted.json.delivered, null);
    assert.equal((await call('GET', `${offline.url}/api/barrage?video_id=9`)).json.barrages.length, 1);
  } finally {
    await offline.close();
  }
});

test('the page, its config and its videos are served, videos with ranges for seeking', async () => {
  const page = await fetch(`${backend.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /id="player"/);
  const dplayer = await fetch(`${backend.url}/dplayer.html`);
  assert.match(await dplayer.text(), /vendor\/dplayer\/DPlayer\.min\.js/);
  const config = await call('GET', `${backend.url}/api/config`);
  assert.deepEqual(config.json, { websocket: { port: 6790, path: '/barrage-videos' }, max_length: 20, rate_limit: { count: 3, window_ms: 60_000 } });
  const range = await fetch(`${backend.url}/media/100001.webm`, { headers: { range: 'bytes=0-99' } });
  assert.equal(range.status, 206);
  assert.equal((await range.arrayBuffer()).byteLength, 100);
});

test('Redis store: backends sharing one Redis share the history, by video time', async () => {
  const redis = await RedisServer.start();
  const url = `redis://${redis.address}`;
  const [storeA, storeB] = [await openStore(url), await openStore(url)];
  const [a, b] = [await backendFor(node.apiUrl, { store: storeA }), await backendFor(node.apiUrl, { store: storeB })];
  try {
    const { token } = await signIn(a);
    assert.equal((await call('POST', `${a.url}/api/barrage`, { video_id: 55, msg: 'late', time: 9.5 }, token)).status, 201);
    assert.equal((await call('POST', `${b.url}/api/barrage`, { video_id: 55, msg: 'early', time: 0.5 }, token)).status, 201);
    assert.equal((await call('POST', `${b.url}/api/barrage`, { video_id: 55, msg: 'tie', time: 9.5 }, token)).status, 201);
    const listed = (await call('GET', `${a.url}/api/barrage?video_id=55`)).json.barrages;
    assert.deepEqual(listed.map((x: { msg: string }) => x.msg), ['early', 'late', 'tie']);
    assert.deepEqual(listed.map((x: { id: number }) => x.id), [2, 1, 3]);
    assert.equal(await redis.cli('zcard', 'barrage:video:55'), '3');
    await assert.rejects(openStore(`redis://127.0.0.1:${await freePort()}`));
  } finally {
    await Promise.all([a.close(), b.close()]);
    await Promise.all([storeA.close(), storeB.close()]);
    await redis.stop();
  }
});

test('npm run demo\'s program serves the page and the engine, prints the URL, and stops on SIGTERM', async () => {
  const [page, wsPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-demo-'));
  const yaml = fs.readFileSync(path.join(ROOT, 'connmix.yaml'), 'utf8')
    .replace('port: 6790', `port: ${wsPort}`).replace('port: 6789', `port: ${apiPort}`).replace('bind: 0.0.0.0', 'bind: 127.0.0.1')
    .replace('filename: logs/connmix.log', 'filename: ""').replace('entry: lua/entry.websocket.lua', `entry: ${path.join(ROOT, 'lua/entry.websocket.lua')}`);
  fs.writeFileSync(path.join(dir, 'connmix.yaml'), yaml);
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/examples/barrage-backend/demo.js')], {
    env: { ...process.env, PORT: String(page), HOST: '127.0.0.1', CONNMIX_CONFIG: path.join(dir, 'connmix.yaml') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const deadline = Date.now() + 15_000;
    while (!/barrage demo: open http/.test(output)) {
      if (Date.now() > deadline) throw new Error(`no URL printed:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const url = /open (http\S+)\//.exec(output)?.[1];
    assert.equal(url, `http://127.0.0.1:${page}`);
    const html = await fetch(`${url}/`);
    assert.equal(html.status, 200);
    assert.match(await html.text(), /id="player"/);
    const client = await viewer(`ws://127.0.0.1:${wsPort}/barrage-videos`, 100001);
    client.close();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('the players\' scripts are served from node_modules, not a CDN', async () => {
  for (const [file, pattern] of [
    ['/vendor/artplayer/artplayer.mjs', /export\s*\{/],
    ['/vendor/artplayer-plugin-danmuku/artplayer-plugin-danmuku.mjs', /artplayerPluginDanmuku/],
    ['/vendor/dplayer/DPlayer.min.js', /DPlayer/],
  ] as const) {
    const response = await fetch(`${backend.url}${file}`);
    assert.equal(response.status, 200, file);
    assert.match(response.headers.get('content-type') ?? '', /javascript/, file);
    assert.match(await response.text(), pattern, file);
  }
  const missing = await fetch(`${backend.url}/vendor/dplayer/nothing.js`);
  assert.equal(missing.status, 404);
  for (const page of ['/', '/dplayer.html', '/app.js', '/dplayer.js']) {
    assert.doesNotMatch(await (await fetch(`${backend.url}${page}`)).text(), /https?:\/\/(?!127)/, `${page} loads nothing from elsewhere`);
  }
});

test('the ArtPlayer history is in artplayer-plugin-danmuku\'s own format, by video time', async () => {
  const { token } = await signIn(backend);
  for (const [time, msg, color, mode] of [[7, 'later', '#00FF00', 'bottom'], [2, 'sooner', undefined, 'top'], [4.5, 'middle', undefined, undefined]] as const) {
    assert.equal((await call('POST', `${backend.url}/api/barrage`, { video_id: 31, msg, time, color, mode }, token)).status, 201);
  }
  const { status, json } = await call('GET', `${backend.url}/api/artplayer?video_id=31`);
  assert.equal(status, 200);
  assert.deepEqual(json.map((d: { id: string }) => ({ ...d, id: typeof d.id })), [
    { id: 'string', text: 'sooner', time: 2, mode: 1, color: '#ffffff' },
    { id: 'string', text: 'middle', time: 4.5, mode: 0, color: '#ffffff' },
    { id: 'string', text: 'later', time: 7, mode: 2, color: '#00ff00' },
  ]);
  assert.match((await call('GET', `${backend.url}/api/artplayer?video_id=x`)).json.error, /video_id/);
});

test('DPlayer v3 API: DPlayer\'s own GET and POST, its field names, answers and error shape', async () => {
  const { token, uid } = await signIn(backend);
  const watcher = await viewer(node.wsUrl, 4242);
  const base = `${backend.url}/api/dplayer/v3/`;
  // DPlayer sends its body as JSON with the token inside; color is a number, type 0 right, 1 top, 2 bottom.
  const posted = await call('POST', base, { token, id: '4242', author: 'DIYgod', time: 3.25, text: `<b>bold</b> & 'q'`, color: 0xff7204, type: 1 });
  assert.equal(posted.status, 200);
  assert.deepEqual(posted.json, { code: 0, data: [3.25, 1, 0xff7204, String(uid), '&#60;b&#62;bold&#60;&#47;b&#62; &#38; &#39;q&#39;'] });
  // It reached the engine like any comment, in the page's format.
  const event = JSON.parse((await watcher.next()).data);
  assert.deepEqual({ ...event.data, id: 0, ts: 0 }, { uid, video_id: 4242, msg: `<b>bold</b> & 'q'`, time: 3.25, color: '#ff7204', mode: 'top', id: 0, ts: 0 });
  watcher.close();
  await call('POST', base, { token, id: '4242', time: 1, text: 'first', color: 16777215, type: 0 });
  await call('POST', base, { token, id: '4242', time: 9, text: 'last', color: 0, type: 2 });

  const history = await call('GET', `${base}?id=4242`);
  assert.equal(history.status, 200);
  assert.equal(history.json.code, 0);
  // [time, type, color, author, text], by video time; text HTML-escaped because DPlayer draws it as HTML.
  assert.deepEqual(history.json.data.map((d: unknown[]) => [d[0], d[1], d[2], d[4]]), [
    [1, 0, 0xffffff, 'first'], [3.25, 1, 0xff7204, '&#60;b&#62;bold&#60;&#47;b&#62; &#38; &#39;q&#39;'], [9, 2, 0, 'last'],
  ]);
  // `max` keeps the newest comments (the two posted last), still by video time.
  assert.deepEqual((await call('GET', `${base}?id=4242&max=2`)).json.data.map((d: unknown[]) => d[4]), ['first', 'last']);

  // Errors: HTTP 200 with a non-zero code and msg, which DPlayer shows to the viewer.
  const expect = async (answer: Promise<{ status: number; json: Json }>, code: number, pattern: RegExp) => {
    const { status, json } = await answer;
    assert.equal(status, 200);
    assert.equal(json.code, code, JSON.stringify(json));
    assert.match(json.msg, pattern);
  };
  await expect(call('POST', base, { id: '4242', time: 1, text: 'hi' }), 401, /sign in/);
  await expect(call('POST', base, { token: 'forged.token', id: '4242', time: 1, text: 'hi' }), 401, /signature/);
  await expect(call('POST', base, { token, id: 'abc', time: 1, text: 'hi' }), 400, /video_id/);
  await expect(call('POST', base, { token, id: '4242', time: 1, text: 'hi', color: '#fff' }), 400, /color must be a number/);
  await expect(call('POST', base, { token, id: '4242', time: 1, text: 'hi', type: 'right' }), 400, /type must be 0/);
  await expect(call('POST', base, { token, id: '4242', time: 1, text: '   ' }), 400, /empty/);
  await expect(call('POST', base, '{"id":', token), 400, /invalid request body/);
  await expect(call('GET', `${base}`), 400, /video_id/);
  await expect(call('GET', `${backend.url}/api/dplayer/v2/?id=1`), 404, /not found/);
  // The backend's rate limit answers 429 here too (3 comments per window in this backend: the fourth is refused).
  await expect(call('POST', base, { token, id: '4242', time: 1, text: 'one too many' }), 429, /slow down/);

  // A DPlayer on another origin: the preflight is answered and the answers allow any origin.
  const preflight = await fetch(base, { method: 'OPTIONS', headers: { origin: 'http://video.example', 'access-control-request-method': 'POST' } });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /content-type/);
  assert.equal((await fetch(`${base}?id=4242`)).headers.get('access-control-allow-origin'), '*');
});

test('watching: every video a page opened gets {"event":"@watching"} with its viewers over the mesh, every interval', async () => {
  const watched = await backendFor(node.apiUrl, { watchingIntervalMs: 200 });
  const viewers: Awaited<ReturnType<typeof viewer>>[] = [];
  try {
    viewers.push(await viewer(node.wsUrl, 515), await viewer(node.wsUrl, 515));
    const other = await viewer(node.wsUrl, 516);
    viewers.push(other);
    // Nobody asked for video 516's history: it gets no count.
    assert.equal((await call('GET', `${watched.url}/api/artplayer?video_id=515`)).status, 200);
    const event = JSON.parse((await viewers[0].next(10_000)).data);
    assert.deepEqual(event, { event: '@watching', data: { video_id: 515, watching: 2 } });
    viewers.push(await viewer(node.wsUrl, 515));
    await waitFor('3 watching', async () => JSON.parse((await viewers[1].next(10_000)).data).data.watching === 3, 20_000);
    assert.equal(await other.silentFor(500), true);
  } finally {
    for (const client of viewers) client.close();
    await watched.close();
  }
});
