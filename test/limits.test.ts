import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { withNode, TestClient, post, get, metric, EVAL, waitFor } from './support/helpers';

const lua = { 'lua/entry.websocket.lua': EVAL };

test('maxConnections refuses upgrades past the limit with 503, and counts them', async () => {
  await withNode({ lua, serverYaml: '      maxConnections: 2' }, async (node) => {
    const [a, b] = [await TestClient.open(node.wsUrl), await TestClient.open(node.wsUrl)];
    await assert.rejects(TestClient.open(node.wsUrl), /HTTP 503/);
    assert.equal(await metric(node.apiUrl, /^connmix_connections_refused_total\{reason="max_connections"/), 1);
    a.close();
    await a.waitClosed();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const c = await TestClient.open(node.wsUrl);
    b.close();
    c.close();
  });
});

test('maxConnectionsPerIp refuses a client IP past its share with 429', async () => {
  await withNode({ lua, serverYaml: '      maxConnectionsPerIp: 1' }, async (node) => {
    const first = await TestClient.open(node.wsUrl);
    await assert.rejects(TestClient.open(node.wsUrl), /HTTP 429/);
    // Another loopback address is another client.
    const other = await TestClient.open(node.wsUrl, { localAddress: '127.0.0.2' });
    assert.equal(await metric(node.apiUrl, /^connmix_connections_refused_total\{reason="max_connections_per_ip"/), 1);
    first.close();
    other.close();
  });
});

test('origins: only listed Origin values may connect', async () => {
  await withNode({ lua, serverYaml: "      origins: ['https://video.example.com', 'https://*.example.org']" }, async (node) => {
    await assert.rejects(TestClient.open(node.wsUrl), /HTTP 403/);
    await assert.rejects(TestClient.open(node.wsUrl, { origin: 'https://evil.example.net' }), /HTTP 403/);
    const ok = await TestClient.open(node.wsUrl, { origin: 'https://video.example.com' });
    const sub = await TestClient.open(node.wsUrl, { origin: 'https://cdn.example.org' });
    assert.equal(await ok.request('return 1'), '[1]');
    assert.equal(await metric(node.apiUrl, /^connmix_connections_refused_total\{reason="origin"/), 2);
    ok.close();
    sub.close();
  });
});

test('maxChannelsPerConnection: subscribe past the limit returns an error and subscribes nothing', async () => {
  await withNode({ lua, serverYaml: '      maxChannelsPerConnection: 3' }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('return tostring(mix.websocket():subscribe("a", "b"))'), '["nil"]');
    const [err] = JSON.parse(await client.request('return mix.websocket():subscribe("c", "d")'));
    assert.match(err, /too many channels: a connection may subscribe to 3/);
    assert.equal(await client.request('return tostring(mix.websocket():subscribe("a", "c"))'), '["nil"]');
    assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'd', d: 'x' })).json.r, { s: 0, f: 0 });
    assert.equal(await metric(node.apiUrl, /^connmix_subscribes_refused_total\{/), 1);
    client.close();
  });
});

test('maxMessagesPerSecond closes a flooding connection with 1008; others are unaffected', async () => {
  await withNode({ lua, serverYaml: '      maxMessagesPerSecond: 20' }, async (node) => {
    const calm = await TestClient.open(node.wsUrl);
    const flood = await TestClient.open(node.wsUrl);
    for (let i = 0; i < 60; i++) flood.send('return 0');
    const { code, reason } = await flood.waitClosed();
    assert.equal(code, 1008);
    assert.equal(reason, 'rate limit exceeded');
    assert.equal(await calm.request('return "calm"'), '["calm"]');
    assert.equal(await metric(node.apiUrl, /^connmix_closes_total\{code="1008"/), 1);
    calm.close();
  });
});

test('handshakeTimeout drops a client that never finishes its upgrade request', async () => {
  await withNode({ lua, serverYaml: '      handshakeTimeout: 1' }, async (node) => {
    const socket = net.connect(Number(new URL(node.wsUrl).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /barrage-videos HTTP/1.1\r\nHost: x\r\n');
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    assert.ok(Date.now() - started < 15_000, 'closed by the 1 s handshake timeout, not left open');
    assert.equal(await metric(node.apiUrl, /^connmix_connections_refused_total\{.*reason="handshake_timeout"/), 1);
  });
});

test('a slow consumer skips messages past softBufferedBytes: memory stays bounded, others keep up', async () => {
  await withNode({ lua, serverYaml: '      softBufferedBytes: 65536\n      maxBufferedBytes: 67108864\n      writeTimeout: 0' }, async (node) => {
    const fast = await TestClient.open(node.wsUrl);
    const slow = await TestClient.open(node.wsUrl);
    for (const client of [fast, slow]) assert.equal(await client.request('return tostring(mix.websocket():subscribe("flood"))'), '["nil"]');
    const [slowId] = JSON.parse(await slow.request('return mix.websocket():client_id()'));
    const serverSide = node.engine.hub.connection(slowId) as unknown as { socket: net.Socket };
    (slow.ws as unknown as { _socket: net.Socket })._socket.pause();
    const chunk = 'q'.repeat(64 * 1024);
    let failed = 0;
    let mostBuffered = 0;
    for (let i = 0; i < 300; i++) {
      const { r } = (await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'flood', d: chunk })).json;
      failed += r.f;
      mostBuffered = Math.max(mostBuffered, serverSide.socket.writableLength);
      assert.equal((await fast.next()).data.length, chunk.length);
    }
    assert.ok(failed > 200, `the slow consumer skipped ${failed} of 300`);
    // 300 x 64 KiB would be ~19 MiB if buffered; skipping keeps the server at its soft limit plus one message.
    assert.ok(mostBuffered <= 65536 + chunk.length + 16, `buffered ${mostBuffered} bytes`);
    assert.ok((await metric(node.apiUrl, /^connmix_drops_total\{reason="slow_consumer"/)) > 200);
    assert.equal(slow.ws.readyState, slow.ws.OPEN);
    fast.close();
    slow.ws.terminate();
  });
});

test('metrics: CONNMIX names and ours; health and readiness probes need no credentials', async () => {
  await withNode({ lua, accessYaml: "    - { username: u, password: p, roles: [read, write], host: '*' }" }, async (node) => {
    assert.deepEqual((await get(`${node.apiUrl}/healthz`)).json, { ok: true });
    const ready = await get(`${node.apiUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json, { ready: true });
    assert.equal((await fetch(`${node.apiUrl}/metrics`)).status, 401);
  });
  await withNode({ lua }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('return tostring(mix.websocket():subscribe("m"))'), '["nil"]');
    await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'm', d: 'x' });
    await client.next();
    await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'm d', d: 'x' });
    client.send('error("boom")');
    await client.waitClosed();
    const text = await (await fetch(`${node.apiUrl}/metrics`)).text();
    const samples: Array<[string, Record<string, string>]> = [
      ['connmix_engine_servers_clients', { protocol: 'websocket' }],
      ['connmix_engine_servers_read_messages_total', { protocol: 'websocket' }],
      ['connmix_engine_servers_send_messages_total', { protocol: 'websocket' }],
      ['connmix_engine_servers_send_duration_seconds', { quantile: '0.5', protocol: 'websocket', scenario: 'local' }],
      ['connmix_lua_hook_duration_seconds_bucket', { le: '0.1', hook: 'on_message' }],
      ['connmix_lua_hook_errors_total', { hook: 'on_message', kind: 'error' }],
      ['connmix_broker_duration_seconds_count', { op: 'publish' }],
      ['connmix_api_requests_total', { route: '/v1/mesh/publish', code: '0' }],
      ['connmix_api_requests_total', { route: '/v1/mesh/publish', code: '101' }],
      ['connmix_closes_total', { code: '1011' }],
      ['connmix_broker_ready', {}],
      ['nodejs_eventloop_lag_seconds', {}],
      ['process_resident_memory_bytes', {}],
    ];
    const lines = text.split('\n');
    for (const [name, labels] of samples) {
      const found = lines.some((line) => line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)));
      assert.ok(found, `missing ${name} ${JSON.stringify(labels)}`);
    }
    assert.ok(lines.some((line) => /^connmix_engine_servers_send_messages_total\{.*protocol="websocket".*\} 2$/.test(line) && /node="[a-z0-9]+"/.test(line)));
  });
});

test('engine.luavm.limits caps what one Lua library call may build', async () => {
  await withNode({ lua, engineYaml: '    limits:\n      maxStringSize: 1024\n      maxItems: 50' }, async (node) => {
    const client = await TestClient.open(node.wsUrl);
    assert.equal(await client.request('return #string.rep("x", 1024)'), '[1024]');
    const [ok, err] = JSON.parse(await client.request('return pcall(string.rep, "x", 1025)'));
    assert.equal(ok, false);
    assert.match(err, /1024/);
    const [okItems] = JSON.parse(await client.request('local t = {} for i = 1, 60 do t[i] = "a" end return pcall(table.concat, t)'));
    assert.equal(okItems, false);
    client.close();
  });
});

test('maxConnectionsPerIp also bounds the idle sockets one IP holds before its upgrade request', async () => {
  await withNode({ lua, serverYaml: '      maxConnectionsPerIp: 2' }, async (node) => {
    const port = Number(new URL(node.wsUrl).port);
    const connect = (localAddress: string) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      const state = { socket, closed: false };
      socket.on('error', () => undefined);
      socket.on('close', () => (state.closed = true));
      return state;
    };
    const idle = [connect('127.0.0.1'), connect('127.0.0.1')];
    await waitFor('the node counts both', async () => (await metric(node.apiUrl, /^connmix_connections_refused_total\{reason="max_connections_per_ip"/)) === 0 && idle.every((s) => s.socket.readyState === 'open'));
    const third = connect('127.0.0.1');
    await waitFor('a third idle socket from the same IP is closed at once', () => third.closed, 20_000);
    assert.equal(await metric(node.apiUrl, /^connmix_connections_refused_total\{reason="max_connections_per_ip"/), 1);
    // Another IP is another client, and the IP's share comes back when its idle sockets go.
    const other = await TestClient.open(node.wsUrl, { localAddress: '127.0.0.2' });
    for (const { socket } of idle) socket.destroy();
    const again = await waitFor('the IP may connect again', async () => TestClient.open(node.wsUrl), 20_000);
    assert.equal(idle.every((s) => s.closed), true);
    other.close();
    again.close();
  });
});
