import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { withNode, TestClient, EVAL, type Json, type TestNode } from './support/helpers';
import { SEED, prng, type Rng } from './support/fuzz';

/**
 * Random JSON (and non-JSON) to every API endpoint of a real node: `POST /v1/mesh/publish`,
 * `POST /v1/mesh/send`, the GET routes with bodies and queries, unknown routes, raw HTTP garbage, and
 * every `/ws/v1` method with random params. Every answer is a JSON object with `E` set to a documented
 * code (or a valid success); nothing answers 500, and the node keeps serving. Deterministic: FUZZ_SEED
 * or a fixed default, named in every failure; FUZZ_SHOW=<code or ok> prints the /ws/v1 cases with that outcome.
 */



/** A random JSON value: null, numbers (huge, tiny, negative), strings (unicode, long), booleans, nesting. */
function randomJson(rng: Rng, depth = 0): unknown {
  const kind = rng.int(depth > 3 ? 5 : 8);
  switch (kind) {
    case 0: return null;
    // Big integers (client-id sized) past 2 ** 53 are written as BigInt literals: JSON carries the nearest double.
    case 1: return rng.pick([0, -0, 1, -1, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, 5e-324, Number(384353859239149568n), Number(12345678901234567890n)]);
    case 2: return rng.chance(0.5);
    case 3: return randomString(rng);
    case 4: return rng.pick(['video:1', '100001@video', 'text', 'binary', 'aGVsbG8=', '1', '', ' ', 'a b']);
    case 5: return Array.from({ length: rng.int(5) }, () => randomJson(rng, depth + 1));
    case 6: return Object.fromEntries(Array.from({ length: rng.int(5) }, () => [rng.pick(['c', 'd', 't', 'm', 'p', 'i', 'a', 'f', '__proto__', 'constructor', '', randomString(rng)]), randomJson(rng, depth + 1)]));
    default: return rng.chance(0.5) ? deep(rng.int(3000), rng.chance(0.5)) : randomString(rng, 200000);
  }
}

function randomString(rng: Rng, max = 40): string {
  const pieces = ['a', 'é', '€', '😀', '\u0000', '\n', '"', '\\', '\ud800', '\udfff', '\u2028', ' ', ':', '@', '%', 'Z'];
  const length = rng.chance(0.05) ? rng.int(max) : rng.int(Math.min(max, 40));
  return rng.chance(0.9) ? Array.from({ length }, () => rng.pick(pieces)).join('') : 'x'.repeat(length);
}

/** Arrays or objects nested `n` deep. */
function deep(n: number, arrays: boolean): unknown {
  let value: unknown = 1;
  for (let i = 0; i < n; i++) value = arrays ? [value] : { c: value };
  return value;
}

/** How many levels of arrays/objects `value` nests. */
function depthOf(value: unknown): number {
  let depth = 0;
  for (let level: unknown[] = [value]; level.length > 0; depth++) {
    level = level.flatMap((item) => (item !== null && typeof item === 'object' ? Object.values(item) : []));
  }
  return depth - 1;
}

/** A random body: JSON of a random value, a plausible {c, d, t} with random field types, or non-JSON bytes. */
function randomBody(rng: Rng, clientIds: string[]): Buffer {
  const roll = rng.next();
  if (roll < 0.15) return rng.bytes(rng.int(300));
  if (roll < 0.25) return Buffer.from(rng.pick(['', '{', '{"c":', '[]', 'null', '"x"', '{"c":"a","d":"b"', '{"c":1e999}', '\ufeff{}', '{"c":"video:1","d":"x"}garbage']));
  if (roll < 0.45) return Buffer.from(JSON.stringify(randomJson(rng)) ?? 'undefined');
  let text = JSON.stringify(meshParams(rng, clientIds));
  // The PHP SDK sends client_ids as bare JSON numbers, sometimes too long for a double.
  if (rng.chance(0.1) && clientIds.length > 0) text = text.replace(/"c":"(\d+)"/, '"c":$1');
  return Buffer.from(text);
}

/** Plausible `{c, d, t}` params with random field types. */
function meshParams(rng: Rng, clientIds: string[]): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (rng.chance(0.9)) body.c = rng.chance(0.5) ? rng.pick([...clientIds, 'video:1', 'room', '12345678901234567890']) : randomJson(rng);
  if (rng.chance(0.9)) body.d = rng.chance(0.6) ? randomString(rng, 5000) : randomJson(rng);
  if (rng.chance(0.5)) body.t = rng.chance(0.6) ? rng.pick(['text', 'binary', 'TEXT', '']) : randomJson(rng);
  return body;
}

interface HttpAnswer {
  status: number;
  text: string;
  json: Json;
}

/** One HTTP request over a fresh connection (so a bad request cannot poison the next one). */
function request(base: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: url.port, method, path, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('timed out')));
    req.end(body);
  });
}

/** Codes the API documents; 500 (the mesh failed) must not happen on a healthy node. */
const DOCUMENTED = new Set([101, 201, 202, 203, 301, 401]);

function checkEnvelope(answer: { E?: Json; r?: Json }, label: string): void {
  assert.ok(answer !== null && typeof answer === 'object' && !Array.isArray(answer), `${label}: not an object`);
  assert.ok('E' in answer, `${label}: no E in ${JSON.stringify(answer).slice(0, 200)}`);
  if (answer.E === null) {
    assert.ok(answer.r !== null && typeof answer.r === 'object', `${label}: success without r`);
  } else {
    assert.ok(DOCUMENTED.has(answer.E.c), `${label}: code ${JSON.stringify(answer.E).slice(0, 300)}`);
    assert.equal(typeof answer.E.m, 'string', label);
  }
}

/** A bystander on the business server and a valid API call both still work. */
async function checkServing(node: TestNode, bystander: TestClient, label: string): Promise<void> {
  assert.equal(await bystander.request('return 40 + 2'), '[42]', `${label}: bystander`);
  const ok = await request(node.apiUrl, 'POST', '/v1/mesh/publish', Buffer.from('{"c":"nobody","d":"x"}'));
  assert.deepEqual(ok.json, { E: null, r: { s: 0, f: 0 } }, `${label}: publish`);
}

function noServerErrors(node: TestNode): void {
  const failures = node.logs.filter((line) => line.includes('API request failed') || line.includes('native error'));
  assert.deepEqual(failures.slice(0, 3), [], 'the node logged internal errors');
}

test('random bodies to POST /v1/mesh/publish and /v1/mesh/send answer documented codes, never 500', async () => {
  const rng = prng(SEED);
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      maxMessagesPerSecond: 0' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    // A target that may receive what random sends deliver (it reads anything, text that is not UTF-8 included).
    const target = await TestClient.open(node.wsUrl, { skipUTF8Validation: true });
    const [targetId] = JSON.parse(await target.request('return mix.websocket():client_id()')) as [string];
    const counts: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const path = rng.chance(0.5) ? '/v1/mesh/publish' : '/v1/mesh/send';
      const body = randomBody(rng, [targetId]);
      const contentType = rng.pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]);
      const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
      if (rng.chance(0.05)) headers['content-encoding'] = rng.pick(['gzip', 'br', 'identity']);
      const label = `seed=${SEED} case=${i} ${path} body=${body.subarray(0, 120).toString('latin1')}`;
      const answer = await request(node.apiUrl, 'POST', path, body, headers).catch((error: Error) => assert.fail(`${label}: ${error.message}`));
      assert.equal(answer.status, 200, `${label}: HTTP ${answer.status} ${answer.text.slice(0, 200)}`);
      checkEnvelope(answer.json, label);
      const key = `${path} ${answer.json.E === null ? 'ok' : answer.json.E.c}`;
      counts[key] = (counts[key] ?? 0) + 1;
      if (i % 50 === 49) await checkServing(node, bystander, label);
    }
    for (const outcome of ['/v1/mesh/publish ok', '/v1/mesh/publish 101', '/v1/mesh/send ok', '/v1/mesh/send 101', '/v1/mesh/send 401']) {
      assert.ok((counts[outcome] ?? 0) > 0, `no case gave ${outcome}: ${JSON.stringify(counts)}`);
    }
    noServerErrors(node);
    target.close();
    bystander.close();
  });
});

test('GET routes with bodies and queries, other methods and unknown paths answer JSON; HTTP garbage is dropped', async () => {
  const rng = prng(SEED + 1);
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const paths = ['/version', '/v1/nodes', '/v1/mesh/publish', '/v1/mesh/send', '/', '/v1', '/v2/mesh/publish', '/ws/v1',
      '//v1/nodes', '/v1/nodes/', '/v1/%ZZ', '/v1/mesh/%00', '/%2e%2e/version', '/version/..', '/VERSION', '/healthz', '/readyz'];
    for (let i = 0; i < 150; i++) {
      const method = rng.pick(['GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
      let path = rng.pick(paths);
      if (rng.chance(0.5)) path += `?${rng.pick(['a=1', 'c=video:1&d=x', '%zz', 'a[b][c]=1', 'x='.repeat(200), '&&&', '%C3%A9=%E2%82%AC', '%ff%fe', `q=${'%41'.repeat(500)}`])}`;
      const body = rng.chance(0.4) ? randomBody(rng, []) : undefined;
      const label = `seed=${SEED + 1} case=${i} ${method} ${path.slice(0, 120)} body=${body?.subarray(0, 80).toString('latin1')}`;
      let answer: HttpAnswer;
      try {
        answer = await request(node.apiUrl, method, path, body);
      } catch (error) {
        // A route that answers without reading the body, on a connection the client asked to close, may
        // reset it before the answer is read (TCP RST over unread data); not the node's doing.
        if (body && /socket hang up|ECONNRESET/.test((error as Error).message)) continue;
        assert.fail(`${label}: ${(error as Error).message}`);
      }
      if (method === 'OPTIONS' && answer.status === 200) continue; // Express answers OPTIONS with the allowed methods
      assert.ok(answer.json !== undefined, `${label}: not JSON (HTTP ${answer.status}): ${answer.text.slice(0, 200)}`);
      assert.notEqual(answer.status, 500, label);
      // Express routes match case-insensitively and with a trailing slash.
      const route = path.split('?')[0].toLowerCase().replace(/(.)\/$/, '$1');
      if (answer.status === 404) {
        assert.equal(answer.json.E.c, 404, label);
      } else if (method === 'GET' && route === '/version') {
        assert.deepEqual(answer.json, { apis: ['v1'] }, label);
      } else if (method === 'GET' && route === '/v1/nodes') {
        assert.ok(Array.isArray(answer.json.nodes), label);
      } else if (method === 'GET' && (route === '/healthz' || route === '/readyz')) {
        assert.equal(answer.status, 200, label);
      } else {
        assert.equal(answer.status, 200, `${label}: HTTP ${answer.status}`);
        checkEnvelope(answer.json, label);
      }
    }
    // Raw HTTP that is not HTTP: the server drops the connection and keeps serving.
    const port = Number(new URL(node.apiUrl).port);
    const garbage = [
      () => rng.bytes(1 + rng.int(400)),
      () => Buffer.from(`POST /v1/mesh/publish HTTP/1.1\r\nHost: x\r\nContent-Length: ${rng.pick(['-1', 'abc', '99999999999999999999', '5, 6'])}\r\n\r\n{}`),
      () => Buffer.from('POST /v1/mesh/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'),
      () => Buffer.from(`GET /version HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(3000)}\r\n`),
      () => Buffer.from(`BREW /version HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from(`GET /version HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"c"`),
      () => Buffer.from('GET /ws/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'),
    ];
    for (let i = 0; i < 40; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.end(garbage[i % garbage.length]());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          socket.destroy();
          resolve();
        }, 3000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await checkServing(node, bystander, 'after HTTP garbage');
    noServerErrors(node);
    bystander.close();
  });
});

/** A raw /ws/v1 connection (no request matching: answers come in request order). */
async function wsApi(node: TestNode): Promise<TestClient> {
  return TestClient.open(`${node.apiUrl.replace(/^http/, 'ws')}/ws/v1`);
}

/** The next answer (skipping queue.pop events), parsed. */
async function nextAnswer(api: TestClient, label: string): Promise<Json> {
  for (;;) {
    const message = await api.next(10000).catch((error: Error) => assert.fail(`${label}: ${error.message}`));
    const frame = JSON.parse(message.data);
    if (frame && frame.e) continue;
    return frame;
  }
}

test('every /ws/v1 method with random params answers documented codes, in order, on a connection that lives on', async () => {
  const rng = prng(SEED + 2);
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      maxMessagesPerSecond: 0' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const target = await TestClient.open(node.wsUrl, { skipUTF8Validation: true });
    const [targetId] = JSON.parse(await target.request('return mix.websocket():client_id()')) as [string];
    const api = await wsApi(node);
    const methods = ['mesh.publish', 'mesh.publish', 'mesh.send', 'mesh.send', 'conn.call', 'conn.call', 'conn.call',
      'queue.pop', 'queue.pop', 'queue.pop'];
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const label = `seed=${SEED + 2} case=${i}`;
      const roll = rng.next();
      let frame: string;
      let expectedId: unknown = null;
      if (roll < 0.08) {
        frame = rng.chance(0.5) ? rng.bytes(rng.int(100)).toString('latin1') : rng.pick(['', '{', '[]', 'null', '1', '"m"', '[{"m":"queue.unpop"}]']);
      } else {
        // queue.unpop releases everything: keep it rare so topics pile up to maxTopics (code 201).
        const method = rng.chance(0.04) ? 'queue.unpop' : rng.chance(0.9) ? rng.pick(methods) : randomJson(rng);
        let params: unknown;
        if (rng.chance(0.2)) {
          params = randomJson(rng);
        } else if (method === 'conn.call') {
          const f = rng.chance(0.85) ? rng.pick(['set_context_value', 'set_context', 'subscribe', 'unsubscribe', 'send', '']) : randomJson(rng);
          const plausible: Record<string, () => unknown[]> = {
            set_context_value: () => [rng.pick(['k', '', 'é', '__proto__']), randomJson(rng)],
            set_context: () => [Object.fromEntries([[rng.pick(['a', '__proto__', '']), randomJson(rng)]])],
            subscribe: () => Array.from({ length: 1 + rng.int(3) }, () => rng.pick(['video:1', 'a b', '', 'x'.repeat(2000), 'room'])),
            unsubscribe: () => [rng.pick(['video:1', 'nope', ''])],
          };
          params = {
            c: rng.chance(0.8) ? rng.pick([targetId, targetId, '1', Number(targetId)]) : randomJson(rng),
            f,
            a: typeof f === 'string' && plausible[f] && rng.chance(0.8) ? plausible[f]() : randomJson(rng),
          };
        } else if (method === 'queue.pop') {
          const topics = Array.from({ length: 1 + rng.int(12) }, () => (rng.chance(0.95) ? `topic${rng.int(300)}` : randomJson(rng)));
          params = rng.chance(0.7) ? { t: topics } : topics;
        } else {
          params = meshParams(rng, [targetId]);
        }
        const request: Record<string, unknown> = { m: method, p: params };
        const idRoll = rng.next();
        if (idRoll < 0.7) request.i = i;
        else if (idRoll < 0.8) request.id = `id-${i}`;
        else if (idRoll < 0.9) request.i = randomJson(rng);
        expectedId = request.i ?? request.id ?? null;
        // An id nested past 64 levels is refused (101) and answered with a null id.
        if (depthOf(expectedId) > 64) expectedId = null;
        frame = JSON.stringify(request);
      }
      api.send(frame, rng.chance(0.05));
      const answer = await nextAnswer(api, label);
      checkEnvelope(answer, `${label} ${frame.slice(0, 200)}`);
      assert.equal(JSON.stringify(answer.i), JSON.stringify(expectedId ?? null), `${label}: id`);
      const key = answer.E === null ? 'ok' : String(answer.E.c);
      if (process.env.FUZZ_SHOW === key) console.log(frame.slice(0, 150), '->', answer.E?.m);
      counts[key] = (counts[key] ?? 0) + 1;
      if (i % 50 === 49) await checkServing(node, bystander, label);
    }
    for (const outcome of ['ok', '101', '202', '203', '301']) {
      assert.ok((counts[outcome] ?? 0) > 0, `no request gave ${outcome}: ${JSON.stringify(counts)}`);
    }
    // Past maxTopics (100), queue.pop answers 201 and the connection goes on.
    api.send(JSON.stringify({ m: 'queue.pop', p: { t: Array.from({ length: 101 }, (_, k) => `many${k}`) }, i: 'many' }));
    const many = await nextAnswer(api, 'maxTopics');
    assert.equal(many.E?.c, 201, JSON.stringify(many));
    // Context values Lua could not read back (nested past 64 levels) are refused at the API with 101.
    const holder = await TestClient.open(node.wsUrl);
    const [holderId] = JSON.parse(await holder.request('return mix.websocket():client_id()')) as [string];
    for (const [levels, code] of [[64, null], [65, 101]] as const) {
      api.send(JSON.stringify({ m: 'conn.call', p: { c: holderId, f: 'set_context_value', a: ['deep', deep(levels, true)] }, i: `deep${levels}` }));
      assert.equal((await nextAnswer(api, `deep ${levels}`)).E?.c ?? null, code, `${levels} levels`);
      api.send(JSON.stringify({ m: 'conn.call', p: { c: holderId, f: 'set_context', a: [{ x: deep(levels, false) }] }, i: `deepctx${levels}` }));
      assert.equal((await nextAnswer(api, `deep context ${levels}`)).E?.c ?? null, code, `${levels} levels in set_context`);
    }
    assert.equal(await holder.request('local c = mix.websocket() return type(c:context().x), c:context_value("deep") == nil'), '["table",true]');
    holder.close();
    // Pipelined: many requests at once still come back in order.
    const ids = Array.from({ length: 50 }, (_, k) => 10000 + k);
    for (const id of ids) api.send(JSON.stringify({ m: rng.pick([...methods, 'queue.unpop']), p: randomJson(rng), i: id }));
    for (const id of ids) assert.equal((await nextAnswer(api, `pipelined ${id}`)).i, id);
    noServerErrors(node);
    assert.equal(api.ws.readyState, api.ws.OPEN);
    api.close();
    target.close();
    bystander.close();
  });
});
