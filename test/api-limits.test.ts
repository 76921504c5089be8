import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { withNode, TestClient, post, get, metric, EVAL, type Json, waitFor } from './support/helpers';

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
