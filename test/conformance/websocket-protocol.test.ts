import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { chromium, type Browser } from 'playwright-core';
import { ROOT, post, startNode, TestClient, type TestNode, type TestNodeOptions } from '../support/helpers';
import { shippedLua } from '../support/two-nodes';

// Reference 3.3 and 9.8: WebSocket spoken in Lua on a `protocol: socket` server, through the shipped
// lua/protocols/websocket.lua. The docs' entry.socket.lua, in every version that calls the module
// differently (kept unchanged under lua/examples/connmix-docs/, see its README), answers a ws client and
// headless Chromium with Hello,World!; an echo entry then checks fragments, ping, close, binary, what
// the mesh sends, the on_handshake/uri forms and handshakes that fail.

const DOCS = 'examples/connmix-docs';
const DOC_ENTRIES = fs.readdirSync(path.join(ROOT, 'lua', DOCS)).filter((file) => file.endsWith('.lua')).sort();
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)`);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

// Globals of the page, for the function that runs in the browser (tests compile without the DOM lib).
interface BrowserSocket {
  binaryType: string;
  onopen: () => void;
  onmessage: (event: { data: string }) => void;
  onerror: () => void;
  onclose: (event: { code: number }) => void;
  send(data: string | Uint8Array): void;
  close(): void;
}
type BrowserSocketClass = new (url: string) => BrowserSocket;

/**
 * Node options with a socket server on `entry` (a path under lua/), beside the shipped protocols and utils.
 * The call budget is not under test here: this file holds several engines and drives Chromium from one
 * process, and beside two busy CPU loops a pause of that process landed inside a hook call of over
 * 20,000 instructions, which the default 100 ms then stopped (`script timeout`, about 1 run in 4).
 */
function socketNode(entry: string, source: string, socketYaml = ''): TestNodeOptions {
  return {
    callBudget: 2000,
    lua: {
      'lua/protocols/websocket.lua': shippedLua('protocols/websocket.lua'),
      'lua/utils/prettyprint.lua': shippedLua('utils/prettyprint.lua'),
      [`lua/${entry}`]: source,
    },
    socketEntry: `lua/${entry}`,
    socketYaml,
  };
}

const PATH_CHAT = '      options:\n        - name: path\n          value: /chat\n';

const nodes: TestNode[] = [];
/** One node per docs entry, each serving it on its socket server with `path: /chat`. */
const docNodes = new Map<string, TestNode>();
let browser: Browser;

before(async () => {
  for (const file of DOC_ENTRIES) {
    const node = await startNode(socketNode(`${DOCS}/${file}`, shippedLua(`${DOCS}/${file}`), PATH_CHAT));
    nodes.push(node);
    docNodes.set(file, node);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  await Promise.all(nodes.map((node) => node.stop()));
});

test('the docs keep five versions of entry.socket.lua, each unchanged (the README names their commits)', () => {
  assert.deepEqual(DOC_ENTRIES, [
    'entry.socket.2022-08-05-uri.lua',
    'entry.socket.2022-08-05.lua',
    'entry.socket.2022-09-08.lua',
    'entry.socket.2023-04-25.en-us.lua',
    'entry.socket.2023-04-25.lua',
  ]);
  const readme = fs.readFileSync(path.join(ROOT, 'lua', DOCS, 'README.md'), 'utf8');
  for (const file of DOC_ENTRIES) {
    assert.match(shippedLua(`${DOCS}/${file}`), /^require\("utils\.prettyprint"\)\n.*local websocket = require\("protocols\.websocket"\)\n/s);
    assert.ok(readme.includes(file), `${file} has its provenance in the README`);
  }
});

for (const file of DOC_ENTRIES) {
  test(`docs ${file}: a ws client gets Hello,World! for each text and binary message`, async () => {
    const node = docNodes.get(file) as TestNode;
    const client = await TestClient.open(`ws://127.0.0.1:${node.socketPort}/chat`);
    for (const message of ['hi', 'again', 'x'.repeat(70_000)]) {
      const reply = await client.request(message);
      assert.equal(reply, 'Hello,World!');
    }
    client.send(Buffer.from([0, 1, 2, 255]), true);
    const reply = await client.next();
    assert.deepEqual([reply.data, reply.binary], ['Hello,World!', false]);
    client.close();
    assert.equal((await client.waitClosed()).code, 1005, 'the server echoes a close frame without a code');
  });

  test(`docs ${file}: headless Chromium gets Hello,World!`, async () => {
    const node = docNodes.get(file) as TestNode;
    const page = await browser.newPage();
    try {
      const replies = await page.evaluate((url: string) => new Promise<string[]>((resolve, reject) => {
        const ws = new (globalThis as unknown as { WebSocket: BrowserSocketClass }).WebSocket(url);
        const got: string[] = [];
        const timer = setTimeout(() => reject(new Error(`only ${got.length} replies`)), 10_000);
        ws.onopen = () => {
          ws.send('hello from the browser');
          ws.send(new Uint8Array([1, 2, 3]));
        };
        ws.onmessage = (event) => {
          got.push(event.data);
          if (got.length === 2) {
            clearTimeout(timer);
            ws.close();
            resolve(got);
          }
        };
        ws.onerror = () => reject(new Error('WebSocket error'));
      }), `ws://127.0.0.1:${node.socketPort}/chat`);
      assert.deepEqual(replies, ['Hello,World!', 'Hello,World!']);
    } finally {
      await page.close();
    }
  });
}

test('docs entries: the path comes from the server option (input(buf, on_handshake)) or the entry (input(buf, "/chat", on_handshake))', async () => {
  for (const file of DOC_ENTRIES) {
    const node = docNodes.get(file) as TestNode;
    await assert.rejects(TestClient.open(`ws://127.0.0.1:${node.socketPort}/other`), /HTTP 404/, file);
    const client = await TestClient.open(`ws://127.0.0.1:${node.socketPort}/chat?room=1`);
    assert.equal(await client.request('hi'), 'Hello,World!');
    client.close();
  }
});

// An entry that shows what the module hands to the entry: on_handshake's arguments, then each message's
// type and data, echoed with the same type; "sub:<channel>" subscribes.
const ECHO = `
local websocket = require("protocols.websocket")
function on_connect(client_id) end
function on_close(client_id, err) end
function on_handshake(client_id, headers, server)
    websocket.send_text(table.concat({ "handshake", client_id, headers["Sec-Websocket-Version"],
        headers["X-Custom"] or "-", server["Method"], server["RequestUri"], server["ServerProtocol"], server["Host"],
        tostring(server["RemoteAddr"] ~= "") }, " "))
end
function protocol_input(buf) return websocket.input(buf, INPUT_ARGS) end
function protocol_decode(str) return websocket.decode(str) end
function protocol_encode(str) return websocket.encode(str) end
function on_message(msg)
    if msg.type == "text" and msg.data:sub(1, 4) == "sub:" then
        local err = mix.socket.tcp():subscribe(msg.data:sub(5))
        websocket.send_text(err or "subscribed")
    elseif msg.type == "binary" then
        websocket.send_binary(msg.data)
    else
        websocket.send_text(msg.type .. ":" .. tostring(msg.finish) .. ":" .. msg.data)
    end
end`;

/** A node serving the echo entry; `inputArgs` are what protocol_input passes after buf. */
async function echoNode(inputArgs: string, socketYaml = ''): Promise<TestNode> {
  const node = await startNode(socketNode('entry.socket.lua', ECHO.replace('INPUT_ARGS', inputArgs), socketYaml));
  nodes.push(node);
  return node;
}

let echo: Promise<TestNode> | null = null;
function echoServer(): Promise<TestNode> {
  echo ??= echoNode('on_handshake', PATH_CHAT);
  return echo;
}

/** Opens a ws client on the echo server and takes the on_handshake greeting. */
async function echoClient(node: TestNode, urlPath = '/chat', options?: ConstructorParameters<typeof WebSocket>[2]): Promise<{ client: TestClient; greeting: string }> {
  const client = await TestClient.open(`ws://127.0.0.1:${node.socketPort}${urlPath}`, options);
  return { client, greeting: (await client.next()).data };
}

test('on_handshake(client_id, headers, server) runs once the handshake is answered, as on websocket servers', async () => {
  const node = await echoServer();
  const { client, greeting } = await echoClient(node, '/chat?x=1', { headers: { 'x-custom': 'yes' } });
  assert.match(greeting, new RegExp(`^handshake \\d+ 13 yes GET /chat\\?x=1 HTTP/1\\.1 127\\.0\\.0\\.1:${node.socketPort} true$`));
  assert.equal(await client.request('hi'), 'text:true:hi');
  client.close();
});

test('input(buf, uri, on_handshake): the entry\'s uri wins over the server option; a path ending in "/" is a prefix', async () => {
  const node = await echoNode('"/room/", on_handshake', PATH_CHAT);
  await assert.rejects(TestClient.open(`ws://127.0.0.1:${node.socketPort}/chat`), /HTTP 404/);
  const { client, greeting } = await echoClient(node, '/room/42');
  assert.match(greeting, /^handshake \d+ 13 - GET \/room\/42 /);
  client.close();
  // Without a uri nor a path option, any path is accepted; on_handshake is optional.
  const open = await echoNode('nil', '      options: []\n');
  const any = await TestClient.open(`ws://127.0.0.1:${open.socketPort}/whatever`);
  assert.equal(await any.request('hi'), 'text:true:hi');
  any.close();
});

test('a fragmented message arrives whole, a ping between its fragments is answered, and the first subprotocol is taken', async () => {
  const node = await echoServer();
  const { client } = await echoClient(node);
  const pongs: string[] = [];
  client.ws.on('pong', (data) => pongs.push(data.toString()));
  client.ws.send('frag', { fin: false });
  client.ws.ping('between');
  client.ws.send('men', { fin: false });
  client.ws.send('ted', { fin: true });
  assert.equal((await client.next()).data, 'text:true:fragmented');
  assert.deepEqual(pongs, ['between']);
  client.ws.ping('alone');
  assert.equal(await client.request('after'), 'text:true:after');
  assert.deepEqual(pongs, ['between', 'alone']);
  client.close();
  const offered = new WebSocket(`ws://127.0.0.1:${node.socketPort}/chat`, ['chat.v2', 'chat.v1']);
  await new Promise((resolve, reject) => {
    offered.once('open', resolve);
    offered.once('error', reject);
  });
  assert.equal(offered.protocol, 'chat.v2');
  offered.close();
});

test('binary messages keep their bytes both ways, across the 16- and 64-bit length forms', async () => {
  const node = await echoServer();
  const { client } = await echoClient(node);
  for (const size of [0, 1, 125, 126, 65535, 65536, 200_000]) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 7 + 3) % 256;
    client.send(bytes, true);
    const reply = await client.next(10_000);
    assert.equal(reply.binary, true, `size ${size}`);
    assert.ok(reply.raw.equals(bytes), `size ${size}: the bytes come back unchanged`);
  }
  client.close();
});

test('close: the server echoes the status code, then ends the connection', async () => {
  const node = await echoServer();
  const { client } = await echoClient(node);
  client.ws.close(4001, 'bye');
  assert.equal((await client.waitClosed()).code, 4001);
});

test('what the mesh publishes goes through protocol_encode: one text frame', async () => {
  const node = await echoServer();
  const { client } = await echoClient(node);
  assert.equal(await client.request('sub:room:9'), 'subscribed');
  assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room:9', d: 'news for room 9' })).json, { E: null, r: { s: 1, f: 0 } });
  const message = await client.next();
  assert.deepEqual([message.data, message.binary], ['news for room 9', false]);
  client.close();
});

test('a bad handshake or a bad frame closes only that connection', async () => {
  const node = await echoServer();
  const { client } = await echoClient(node);
  const raw = (request: string): Promise<string> => exchange(node.socketPort, Buffer.from(request, 'latin1'));
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const upgrade = `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n`;
  assert.match(await raw('GET /chat HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request\r\n[^]*not a WebSocket upgrade request\n$/);
  assert.match(await raw(`GET /nope HTTP/1.1\r\n${upgrade}Sec-WebSocket-Version: 13\r\n\r\n`), /^HTTP\/1\.1 404 Not Found\r\n/);
  assert.match(await raw(`POST /chat HTTP/1.1\r\n${upgrade}Sec-WebSocket-Version: 13\r\n\r\n`), /^HTTP\/1\.1 405 /);
  assert.match(await raw(`GET /chat HTTP/1.1\r\n${upgrade}Sec-WebSocket-Version: 8\r\n\r\n`), /^HTTP\/1\.1 426 [^]*Sec-WebSocket-Version: 13\r\n/);
  assert.match(await raw(`GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`), /^HTTP\/1\.1 400 [^]*Sec-WebSocket-Key/);
  assert.match(await raw(`garbage that is not HTTP\r\n\r\n`), /^HTTP\/1\.1 400 [^]*malformed request line/);
  assert.match(await raw(`GET /chat HTTP/1.1\r\n${'X-Filler: y\r\n'.repeat(1000)}`), /^HTTP\/1\.1 431 /);
  // RFC 6455's own example key, then a frame with a reserved bit set: 101, then a close frame 1002.
  const bad = await raw(`GET /chat HTTP/1.1\r\n${upgrade}Sec-WebSocket-Version: 13\r\n\r\n\xc1\x80abcd`);
  assert.match(bad, /^HTTP\/1\.1 101 Switching Protocols\r\n[^]*Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  // eslint-disable-next-line no-control-regex -- the bytes of a close frame (0x88, code 0x03ea) are what is checked
  assert.match(bad, /handshake \d+ 13[^]*\x88[^]\x03\xeareserved bits set/, 'a close frame with code 1002 follows');
  // The connection made before is untouched.
  assert.equal(await client.request('still here'), 'text:true:still here');
  client.close();
});

test('frames sent right behind the handshake, in the same packet, are not lost', async () => {
  const node = await echoServer();
  const masked = Buffer.from('hi').map((byte, i) => byte ^ [1, 2, 3, 4][i % 4]);
  const answer = await exchange(node.socketPort, Buffer.concat([
    Buffer.from('GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n'
      + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'),
    Buffer.from([0x81, 0x82, 1, 2, 3, 4]),
    masked,
    // eslint-disable-next-line no-control-regex -- a text frame's header bytes (0x81, length 12) are what is checked
  ]), /\x81\x0ctext:true:hi/);
  // eslint-disable-next-line no-control-regex -- the same frame header, after the 101 answer
  assert.match(answer, /^HTTP\/1\.1 101 [^]*\x81\x0ctext:true:hi$/);
});

/**
 * Writes `data` on a raw TCP connection and collects the answer (as latin1) until the server closes
 * or the answer matches `until`. After `openMs` it gives up: with `stillOpen` set it then resolves to
 * that text, otherwise it fails.
 */
function exchange(port: number, data: Buffer, until?: RegExp, openMs = 10_000, stillOpen?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(data));
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      if (stillOpen !== undefined) resolve(stillOpen);
      else reject(new Error(`no end of answer within ${openMs} ms: ${JSON.stringify(answer)}`));
    }, openMs);
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (until?.test(answer)) finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', finish);
  });
}

test('random bytes after a handshake close only that connection; the server goes on', async () => {
  const node = await echoServer();
  const { client } = await echoClient(node);
  const handshake = Buffer.from('GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  // A fixed seed, so a failure replays.
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 30; round++) {
    const junk = Buffer.alloc(1 + Math.floor(random() * 300));
    for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(random() * 256);
    // Either the server closes it, or it waits for the rest of a frame that never comes: both are fine.
    const answer = await exchange(node.socketPort, Buffer.concat([handshake, junk]), undefined, 300, 'still open');
    assert.ok(answer === 'still open' || answer.startsWith('HTTP/1.1 101 '), `round ${round}: ${JSON.stringify(answer.slice(0, 60))}`);
  }
  assert.equal(await client.request('after the junk'), 'text:true:after the junk');
  assert.ok(!node.logs.some((line) => /native error|Lua hook failed/.test(line)), 'no hook failed on junk');
  client.close();
});
