import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startNode, TestClient, EVAL, freePort, type Json, type TestNode } from '../support/helpers';
import { parseDuration, MAX_BODY_BYTES, MAX_BODIES_BYTES } from '../../src/lua/mix/http';

// mix.http.request against a real HTTP server on 127.0.0.1, from hooks of a real node.
let node: TestNode;
let web: http.Server;
let base: string;
let client: TestClient;
/** Requests to /hang, never answered. */
const hanging: http.IncomingMessage[] = [];
/** Responses to /half, which send half of the largest body and then nothing. */
const halves: http.ServerResponse[] = [];
const HALF = Buffer.alloc(MAX_BODY_BYTES / 2, 0x61);

before(async () => {
  web = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (url.pathname === '/echo') {
        res.setHeader('Set-Cookie', ['session=abc; Path=/; HttpOnly', 'theme="dark"']);
        res.setHeader('X-Multi', ['one', 'two']);
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('latin1'),
        }));
      } else if (url.pathname === '/redirect') {
        res.writeHead(302, { Location: '/echo?from=redirect' });
        res.end();
      } else if (url.pathname === '/missing') {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('nope');
      } else if (url.pathname === '/binary') {
        res.end(Buffer.from([0, 255, 1, 128]));
      } else if (url.pathname === '/big') {
        res.end(Buffer.alloc(MAX_BODY_BYTES + 1, 0x61));
      } else if (url.pathname === '/half') {
        res.writeHead(200, { 'Content-Length': String(MAX_BODY_BYTES) });
        res.write(HALF);
        halves.push(res);
      } else if (url.pathname === '/hang') {
        // Never answers; the request's timeout must end it.
        hanging.push(req);
      }
    });
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  node = await startNode({ lua: { 'lua/entry.websocket.lua': EVAL }, path: '/http' });
  client = await TestClient.open(node.wsUrl);
});

after(async () => {
  client.close();
  await node.stop();
  web.closeAllConnections();
  await new Promise((resolve) => web.close(resolve));
});

async function run(lua: string): Promise<unknown[]> {
  const answer = await client.request(lua);
  try {
    return JSON.parse(answer);
  } catch {
    throw new Error(`not JSON: ${answer}`);
  }
}

/** Runs `mix.http.request(args)` and returns the response table (body decoded as JSON if asked) or the error. */
async function request(args: string, json = true): Promise<{ resp: Json; err: string | null }> {
  const [resp, err] = await run(`
    local resp, err = mix.http.request(${args})
    if resp and ${json} then resp.json = mix.json_decode(resp.body) end
    return resp or false, err`);
  return { resp: resp || null, err: (err as string) ?? null };
}

async function fails(lua: string): Promise<string> {
  const [ok, message] = await run(`return pcall(function() ${lua} end)`);
  assert.equal(ok, false, `expected an error from: ${lua}`);
  return String(message);
}

test('GET: status, body, body_size, headers, cookies, url', async () => {
  const { resp, err } = await request(`"get", "${base}/echo"`);
  assert.equal(err, null);
  assert.equal(resp.status_code, 200);
  assert.equal(resp.body_size, resp.body.length);
  assert.equal(resp.json.method, 'GET');
  assert.equal(resp.url, `${base}/echo`);
  assert.equal(resp.headers['Content-Type'], 'application/json');
  assert.equal(resp.headers['X-Multi'], 'one, two');
  assert.equal(resp.headers['Set-Cookie'], 'session=abc; Path=/; HttpOnly');
  assert.deepEqual(resp.cookies, { session: 'abc', theme: 'dark' });
});

test('POST with query, headers, body, cookies and basic auth', async () => {
  const { resp, err } = await request(`"POST", "${base}/echo?dropped=1", {
    query = "a=1&b=two",
    headers = { ["X-Token"] = "t1", ["Content-Type"] = "application/json", ["X-Num"] = 5 },
    body = '{"token":"x"}',
    cookies = { uid = "42" },
    auth = { username = "ann", password = "s3cret" },
  }`);
  assert.equal(err, null);
  const seen = resp.json;
  assert.equal(seen.method, 'POST');
  // As in gluahttp, `query` replaces the URL's own query.
  assert.equal(seen.url, '/echo?a=1&b=two');
  assert.equal(seen.body, '{"token":"x"}');
  assert.equal(seen.headers['x-token'], 't1');
  assert.equal(seen.headers['x-num'], '5');
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.headers.cookie, 'uid=42');
  assert.equal(seen.headers.authorization, `Basic ${Buffer.from('ann:s3cret').toString('base64')}`);
});

test('binary bodies survive both ways', async () => {
  const { resp } = await request(`"PUT", "${base}/echo", { body = "\\0\\255\\1" }`);
  assert.equal(resp.json.body, '\x00\xff\x01');
  const [bytes] = await run(`local r = mix.http.request("GET", "${base}/binary") return { r.body:byte(1, -1) }`);
  assert.deepEqual(bytes, [0, 255, 1, 128]);
});

test('redirects are followed and url is the final one', async () => {
  const { resp, err } = await request(`"GET", "${base}/redirect"`);
  assert.equal(err, null);
  assert.equal(resp.status_code, 200);
  assert.equal(resp.url, `${base}/echo?from=redirect`);
  assert.equal(resp.json.url, '/echo?from=redirect');
});

test('a non-2xx status is a response, not an error', async () => {
  const { resp, err } = await request(`"GET", "${base}/missing"`, false);
  assert.equal(err, null);
  assert.equal(resp.status_code, 404);
  assert.equal(resp.body, 'nope');
});

test('timeout as a duration string or seconds gives nil, err in time', async () => {
  for (const timeout of ['"300ms"', '0.3']) {
    const started = Date.now();
    const { resp, err } = await request(`"GET", "${base}/hang", { timeout = ${timeout} }`, false);
    const elapsed = Date.now() - started;
    assert.equal(resp, null);
    assert.match(String(err), /^Get "http:\/\/127\.0\.0\.1:\d+\/hang": timed out after 300 ms$/);
    // The timeout fired (not before 300 ms), and did end the wait: /hang never answers by itself.
    assert.ok(elapsed >= 250 && elapsed < 20_000, `took ${elapsed} ms`);
  }
});

test('transport failures, big bodies and other schemes give nil, err', async () => {
  const closedPort = await freePort();
  const refused = await request(`"GET", "http://127.0.0.1:${closedPort}/"`, false);
  assert.equal(refused.resp, null);
  assert.match(String(refused.err), new RegExp(`^Get "http://127.0.0.1:${closedPort}/": .*ECONNREFUSED`));
  const big = await request(`"GET", "${base}/big"`, false);
  assert.equal(big.resp, null);
  assert.match(String(big.err), /response body larger than 16777216 bytes/);
  const ftp = await request('"GET", "ftp://127.0.0.1/x"', false);
  assert.match(String(ftp.err), /unsupported protocol scheme "ftp"/);
  const bad = await request('"GET", "not a url"', false);
  assert.match(String(bad.err), /^parse "not a url": invalid URL$/);
});

test('wrong argument types raise Lua errors', async () => {
  assert.match(await fails('mix.http.request()'), /bad argument #1 to 'request' \(string expected, got no value\)/);
  assert.match(await fails('mix.http.request("GET")'), /bad argument #2 to 'request' \(string expected, got no value\)/);
  assert.match(await fails(`mix.http.request("GET", "${base}", "x")`), /bad argument #3 to 'request' \(table expected, got string\)/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { timeout = "soon" })`), /timeout: invalid duration "soon"/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { timeout = 0 })`), /timeout must be positive/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { timeout = {} })`), /timeout must be a number of seconds or a duration string/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { headers = "x" })`), /headers must be a table, got string/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { headers = { a = {} } })`), /headers must map strings to strings/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { body = {} })`), /body must be a string, got table/);
  assert.match(await fails(`mix.http.request("GET", "${base}", { auth = "ann" })`), /auth must be a table, got string/);
});

test('Go durations', () => {
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('2us'), 0.002);
  assert.equal(parseDuration('-1s'), -1000);
  assert.equal(parseDuration('0'), 0);
  for (const bad of ['', '1', 's', '.s', '1x', '1s ', '+']) assert.equal(parseDuration(bad), null, bad);
});

test('a connection that closes while its hook waits on a request releases it: the request is aborted and on_close runs at once', async () => {
  const watcher = await TestClient.open(node.wsUrl);
  assert.equal(await watcher.request('mix.websocket():subscribe("closes") return 1'), '[1]');
  const waiting = await TestClient.open(node.wsUrl);
  const [id] = JSON.parse(await waiting.request('return mix.websocket():client_id()'));
  const before = hanging.length;
  waiting.send(`return mix.http.request("GET", "${base}/hang", { timeout = 120 })`);
  const deadline = Date.now() + 3000;
  while (hanging.length === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const request = hanging[hanging.length - 1];
  assert.ok(request && hanging.length > before, 'the request reached the server');
  const aborted = new Promise<void>((resolve) => request.socket.once('close', () => resolve()));
  waiting.close();
  // Without the release, on_close would wait for the request's 120 s timeout.
  assert.equal((await watcher.next(5000)).data, `${id} nil`);
  await aborted;
  watcher.close();
});

test('bodies being read at once are capped over all connections: one connection each past MAX_BODIES_BYTES gets nil, err', async () => {
  // Each client waits on a body of which 8 MiB arrived; together they would hold more than MAX_BODIES_BYTES.
  const count = MAX_BODIES_BYTES / HALF.length + 4;
  const clients = await Promise.all(Array.from({ length: count }, () => TestClient.open(node.wsUrl)));
  try {
    const answers = clients.map((each) => {
      each.send(`local resp, err = mix.http.request("GET", "${base}/half", { timeout = 60 }) return err`);
      return each.next(90_000).then((message) => message.data, () => 'closed');
    });
    const refused = await Promise.race(answers);
    assert.match(refused, /response bodies being read exceed 268435456 bytes in all/);
  } finally {
    for (const res of halves.splice(0)) res.destroy();
    for (const each of clients) each.close();
  }
  // The bodies of the ended requests no longer count: a request reads a whole body again.
  const { resp, err } = await request(`"GET", "${base}/binary"`, false);
  assert.equal(err, null);
  assert.equal(resp.body_size, 4);
});
