import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { post, withTimeout, get, waitFor, withNode, TestClient, EVAL, metric } from './support/helpers';
import { ApiClient, type ApiFrame } from './support/api-client';
import { assertHealthy, seedEngineFolder, startListening, stopEngine, residentBytes, mib } from './support/engine-process';
import { RedisServer } from './support/redis';
import { meshYaml } from './support/mesh';
import { upgradeRequest, rawUpgrade, clientFrame, serverFrames } from './support/raw-ws';

// Hostile clients against an engine in a process of its own, so that a request that kills or freezes
// the node shows as the node's death (not this test process's): what each sends is answered with a
// documented code or closes only its own connection, and the node serves on.

/** JSON arrays nested `levels` deep, as text (JSON.stringify of such a value would overflow the stack). */
function nestedArrays(levels: number): string {
  return '['.repeat(levels) + ']'.repeat(levels);
}

/** Sends `text` on `api` and resolves with the answer whose `i` is `id`; fails naming `label` (not the frame, which may be huge). */
function answerTo(api: ApiClient, text: string, id: unknown, label: string): Promise<ApiFrame> {
  return withTimeout(new Promise<ApiFrame>((resolve) => {
    const listener = (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as ApiFrame;
      if (frame.i !== id) return;
      api.ws.off('message', listener);
      resolve(frame);
    };
    api.ws.on('message', listener);
    api.ws.send(text);
  }), 10_000, `no answer to ${label}`);
}

test('a /ws/v1 request whose id or method nests 100,000 levels answers 101 and the node serves on', async () => {
  const { file, apiUrl } = await seedEngineFolder();
  const engine = await startListening(file);
  try {
    const api = await ApiClient.open(apiUrl);
    api.ws.on('error', () => undefined);
    // The answer echoes the id: written back as it came, it would overflow the stack of JSON.stringify.
    const deepId = await answerTo(api, `{"m":"mesh.publish","p":{"c":"video:1","d":"x"},"i":${nestedArrays(100_000)}}`, null, 'the deep id');
    assert.equal(deepId.E?.c, 101, JSON.stringify(deepId));
    const deepMethod = await answerTo(api, `{"m":${nestedArrays(100_000)},"p":{},"i":"m"}`, 'm', 'the deep method');
    assert.equal(deepMethod.E?.c, 101, JSON.stringify(deepMethod));
    assert.deepEqual((await api.call('mesh.publish', { c: 'video:1', d: 'after' })).r, { s: 0, f: 0 });
    await assertHealthy(engine, apiUrl);
    assert.deepEqual((await post(`${apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'x' })).json, { E: null, r: { s: 0, f: 0 } });
    api.close();
  } finally {
    await stopEngine(engine);
  }
});

/** Backends publishing at once while Redis is frozen (each HTTP body is in flight up to 1 s). */
const BACKENDS = 24;

test('Redis frozen while backends publish 1 MB messages as fast as they are answered: the node stops writing to Redis, memory stays bounded', async (t) => {
  const redis = await RedisServer.start();
  const { file, apiUrl } = await seedEngineFolder({ engineYaml: meshYaml([redis.address], 'frozen:') });
  const engine = await startListening(file);
  try {
    const pid = engine.child.pid as number;
    await waitFor('the node is ready', async () => (await get(`${apiUrl}/readyz`)).status === 200, 20_000, 200);
    redis.freeze();
    const before = residentBytes(pid);
    let most = before;
    const body = JSON.stringify({ c: 'video:1', d: 'x'.repeat(1024 * 1024) });
    const messages: string[] = [];
    let answered = 0;
    // BACKENDS backends, each publishing again as soon as it is answered (as a backend retrying an E would), for 10 s.
    const until = Date.now() + 10_000;
    await Promise.all(Array.from({ length: BACKENDS }, async () => {
      while (Date.now() < until) {
        const answer = await post(`${apiUrl}/v1/mesh/publish`, body);
        answered++;
        if (answer.json.E) messages.push(answer.json.E.m);
        most = Math.max(most, residentBytes(pid));
      }
    }));
    t.diagnostic(`${answered} publishes answered; resident memory ${mib(before)} -> at most ${mib(most)}`);
    // The bodies in flight and their garbage cost ~130 MiB. Each publish held in the Redis connection
    // costs its message more than once: without a bound the node grew by over 400 MiB in these 10 s,
    // and on for as long as Redis stayed frozen.
    assert.ok(most - before < 256 * 1024 * 1024, `the node grew by ${mib(most - before)}`);
    assert.ok(messages.some((m) => /Redis is not reading/.test(m) && /delivered on this node only/.test(m)), messages.slice(-3).join('\n'));
    await assertHealthy(engine, apiUrl);
    redis.thaw();
    await waitFor('publishes reach Redis again', async () => (await post(`${apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'x' })).json.E === null, 20_000, 200);
  } finally {
    redis.thaw();
    await stopEngine(engine);
    await redis.stop();
  }
});

/** Descriptors the process `pid` holds. */
function descriptors(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Sends an upgrade request for `url` on a new socket that never closes; resolves once it is answered. */
async function stubbornUpgrade(url: URL): Promise<net.Socket> {
  // allowHalfOpen: the node's FIN does not end this side, so the client never closes its half.
  const socket = net.connect({ port: Number(url.port), host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  const answered = new Promise((resolve) => socket.once('data', resolve));
  socket.write(upgradeRequest(url));
  await withTimeout(answered, 10_000, 'no answer to the upgrade');
  return socket;
}

test('upgrades refused by the business server and by the API, from clients that never close, do not keep their descriptors', async () => {
  const { file, wsUrl, apiUrl } = await seedEngineFolder();
  const engine = await startListening(file);
  const sockets: net.Socket[] = [];
  try {
    const pid = engine.child.pid as number;
    const before = descriptors(pid);
    const refusedPaths = [new URL(wsUrl.replace('/barrage-videos', '/elsewhere')), new URL(`${apiUrl.replace(/^http/, 'ws')}/ws/v2`)];
    for (const url of refusedPaths) for (let i = 0; i < 50; i++) sockets.push(await stubbornUpgrade(url));
    // Each refusal used to end its half of the connection and wait for the client's, forever.
    await waitFor('the node holds no descriptor for the 100 refused upgrades', () => descriptors(pid) < before + 10, 20_000, 200);
    await assertHealthy(engine, apiUrl);
  } finally {
    for (const socket of sockets) socket.destroy();
    await stopEngine(engine);
  }
});

test('a connection context holds at most 16 MiB: conn.call past it answers 301, a script write past it is a Lua error, and room comes back', async () => {
  // A budget for the script that builds 18 MiB of strings in Fengari.
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, callBudget: 5000 }, async (node) => {
    const viewer = await TestClient.open(node.wsUrl);
    const [id] = JSON.parse(await viewer.request('return mix.websocket():client_id()')) as [string];
    const api = await ApiClient.open(node.apiUrl);
    const mebibyte = 'v'.repeat(1024 * 1024);
    // A backend setting a new key each time: without a cap, each call grew the node by its value for good.
    let refused: ApiFrame | null = null;
    let stored = 0;
    for (; stored < 40 && !refused; stored++) {
      const answer = await api.call('conn.call', { c: id, f: 'set_context_value', a: [`k${stored}`, mebibyte] });
      if (answer.E) refused = answer;
    }
    assert.equal(refused?.E?.c, 301, `${stored} values of 1 MiB were all stored`);
    assert.match(refused.E.m, /over its limit of 16777216/);
    assert.equal(stored, 16, 'the 16th value of 1 MiB is the one past 16 MiB');
    // The refused write changed nothing; replacing a value with one of the same size still fits.
    assert.equal(await viewer.request('local c = mix.websocket() return c:context_value("k15") == nil, #c:context_value("k0")'), `[true,${mebibyte.length}]`);
    assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context_value', a: ['k0', mebibyte] })).r, { s: true });
    // The script meets the same limit as a Lua error; set_context over it changes nothing either.
    const scriptWrite = await viewer.request('local c = mix.websocket() local ok, err = pcall(c.set_context_value, c, "big", string.rep("y", 2 * 1024 * 1024)) return ok, err');
    assert.match(scriptWrite, /^\[false,".*over its limit of 16777216"\]$/);
    const table = await viewer.request('local c = mix.websocket() local ok = pcall(c.set_context, c, { a = string.rep("z", 9 * 1024 * 1024), b = string.rep("z", 9 * 1024 * 1024) }) return ok, #c:context_value("k1")');
    assert.equal(table, `[false,${mebibyte.length}]`);
    // Removing values makes room again.
    assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context', a: [{ small: 1 }] })).r, { s: true });
    assert.deepEqual((await api.call('conn.call', { c: id, f: 'set_context_value', a: ['k99', mebibyte] })).r, { s: true });
    api.close();
    viewer.close();
  });
});

test('the contexts of all connections hold at most engine.maxContextBytes: conn.call past it answers 301, a script write is a Lua error, and replacing, removing and closing give the room back', async () => {
  const mebibyte = 'v'.repeat(1024 * 1024);
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, callBudget: 5000, engineYaml: '  maxContextBytes: 20971520' }, async (node) => {
    const viewers = [await TestClient.open(node.wsUrl), await TestClient.open(node.wsUrl), await TestClient.open(node.wsUrl)];
    const ids: string[] = [];
    for (const viewer of viewers) ids.push((JSON.parse(await viewer.request('return mix.websocket():client_id()')) as [string])[0]);
    const api = await ApiClient.open(node.apiUrl);
    const set = async (viewer: number, key: string, value: string | null) =>
      (await api.call('conn.call', { c: ids[viewer], f: 'set_context_value', a: [key, value] })).E ?? null;
    // Ten values of 1 MiB on one connection and nine on another: each context is under its 16 MiB.
    for (let i = 0; i < 10; i++) assert.equal(await set(0, `k${i}`, mebibyte), null);
    for (let i = 0; i < 9; i++) assert.equal(await set(1, `k${i}`, mebibyte), null);
    // The 20th MiB is past the node's 20 MiB (keys and value overhead count too).
    const refused = await set(1, 'k9', mebibyte);
    assert.equal(refused?.c, 301);
    assert.match(refused?.m ?? '', /^the node's connection contexts would hold \d+ bytes, over their limit of 20971520 \(engine\.maxContextBytes\)$/);
    assert.equal(await viewers[1].request('return mix.websocket():context_value("k9") == nil'), '[true]');
    // A script meets the same limit as a Lua error, on a connection that holds nothing yet.
    const scriptWrite = await viewers[2].request('local c = mix.websocket() local ok, err = pcall(c.set_context_value, c, "big", string.rep("y", 2 * 1024 * 1024)) return ok, err');
    assert.match(scriptWrite, /^\[false,".*over their limit of 20971520 \(engine\.maxContextBytes\)"\]$/);
    // Replacing a value with one of its size fits; removing one makes room on another connection.
    assert.equal(await set(0, 'k0', mebibyte), null);
    assert.equal(await set(0, 'k0', null), null);
    assert.equal(await set(1, 'k9', mebibyte), null);
    // set_context replaces: the nine values left on the first connection give their room back.
    assert.deepEqual((await api.call('conn.call', { c: ids[0], f: 'set_context', a: [{ small: 1 }] })).E, null);
    for (let i = 0; i < 8; i++) assert.equal(await set(2, `k${i}`, mebibyte), null);
    assert.equal(await set(0, 'more', mebibyte), null);
    assert.equal((await set(0, 'again', mebibyte))?.c, 301, 'the node is full again: 10 + 8 + 1 MiB held, with overhead past 20 MiB for one more');
    // A connection that closes gives back what its context held, once its on_close has run.
    viewers[1].close();
    await waitFor('the closed connection gave its context back', () => node.engine.contexts.held < 10 * 1024 * 1024, 20_000);
    assert.equal(await metric(node.apiUrl, /^connmix_context_bytes\b/), node.engine.contexts.held);
    for (let i = 0; i < 9; i++) assert.equal(await set(0, `n${i}`, mebibyte), null);
    // What the node counts is what the open contexts hold: with every connection gone, nothing.
    for (const viewer of viewers) viewer.close();
    await waitFor('every context was given back', () => node.engine.contexts.held === 0, 20_000);
    assert.equal(await metric(node.apiUrl, /^connmix_context_bytes\b/), 0);
    api.close();
  });
});

test('a long Origin against an origins glob with several stars is refused at once: matching does not backtrack', async () => {
  const { file, wsUrl, apiUrl } = await seedEngineFolder();
  fs.appendFileSync(file, "      origins: ['https://*.*.*.example.com']\n");
  const engine = await startListening(file);
  try {
    const url = new URL(wsUrl);
    const socket = net.connect(Number(url.port), '127.0.0.1');
    socket.on('error', () => undefined);
    const answer = new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
    // 8 KB of dots: a backtracking pattern (^https://.*\..*\..*\.example\.com$) took over two minutes on it, the node frozen.
    const origin = `https://${'.'.repeat(8000)}x`;
    socket.write(upgradeRequest(url).replace('\r\n\r\n', `\r\nOrigin: ${origin}\r\n\r\n`));
    assert.match(await withTimeout(answer, 20_000, 'no answer to the upgrade'), /^HTTP\/1\.1 403/);
    socket.destroy();
    await assertHealthy(engine, apiUrl);
  } finally {
    // Unfixed, the node is still matching: it could not answer SIGTERM for minutes.
    engine.child.kill('SIGKILL');
    await engine.exited;
  }
});

/** A script that reads a fixed-width text field the PHP way (`A` drops its trailing blanks) from every message. */
const UNPACK_FIELD = `
function on_handshake() end
function on_close() end
function on_message(msg)
  local conn = mix.websocket()
  local fields, err = mix.php_unpack("A*text", msg.data)
  if err then conn:send("error: " .. err) return end
  conn:send(tostring(#fields.text))
end
`;

test('php_unpack "A" on a message of 512 KB of blanks and one letter answers at once: trimming does not backtrack', async () => {
  const { file, wsUrl, apiUrl } = await seedEngineFolder();
  fs.writeFileSync(path.join(path.dirname(file), 'lua/entry.websocket.lua'), UNPACK_FIELD);
  const engine = await startListening(file);
  try {
    const client = await TestClient.open(wsUrl);
    assert.equal(await client.request('ann   '), '3');
    // /[\0 \t\r\n]+$/ tried every blank as a start and ran to the letter each time: minutes of frozen node.
    client.send(`${' '.repeat(512 * 1024)}x`);
    assert.equal((await client.next(20_000)).data, String(512 * 1024 + 1));
    await assertHealthy(engine, apiUrl);
    client.close();
  } finally {
    // Unfixed, the node is still trimming: it could not answer SIGTERM for minutes.
    engine.child.kill('SIGKILL');
    await engine.exited;
  }
});

test('a client flooding pings it never reads the pongs of is dropped; one splitting a message into 20,000 fragments is closed with 1008', async () => {
  // writeTimeout off: only the bound on unsent pongs (ws: 60) can end the flooder.
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, serverYaml: '      writeTimeout: 0' }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const flooder = await rawUpgrade(node);
    flooder.socket.pause();
    let closed = false;
    void flooder.closed.then(() => (closed = true));
    const pings = Buffer.concat(Array.from({ length: 1000 }, () => clientFrame(0x9, Buffer.alloc(125))));
    // At most 256 MiB of pings (about 2 million), 30 s: the node answers each with a pong it cannot send.
    const until = Date.now() + 30_000;
    for (let sent = 0; !closed && sent < 256 * 1024 * 1024 && Date.now() < until; sent += pings.length) {
      if (!flooder.socket.write(pings)) await Promise.race([new Promise((resolve) => flooder.socket.once('drain', resolve)), flooder.closed]);
    }
    await waitFor('the ping flooder is dropped', () => closed, 20_000);

    const splitter = await rawUpgrade(node);
    const fragments = [clientFrame(0x1, Buffer.from('a'), false)];
    for (let i = 0; i < 20_000; i++) fragments.push(clientFrame(0x0, Buffer.from('a'), false));
    splitter.socket.write(Buffer.concat(fragments));
    await withTimeout(splitter.closed, 20_000, 'the splitter was not closed');
    const close = splitter.after();
    assert.equal(close[0], 0x88, 'a close frame');
    assert.equal(close.readUInt16BE(2), 1008);
    assert.equal(await bystander.request('return "served"'), '["served"]');
    bystander.close();
  });
});

test('a client flooding on past maxMessagesPerSecond once closed for it is cut: the node stops reading its frames', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const bystander = await TestClient.open(node.wsUrl);
    const flooder = await rawUpgrade(node);
    let closed = false;
    void flooder.closed.then(() => (closed = true));
    const reads = () => metric(node.apiUrl, /^connmix_engine_servers_read_messages_total/);
    const burst = Buffer.concat(Array.from({ length: 5000 }, () => clientFrame(0x2, Buffer.from('x'))));
    // Unfixed, the node went on parsing every frame until the close handshake timed out (30 s), most
    // of a core: millions of frames read after the close frame. At most 10 million frames here.
    for (let sent = 1; !closed && sent <= 2000; sent++) {
      if (!flooder.socket.write(burst)) await Promise.race([new Promise((resolve) => flooder.socket.once('drain', resolve)), flooder.closed]);
      if (sent % 20 === 0) assert.ok(await reads() < 200_000, `the node read ${await reads()} messages of a connection it closed`);
    }
    await withTimeout(flooder.closed, 20_000, 'the flooder was not cut');
    // The echoes of its first messages, then the close frame (frames from the node are not masked).
    const close = serverFrames(flooder.after()).find((frame) => frame.opcode === 0x8)?.payload;
    assert.ok(close, 'a close frame');
    assert.equal(close.readUInt16BE(0), 1008);
    assert.equal(close.subarray(2).toString(), 'rate limit exceeded');
    assert.ok(await reads() < 200_000, `the node read ${await reads()} messages`);
    assert.equal(await bystander.request('return "served"'), '["served"]');
    bystander.close();
  });
});
