import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, freePort, TestClient, get, post } from './support/helpers';
import { viewer } from './support/mesh';
import { seedEngineFolder, startListening } from './support/engine-process';

const BIN = path.join(ROOT, 'bin/connmix.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI until it exits (or `until` matches stdout, then SIGTERM); bounded by `timeoutMs`. */
function runCli(args: string[], cwd: string, until?: RegExp, timeoutMs = 10_000): Promise<Run & { stop?: () => void }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`connmix did not finish within ${timeoutMs} ms: ${stdout} ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (until && until.test(stdout)) {
        until = undefined;
        resolve({ code: null, stdout, stderr, stop: () => child.kill('SIGTERM') });
      }
    });
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-cli-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const ENTRY = fs.readFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), 'utf8');

for (const command of ['dev', 'single']) test(`connmix ${command} serves the seed barrage and the center API, and prints one line per listener`, async () => {
  const [wsPort, apiPort, centerPort] = [await freePort(), await freePort(), await freePort()];
  const yaml = fs.readFileSync(path.join(ROOT, 'connmix.yaml'), 'utf8')
    .replace('port: 6790', `port: ${wsPort}`).replace('port: 6789', `port: ${apiPort}`).replace('port: 6787', `port: ${centerPort}`)
    .replace('bind: 0.0.0.0', 'bind: 127.0.0.1')
    .replace(/level: info/, 'level: debug');
  // Run from another folder: the entry path resolves against the yaml's folder.
  const dir = folder({ 'conf/connmix.yaml': yaml, 'conf/lua/entry.websocket.lua': ENTRY });
  const run = await runCli([command, '-f', 'conf/connmix.yaml'], dir, /center server listening/);
  try {
    assert.match(run.stdout, new RegExp(`websocket server .*entry\\.websocket\\.lua listening on 127\\.0\\.0\\.1:${wsPort}`));
    assert.match(run.stdout, new RegExp(`api server listening on 127\\.0\\.0\\.1:${apiPort}`));
    // The shipped yaml's center.apiServer: where CONNMIX's PHP SDK starts, listing this node's API.
    assert.match(run.stdout, new RegExp(`center server listening on 127\\.0\\.0\\.1:${centerPort}`));
    assert.deepEqual((await get(`http://127.0.0.1:${centerPort}/version`)).json, { apis: ['v1'] });
    assert.deepEqual((await get(`http://127.0.0.1:${centerPort}/v1/nodes`)).json.nodes.map((n: { api_server: string }) => n.api_server), [`127.0.0.1:${apiPort}`]);
    const viewer = await TestClient.open(`ws://127.0.0.1:${wsPort}/barrage-videos`);
    assert.equal(await viewer.request('{"op":"subscribe","channel":"100001@video"}'), '{"result":true}');
    const d = '{"event":"@video","data":{"uid":1001,"video_id":100001,"msg":"Hello,World!"}}';
    assert.deepEqual((await post(`http://127.0.0.1:${apiPort}/v1/mesh/publish`, { c: 'video:100001', d })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await viewer.next()).data, d);
    // The seed logs bad JSON at debug level (mix.log), then closes that connection.
    const bad = await TestClient.open(`ws://127.0.0.1:${wsPort}/barrage-videos`);
    bad.send('not json');
    await bad.waitClosed();
    run.stop?.();
    // Shutdown closes clients with 1001 so they reconnect elsewhere.
    assert.equal((await viewer.waitClosed()).code, 1001);
    // logging.filename (logs/connmix.log in the shipped yaml) resolves against the yaml's folder.
    const logged = fs.readFileSync(path.join(dir, 'conf/logs/connmix.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    assert.ok(logged.some((entry) => entry.level === 'debug' && typeof entry.time === 'string' && /json_decode error/.test(entry.msg)), JSON.stringify(logged));
  } finally {
    run.stop?.();
  }
});

test('a bad config exits with code 2 naming file, line and key', async () => {
  const dir = folder({
    'connmix.yaml': 'engine:\n  servers:\n    - port: 70000\n      entry: lua/entry.websocket.lua\n',
    'lua/entry.websocket.lua': ENTRY,
  });
  const run = await runCli(['dev', '-f', 'connmix.yaml'], dir);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /connmix\.yaml:3: engine\.servers\[0\]\.port: /);
});

test('a missing entry file and a missing hook exit with code 2', async () => {
  const missing = folder({ 'connmix.yaml': 'engine:\n  servers:\n    - port: 7001\n      entry: lua/nope.lua\n' });
  const run = await runCli(['dev', '-f', 'connmix.yaml'], missing);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /connmix\.yaml:4: engine\.servers\[0\]\.entry: entry file not found/);
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  const noHook = folder({
    'connmix.yaml': `engine:\n  apiServer:\n    port: ${apiPort}\n  servers:\n    - port: ${wsPort}\n      entry: lua/entry.websocket.lua\n`,
    'lua/entry.websocket.lua': 'function on_message(msg) end\nfunction on_close() end\n',
  });
  const hookRun = await runCli(['dev', '-f', 'connmix.yaml'], noHook);
  assert.equal(hookRun.code, 2);
  assert.match(hookRun.stderr, /hook 'on_handshake' is not defined/);
  const syntax = folder({
    'connmix.yaml': `engine:\n  apiServer:\n    port: ${apiPort}\n  servers:\n    - port: ${wsPort}\n      entry: lua/entry.websocket.lua\n`,
    'lua/entry.websocket.lua': 'function on_message(msg)\n  if then\nend\n',
  });
  const syntaxRun = await runCli(['dev', '-f', 'connmix.yaml'], syntax);
  assert.equal(syntaxRun.code, 2);
  assert.match(syntaxRun.stderr, /entry\.websocket\.lua:2: unexpected symbol near 'then'/);
});

test('usage errors exit with code 2 and print the usage, which names every command', async () => {
  const dir = folder({ 'connmix.yaml': '', 'lua/entry.websocket.lua': ENTRY });
  for (const args of [[], ['serve'], ['dev'], ['dev', '-f'], ['dev', '-f', 'connmix.yaml', '-p', 'zero'], ['center', '-p', '2']]) {
    const run = await runCli(args, dir);
    assert.equal(run.code, 2, args.join(' '));
    assert.match(run.stderr, /usage: connmix <dev\|single\|engine\|center>/);
    assert.match(run.stderr, /^ {2}center {3}/m);
  }
});

test('usage errors name the argument as it was typed', async () => {
  const dir = folder({ 'connmix.yaml': '', 'lua/entry.websocket.lua': ENTRY });
  const cases: Array<[string[], string]> = [
    [[], 'unknown command ""'],
    [['serve', '-f', 'connmix.yaml'], 'unknown command "serve"'],
    [['dev'], 'missing -f <connmix.yaml>'],
    [['dev', '-f'], 'unexpected argument "-f"'],
    [['dev', '--file'], 'unexpected argument "--file"'],
    [['dev', '-f', 'connmix.yaml', 'extra'], 'unexpected argument "extra"'],
    [['dev', '-f', 'connmix.yaml', '-x'], 'unexpected argument "-x"'],
    [['dev', '-f', 'connmix.yaml', '--verbose'], 'unexpected argument "--verbose"'],
    [['dev', '--', '-f', 'connmix.yaml'], 'unexpected argument "--"'],
    [['engine', '-f', 'connmix.yaml', '-p', 'zero'], '-p takes a whole number of at least 1, got "zero"'],
    [['engine', '-f', 'connmix.yaml', '--procs', '0'], '-p takes a whole number of at least 1, got "0"'],
  ];
  for (const [args, message] of cases) {
    const run = await runCli(args, dir);
    assert.equal(run.code, 2, args.join(' '));
    assert.equal(run.stderr.split('\n')[0], `connmix: ${message}`, args.join(' '));
  }
});

test('engine -p 2 on the memory broker (CONNMIX\'s CPU count) runs one process, warns once on stderr, and serves', async () => {
  const { file, wsUrl, apiUrl } = await seedEngineFolder();
  const engine = await startListening(file, 2);
  try {
    const warnings = engine.errors().split('\n').filter((line) => line.length > 0);
    assert.equal(warnings.length, 1, engine.errors());
    assert.match(warnings[0], /^connmix: warning: -p 2 runs one process: with engine\.mesh\.broker: memory, workers would not share channels .*set engine\.mesh\.broker: redis to run 2 workers$/);
    // One process, no workers: one line per listener, none prefixed by a worker.
    assert.equal([...engine.output().matchAll(/api server listening/g)].length, 1);
    assert.doesNotMatch(engine.output(), /worker \d/);
    const client = await viewer(wsUrl, 100001);
    assert.deepEqual((await post(`${apiUrl}/v1/mesh/publish`, { c: 'video:100001', d: 'one process' })).json, { E: null, r: { s: 1, f: 0 } });
    assert.equal((await client.next()).data, 'one process');
    client.close();
    engine.child.kill('SIGTERM');
    assert.equal(await engine.exited, 0);
  } finally {
    engine.child.kill('SIGKILL');
  }
});

test('a port in use exits with code 1 and says so', async () => {
  const net = await import('node:net');
  const blocker = net.createServer();
  const port = await freePort();
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
  try {
    const dir = folder({
      'connmix.yaml': `engine:\n  apiServer:\n    port: ${await freePort()}\n  servers:\n    - port: ${port}\n      bind: 127.0.0.1\n      entry: lua/entry.websocket.lua\n`,
      'lua/entry.websocket.lua': ENTRY,
    });
    const run = await runCli(['dev', '-f', 'connmix.yaml'], dir);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /EADDRINUSE/);
  } finally {
    blocker.close();
  }
});

test('Lua 5.3 operators in the entry or a module it requires exit with code 2, naming file and line', async () => {
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  const yaml = `engine:\n  apiServer:\n    port: ${apiPort}\n  servers:\n    - port: ${wsPort}\n      bind: 127.0.0.1\n      entry: lua/entry.websocket.lua\n`;
  const hooks = 'function on_handshake() end\nfunction on_close() end\n';
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ 'lua/entry.websocket.lua': `${hooks}function on_message(msg)\n  local half = #msg.data // 2\nend\n` },
      /entry\.websocket\.lua:4: '\/\/' \(floor division\) is Lua 5\.3 syntax; CONNMIX runs Lua 5\.1/],
    [{ 'lua/entry.websocket.lua': `${hooks}local flags = 6 & 3\nfunction on_message(msg) end\n` }, /entry\.websocket\.lua:3: '&'/],
    [{ 'lua/entry.websocket.lua': `${hooks}function on_message(msg) return ~1 end\n` }, /entry\.websocket\.lua:3: '~' \(bitwise xor\/not\)/],
    [{
      'lua/entry.websocket.lua': `local util = require("utils.flags")\n${hooks}function on_message(msg) end\n`,
      'lua/utils/flags.lua': '-- a // in a comment is fine, and so is "a | b" in a string\nlocal M = {}\nM.high = 256 >> 4\nreturn M\n',
    }, /utils\/flags\.lua:3: '>>' \(right shift\)/],
  ];
  for (const [files, expected] of cases) {
    const run = await runCli(['dev', '-f', 'connmix.yaml'], folder({ 'connmix.yaml': yaml, ...files }));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, expected);
  }
});
