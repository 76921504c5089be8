import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { withNode, startNode, TestClient, post, get, metric, EVAL, type Json, type TestNode, waitFor } from './support/helpers';
import { ApiClient, type ApiFrame } from './support/api-client';
import { RedisServer } from './support/redis';
import { meshYaml } from './support/mesh';

// What one HTTP client may make the API servers hold: a body's size, the bytes of unfinished bodies
// together, and the time a request may take to arrive (the API and the center API).

const lua = { 'lua/entry.websocket.lua': EVAL };

/** An HTTP answer read off a raw socket. */
interface RawAnswer {
  status: number;
  headers: string;
  json: Json;
}

/**
 * Writes `head` (and `body`, possibly short of what the head announces) on a fresh socket and resolves
 * with the first answer, without finishing the request: as a client that never sends the rest would.
 */
function rawRequest(port: number, head: string, body = ''): { socket: net.Socket; answer: Promise<RawAnswer> } {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(head + body);
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no answer within 15 s, got ${JSON.stringify(text)}`)), 15_000);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      if (end < 0 || !length || text.length < end + 4 + Number(length[1])) return;
      clearTimeout(timer);
      resolve({ status: Number(text.slice(9, 12)), headers: text.slice(0, end), json: JSON.parse(text.slice(end + 4, end + 4 + Number(length[1]))) });
    });
  });
  return { socket, answer };
}

const publishHead = (length: number | 'chunked') =>
  `POST /v1/mesh/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`;

test('a body over maxBodySize is refused with 413 and E 101 before it is read; smaller ones are served', async () => {
  await withNode({ lua, apiYaml: '    maxBodySize: 1000\n    maxBytesInFlight: 5000' }, async (node) => {
    const port = Number(new URL(node.apiUrl).port);
    const viewer = await TestClient.open(node.wsUrl);
    await viewer.request('return mix.websocket():subscribe("room")');
    // Announced too large: answered at once, although the body never comes.
    const announced = rawRequest(port, publishHead(15 * 1024 * 1024), '{"c":"room","d":"');
    const answer = await announced.answer;
    assert.equal(answer.status, 413);
    assert.equal(answer.json.E.c, 101);
    assert.match(answer.json.E.m, /larger than 1000 bytes/);
    assert.match(answer.headers, /connection: close/i);
    announced.socket.destroy();
    // Chunked, with no length announced: refused once it passes the limit.
    const chunk = JSON.stringify({ c: 'room', d: 'y'.repeat(1180) });
    const chunked = rawRequest(port, publishHead('chunked'), `${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    assert.deepEqual([(await chunked.answer).status, (await chunked.answer).json.E.c], [413, 101]);
    chunked.socket.destroy();
    const ok = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room', d: 'x'.repeat(900) });
    assert.deepEqual(ok.json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await viewer.next()).data, 'x'.repeat(900));
    assert.equal(await viewer.silentFor(100), true, 'a refused body was delivered');
    viewer.close();
  });
});

test('maxBytesInFlight: unfinished bodies hold their share; past it a request answers 503 / E 503 unread, and the share comes back', async () => {
  await withNode({ lua, apiYaml: '    maxBodySize: 3000\n    maxBytesInFlight: 5000' }, async (node) => {
    const port = Number(new URL(node.apiUrl).port);
    // Two publishes announce 2500 bytes each and never finish.
    const stuck = [rawRequest(port, publishHead(2500), '{"c":"room"'), rawRequest(port, publishHead(2500), '{"c":"room"')];
    const refused = (await waitFor('a third body is refused', async () => {
      const third = rawRequest(port, publishHead(100), '');
      const answer = await third.answer;
      third.socket.destroy();
      return answer.status === 503 ? answer : undefined;
    })) as RawAnswer;
    assert.equal(refused.json.E.c, 503);
    assert.match(refused.json.E.m, /busy/);
    assert.match(refused.headers, /retry-after: 1/i);
    assert.equal((await get(`${node.apiUrl}/healthz`)).status, 200);
    assert.equal(await metric(node.apiUrl, /^connmix_api_requests_total\{route="\/v1\/mesh\/publish",code="503"/), 1);
    // The stuck clients go away: their share is free again.
    for (const { socket } of stuck) socket.destroy();
    await waitFor('publishes are served again', async () => (await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room', d: 'z' })).status === 200);
    // Answered requests give their share back: many in a row, each near the limit, all pass.
    for (let i = 0; i < 10; i++) {
      const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room', d: 'w'.repeat(2800) });
      assert.deepEqual([answer.status, answer.json.E], [200, null]);
    }
  });
});

/** A `/ws/v1` publish frame of exactly `size` bytes, with request id `i`. */
function publishFrame(size: number, i: number): string {
  const empty = JSON.stringify({ m: 'mesh.publish', p: { c: 'room', d: '' }, i });
  return JSON.stringify({ m: 'mesh.publish', p: { c: 'room', d: 'x'.repeat(size - empty.length) }, i });
}

test('maxBytesInFlight bounds /ws/v1 too: frames waiting on a frozen Redis hold their bytes over all connections; past it a request answers E 503 with its i, and the bytes come back', async () => {
  const redis = await RedisServer.start();
  let node: TestNode | null = null;
  const clients: ApiClient[] = [];
  try {
    node = await startNode({ lua, engineYaml: meshYaml([redis.address], 'wsb:'), apiYaml: '    maxBodySize: 1000\n    maxBytesInFlight: 5000' });
    const apiUrl = node.apiUrl;
    for (let i = 0; i < 6; i++) clients.push(await ApiClient.open(apiUrl));
    // Five 950-byte frames fit in 5000 bytes, a sixth does not.
    const round = () => Promise.all(clients.map((client, i) => client.raw(publishFrame(950, 100 + i), 100 + i, 20_000)));
    const five = async (size: number) => (await Promise.all(clients.slice(0, 5).map((client, i) => client.raw(publishFrame(size, 200 + i), 200 + i, 20_000)))).map((a) => a.E);
    for (let i = 0; i < 3; i++) assert.deepEqual(await five(950), [null, null, null, null, null], 'Redis up: each is answered and gives its bytes back');

    redis.freeze();
    // Each publish now waits for Redis up to the command timeout, holding its frame. The six are sent
    // together; should the node read them further apart than that timeout, the round is tried again.
    let busy: ApiFrame[] = [];
    for (let attempt = 0; attempt < 5 && busy.length === 0; attempt++) {
      const answers = await round();
      busy = answers.filter((answer) => answer.E?.c === 503);
      for (const answer of answers.filter((candidate) => candidate.E?.c !== 503)) assert.equal(answer.E?.c, 500, JSON.stringify(answer));
    }
    assert.equal(busy.length, 1, 'one of six frames sent together is refused');
    assert.match(busy[0].E?.m ?? '', /^busy: 5000 bytes of requests are in flight; retry$/);
    assert.ok(Number(busy[0].i) >= 100 && Number(busy[0].i) <= 105, `the refusal echoes its request id (${String(busy[0].i)})`);
    assert.equal(busy[0].r, undefined);
    // Connections that close with their commands in flight: their bytes come back when the commands settle.
    const leaving = await ApiClient.open(apiUrl);
    for (let i = 0; i < 5; i++) leaving.ws.send(publishFrame(950, i));
    leaving.close();

    redis.thaw();
    await waitFor('Redis answers publishes again', async () => (await post(`${apiUrl}/v1/mesh/publish`, { c: 'room', d: 'probe' })).json.E === null, 20_000, 200);
    // Nothing is left taken: five frames at once fit again, many times over, on both transports.
    for (let i = 0; i < 5; i++) assert.deepEqual(await five(1000), [null, null, null, null, null]);
    assert.equal((await post(`${apiUrl}/v1/mesh/publish`, { c: 'room', d: 'z'.repeat(900) })).json.E, null);
  } finally {
    for (const client of clients) client.close();
    await node?.stop();
    await redis.stop();
  }
});

test('/ws/v1 requests answered at once give their bytes back at once: pipelined frames far past maxBytesInFlight all pass', async () => {
  await withNode({ lua, apiYaml: '    maxBodySize: 1000\n    maxBytesInFlight: 5000' }, async (node) => {
    const api = await ApiClient.open(node.apiUrl);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => api.raw(publishFrame(990, i + 1), i + 1)));
    assert.deepEqual(answers.map((answer) => answer.E), Array.from({ length: 40 }, () => null));
    // Failed commands give theirs back too.
    for (let i = 0; i < 10; i++) assert.equal((await api.call('mesh.publish', { c: '', d: 'x'.repeat(900) })).E?.c, 101);
    assert.equal((await api.call('mesh.publish', { c: 'room', d: 'x'.repeat(900) })).E, null);
    api.close();
  });
});

test('the API server closes a client that trickles its headers or its body (headersTimeout, requestTimeout)', async () => {
  await withNode({ lua, apiYaml: '    headersTimeout: 0.5\n    requestTimeout: 1' }, async (node) => {
    const port = Number(new URL(node.apiUrl).port);
    const slow = (start: string) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(start);
      const state = { closed: false };
      // One more byte now and then, so that no idle timeout could be what ends it.
      const drip = setInterval(() => socket.write(start.endsWith('\r\n\r\n') ? 'x' : 'X-Pad: 1\r\n'), 200);
      socket.on('close', () => {
        state.closed = true;
        clearInterval(drip);
      });
      return state;
    };
    const headers = slow('POST /v1/mesh/publish HTTP/1.1\r\nHost: x\r\n');
    const body = slow('POST /v1/mesh/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    await waitFor('the header trickler is closed', () => headers.closed, 20_000);
    await waitFor('the body trickler is closed', () => body.closed, 20_000);
    assert.equal((await get(`${node.apiUrl}/healthz`)).status, 200);
  });
});

test('the center API closes a client that trickles its request headers', async () => {
  await withNode({ lua, center: true }, async (node) => {
    const [host, port] = node.centerHost.split(':');
    const socket = net.connect(Number(port), host);
    socket.on('error', () => undefined);
    let closed = false;
    socket.write('GET /v1/nodes HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.write('X-Pad: 1\r\n'), 200);
    socket.on('close', () => {
      closed = true;
      clearInterval(drip);
    });
    // Its headersTimeout is 10 s; Node's own default (60 s, checked every 30 s) would outlast this bound.
    await waitFor('the center closes the header trickler', () => closed, 45_000);
    assert.equal((await get(`http://${node.centerHost}/version`)).status, 200);
  });
});
