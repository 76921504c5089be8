import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/config';
import { Engine } from '../src/engine';
import { memoryLogger } from './support/lua-harness';
import { withNode, get, freePort, waitFor, EVAL, ROOT, type Json } from './support/helpers';
import { ApiClient } from './support/api-client';
import { ACCESS_USERS, basic } from './support/access-users';

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; json: Json; challenge: string | null }> {
  const response = await fetch(url, init);
  return { status: response.status, json: await response.json(), challenge: response.headers.get('www-authenticate') };
}

const publish = (headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify({ c: 'news', d: 'x' }),
});

test('access.users: Basic auth, roles and host globs on the HTTP API', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, accessYaml: ACCESS_USERS }, async (node) => {
    const anonymous = await call(`${node.apiUrl}/v1/mesh/publish`, publish());
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.json.E.c, 401);
    assert.match(anonymous.challenge ?? '', /^Basic realm=/);
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', 'wrong')))).status, 401);
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('nobody', 's3cret')))).status, 401);
    // A prefix, an extension or an empty password of the right account is no match either.
    for (const password of ['s3cre', 's3cret!', 's3cret\u0000', '', 'S3CRET']) {
      assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', password)))).status, 401, JSON.stringify(password));
    }
    const readOnly = await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('console', 'read-only')));
    assert.equal(readOnly.status, 403);
    assert.match(readOnly.json.E.m, /lacks the write role/);
    assert.deepEqual((await call(`${node.apiUrl}/version`, { headers: basic('console', 'read-only') })).json, { apis: ['v1'] });
    assert.equal((await call(`${node.apiUrl}/version`)).status, 401);
    const wrongHost = await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('remote', 'pw')));
    assert.equal(wrongHost.status, 403);
    assert.match(wrongHost.json.E.m, /may not connect from 127\.0\.0\.1/);
    assert.deepEqual((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', 's3cret')))).json, { E: null, r: { s: 0, f: 0 } });
  });
});

test('access.users guards the /ws/v1 upgrade', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, accessYaml: ACCESS_USERS }, async (node) => {
    await assert.rejects(ApiClient.open(node.apiUrl), /HTTP 401/);
    await assert.rejects(ApiClient.open(node.apiUrl, basic('console', 'read-only')), /HTTP 403/);
    const api = await ApiClient.open(node.apiUrl, basic('backend', 's3cret'));
    assert.deepEqual((await api.call('mesh.publish', { c: 'news', d: 'x' })).r, { s: 0, f: 0 });
    api.close();
  });
});

test('engine.apiServer.username and password, as CONNMIX docs of 2022 set them, close the HTTP API and /ws/v1 to everyone else', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, apiYaml: '    username: backend\n    password: s3cret\n' }, async (node) => {
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish())).status, 401);
    assert.equal((await call(`${node.apiUrl}/version`)).status, 401);
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', 'wrong')))).status, 401);
    assert.deepEqual((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', 's3cret')))).json, { E: null, r: { s: 0, f: 0 } });
    await assert.rejects(ApiClient.open(node.apiUrl), /HTTP 401/);
    const api = await ApiClient.open(node.apiUrl, basic('backend', 's3cret'));
    assert.deepEqual((await api.call('mesh.publish', { c: 'news', d: 'x' })).r, { s: 0, f: 0 });
    api.close();
  });
});

test('an open API on a non-loopback address is logged as a warning; loopback is quiet', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, apiBind: '0.0.0.0' }, async (node) => {
    assert.ok(node.logs.some((line) => line.includes('"level":"warn"') && line.includes('the API is open')));
  });
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    assert.ok(!node.logs.some((line) => line.includes('the API is open')));
  });
});

test('access and logging.level reload without a restart; other keys say they need one', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const file = path.join(node.dir, 'connmix.yaml');
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish())).status, 200);
    const original = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, original.replace('access:\n  users:\n', `access:\n  users:\n${ACCESS_USERS}\n`).replace('level: debug', 'level: error'));
    await waitFor('access reload', async () => (await call(`${node.apiUrl}/v1/mesh/publish`, publish())).status === 401, 20_000);
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', 's3cret')))).status, 200);
    assert.equal(node.engine.log.enabled('debug'), false);
    assert.equal(node.engine.log.enabled('error'), true);
    // A broken edit keeps the running config.
    fs.writeFileSync(file, 'engine: [unclosed');
    await waitFor('reload failure log', () => node.logs.some((line) => line.includes('config reload failed')), 20_000);
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('backend', 's3cret')))).status, 200);
    fs.writeFileSync(file, original.replace('readTimeout: 60', 'readTimeout: 30'));
    await waitFor('restart warning', () => node.logs.some((line) => line.includes('need a restart') && line.includes('engine.apiServer.readTimeout')), 20_000);
    assert.equal((await call(`${node.apiUrl}/v1/mesh/publish`, publish())).status, 200);
  });
});

test('access roles: read opens /metrics and the GET routes, write alone does not', async () => {
  const users = `${ACCESS_USERS}
    - username: writer
      password: w
      roles: [write]
      host: '*'`;
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL }, accessYaml: users }, async (node) => {
    const metrics = await fetch(`${node.apiUrl}/metrics`, { headers: basic('console', 'read-only') });
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /connmix_engine_servers_clients/);
    assert.equal((await fetch(`${node.apiUrl}/metrics`)).status, 401);
    const writerGet = await call(`${node.apiUrl}/v1/nodes`, { headers: basic('writer', 'w') });
    assert.equal(writerGet.status, 403);
    assert.match(writerGet.json.E.m, /lacks the read role/);
    assert.equal((await fetch(`${node.apiUrl}/metrics`, { headers: basic('writer', 'w') })).status, 403);
    assert.deepEqual((await call(`${node.apiUrl}/v1/mesh/publish`, publish(basic('writer', 'w')))).json, { E: null, r: { s: 0, f: 0 } });
  });
});

test('the API and the center API listen on 127.0.0.1 when the yaml names no address', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-bind-'));
  fs.mkdirSync(path.join(dir, 'lua'));
  fs.copyFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), path.join(dir, 'lua/entry.websocket.lua'));
  const [apiPort, wsPort, centerPort] = [await freePort(), await freePort(), await freePort()];
  const yaml =
    `center:\n  apiServer: { port: ${centerPort} }\n` +
    `engine:\n  apiServer: { port: ${apiPort} }\n  servers:\n    - { port: ${wsPort}, bind: 127.0.0.1, entry: lua/entry.websocket.lua, byteCodeExpires: 0 }\n`;
  const { log, lines } = memoryLogger();
  const engine = new Engine(parseConfig(yaml, path.join(dir, 'connmix.yaml'), { warn: () => undefined }), { log, centerApi: true });
  try {
    const listeners = await engine.start();
    assert.equal(listeners.find((listener) => listener.name === 'api server')?.address, `127.0.0.1:${apiPort}`);
    assert.equal(listeners.find((listener) => listener.name === 'center server')?.address, `127.0.0.1:${centerPort}`);
    assert.equal((await get(`http://127.0.0.1:${apiPort}/healthz`)).status, 200);
    assert.equal((await get(`http://127.0.0.1:${centerPort}/version`)).status, 200);
    assert.ok(!lines.some((line) => /the API is open|center API is open/.test(line)), lines.join('\n'));
  } finally {
    await engine.stop();
  }
});
