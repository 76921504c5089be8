import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, defaultConfig, loadConfig, parseConfig } from '../src/config';
import type { Config } from '../src/config';

const ENTRY = 'lua/entry.websocket.lua';

const tempDirs: string[] = [];
after(() => tempDirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** A fresh folder holding `connmix.yaml` and the given (empty) files; returns the yaml's path. */
function project(yaml: string, files: string[] = [ENTRY]): string {
  const dir = tempDir('connmix-config-');
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), '-- test\n');
  }
  const file = path.join(dir, 'connmix.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

/** Joins lines so that the test can name line numbers by position: lines[0] is line 1. */
function yaml(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

function load(text: string, files?: string[]): { config: Config; file: string; warnings: string[] } {
  const file = project(text, files);
  const warnings: string[] = [];
  const config = loadConfig(file, { warn: (message) => warnings.push(message) });
  return { config, file, warnings };
}

/** Asserts that loading `text` fails at `key` on `line`, with a reason matching `reason`. */
function rejects(text: string, key: string, line: number, reason: RegExp, files?: string[]): ConfigError {
  const file = project(text, files);
  let caught: unknown;
  try {
    loadConfig(file, { warn: () => undefined });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.file, file);
  assert.equal(caught.key, key);
  assert.equal(caught.line, line, caught.message);
  assert.match(caught.reason, reason);
  assert.equal(caught.message, `${file}:${line}: ${key}: ${caught.reason}`);
  return caught;
}

/** The current connmix.yaml sample of CONNMIX's docs (configuration-file-details), verbatim. */
const CONNMIX_SAMPLE = yaml(
  'logging:',
  '  filename: logs/connmix.log',
  '  maxFiles: 7',
  '  level: debug            # debug|info|warn|error — takes effect immediately (hot)',
  'prometheus:',
  '  summary: { maxAge: 600, ageBuckets: 5, bufCap: 500 }',
  'licenses:',
  '  activationCode:          # not hot',
  '  server: https://connmix.com   # hot (per license page)',
  'access:                    # hot ("takes effect immediately")',
  '  users:',
  '#   - username: user',
  '#     password: pass',
  '#     roles: [read, write]',
  "#     host: '*'            # glob like 172.*.*.*",
  'center:',
  '  registry:  { port: 6786, bind: 0.0.0.0 }',
  '  apiServer: { port: 6787, bind: 0.0.0.0 }',
  'engine:',
  '  centerRegistry: localhost:6786',
  '  meshPoint: { port: 6788, bind: 0.0.0.0 }',
  '  apiServer:',
  '    port: 6789',
  '    bind: 0.0.0.0',
  '    readBufferSize: 40096   # new connections only (sic, 40096 not 4096)',
  '    writeBufferSize: 40096  # new connections only',
  '    readTimeout: 60         # seconds, new connections only',
  '    writeTimeout: 60        # seconds, new connections only',
  '  luavm:',
  '    queue: { topicSize: 2000, maxTopics: 100 }',
  '    redis:',
  '      - { name: default, addr: localhost:6379, password: , db: 0, poolSize: 20,',
  '          minIdleConns: 10, maxConnAge: 0, idleTimeout: 300 }',
  '  servers:',
  '    - port: 6790',
  '      bind: 0.0.0.0',
  '      protocol: websocket   # websocket | socket',
  '      options:',
  '        - { name: path, value: /chat }',
  '      entry: lua/entry.websocket.lua',
  '      byteCodeExpires: 10   # seconds; 0 disables Lua hot reload',
  '      readBufferSize: 1024  # new connections only',
  '      writeBufferSize: 1024 # new connections only',
  '      readTimeout: 60       # new connections only',
  '      writeTimeout: 10      # new connections only',
);

/** What the loader makes of the defaults for a yaml in `dir`: paths made absolute. */
function resolvedDefaults(file: string): Config {
  const expected = defaultConfig();
  const dir = path.dirname(file);
  expected.file = file;
  expected.logging.filename = path.join(dir, 'logs/connmix.log');
  expected.engine.servers[0].entry = path.join(dir, ENTRY);
  return expected;
}

test('the CONNMIX sample yaml loads with the shipped values', () => {
  const { config, file, warnings } = load(CONNMIX_SAMPLE);
  assert.deepEqual(warnings, []);
  // The sample names 0.0.0.0 for the API; our default is loopback.
  const expected = resolvedDefaults(file);
  expected.engine.apiServer.bind = '0.0.0.0';
  expected.center.apiServer.bind = '0.0.0.0';
  assert.deepEqual(config, expected);
  assert.equal(config.licenses.activationCode, '');
  assert.equal(config.engine.luavm.redis[0].password, '');
  assert.deepEqual(config.access.users, []);
  assert.equal(config.engine.apiServer.readBufferSize, 40096);
});

test('an empty file gives every default', () => {
  const { config, file, warnings } = load('');
  assert.deepEqual(warnings, []);
  assert.deepEqual(config, resolvedDefaults(file));
});

test('a file of comments only gives every default', () => {
  const { config, file } = load('# nothing yet\n');
  assert.deepEqual(config, resolvedDefaults(file));
});

test('defaultConfig returns a fresh object each time', () => {
  const a = defaultConfig();
  a.engine.servers[0].options.push({ name: 'x', value: 'y' });
  assert.equal(defaultConfig().engine.servers[0].options.length, 1);
});

test('a server entry is merged over the server defaults field by field', () => {
  const { config, file } = load(
    yaml(
      'engine:',
      '  servers:',
      '    - port: 7000',
      '    - port: "7001"',
      '      protocol: socket',
      '      readTimeout: 0',
      '      options:',
      '        - { name: retries, value: 3 }',
      '        - { name: empty, value: }',
    ),
  );
  const [first, second] = config.engine.servers;
  assert.deepEqual(first, { ...defaultConfig().engine.servers[0], port: 7000, entry: path.join(path.dirname(file), ENTRY) });
  assert.equal(second.port, 7001);
  assert.equal(second.protocol, 'socket');
  assert.equal(second.readTimeout, 0);
  assert.equal(second.writeTimeout, 10);
  assert.equal(second.maxMessageSize, 1048576);
  assert.equal(second.maxBufferedBytes, 4194304);
  assert.deepEqual(second.options, [
    { name: 'retries', value: '3' },
    { name: 'empty', value: '' },
  ]);
});

test('nested sections merge over their defaults key by key', () => {
  const { config } = load(
    yaml(
      'logging:',
      '  level: warn',
      'engine:',
      '  apiServer: { port: 9000 }',
      '  luavm:',
      '    queue: { maxTopics: 7 }',
      '    callBudget: 250',
    ),
  );
  assert.equal(config.logging.level, 'warn');
  assert.equal(config.logging.maxFiles, 7);
  assert.deepEqual(config.engine.apiServer, { ...defaultConfig().engine.apiServer, port: 9000 });
  assert.deepEqual(config.engine.luavm.queue, { topicSize: 2000, maxTopics: 7, topicBytes: 67108864, maxBytes: 268435456 });
  assert.equal(config.engine.luavm.callBudget, 250);
  assert.deepEqual(config.engine.luavm.redis, defaultConfig().engine.luavm.redis);
});

test('engine.luavm.limits: waitTimeout and maxMemory load over their defaults; bad values name file, line and key', () => {
  const { config } = load(yaml('engine:', '  luavm:', '    limits:', '      waitTimeout: 5', '      maxMemory: 67108864'));
  assert.deepEqual(config.engine.luavm.limits, { ...defaultConfig().engine.luavm.limits, waitTimeout: 5, maxMemory: 67108864 });
  assert.equal(defaultConfig().engine.luavm.limits.waitTimeout, 60);
  assert.equal(defaultConfig().engine.luavm.limits.maxMemory, 256 * 2 ** 20);
  rejects(yaml('engine:', '  luavm:', '    limits:', '      waitTimeout: 0'), 'engine.luavm.limits.waitTimeout', 4, /positive integer, got 0/);
  rejects(yaml('engine:', '  luavm:', '    limits:', '      maxMemory: 1.5'), 'engine.luavm.limits.maxMemory', 4, /positive integer, got 1.5/);
});

test('access users load; a missing access key or null users means none', () => {
  const { config } = load(
    yaml(
      'access:',
      '  users:',
      '    - username: console',
      '      password: 007',
      '      roles: [read]',
      "      host: '172.*.*.*'",
      '    - { username: app, password: secret, roles: [read, write] }',
    ),
  );
  assert.deepEqual(config.access.users, [
    { username: 'console', password: '007', roles: ['read'], host: '172.*.*.*' },
    { username: 'app', password: 'secret', roles: ['read', 'write'], host: '*' },
  ]);
  assert.deepEqual(load('logging: { level: info }\n').config.access.users, []);
  assert.deepEqual(load('access:\n  users:\n').config.access.users, []);
});

test('the engine.mesh extension parses, including a cluster addrs list', () => {
  const { config } = load(
    yaml(
      'engine:',
      '  mesh:',
      '    broker: redis',
      '    redis:',
      '      addrs: [10.0.0.1:7000, 10.0.0.2:7001, "[::1]:7002"]',
      '      cluster: true',
      '      password: pw',
      '      prefix: "barrage:"',
    ),
  );
  assert.deepEqual(config.engine.mesh, {
    broker: 'redis',
    redis: { addrs: ['10.0.0.1:7000', '10.0.0.2:7001', '[::1]:7002'], cluster: true, password: 'pw', db: 0, prefix: 'barrage:', auditInterval: 30 },
  });
});

test('engine.mesh.redis.auditInterval: seconds between subscription audits, 0 for none, never negative', () => {
  const read = (value: string): number => load(yaml('engine:', '  mesh:', '    redis:', `      auditInterval: ${value}`)).config.engine.mesh.redis.auditInterval;
  assert.equal(read('0.5'), 0.5);
  assert.equal(read('0'), 0);
  rejects(yaml('engine:', '  mesh:', '    redis:', '      auditInterval: -1'), 'engine.mesh.redis.auditInterval', 4, /non-negative number, got -1/);
});

test('logging.filename is made absolute against the yaml folder; an absolute one is kept', () => {
  const { config, file } = load('logging: { filename: var/app.log }\n');
  assert.equal(config.logging.filename, path.join(path.dirname(file), 'var/app.log'));
  const absolute = path.join(os.tmpdir(), 'elsewhere.log');
  assert.equal(load(`logging: { filename: ${absolute} }\n`).config.logging.filename, absolute);
});

test('parseConfig reads text and resolves paths against the given file', () => {
  const file = project('');
  const config = parseConfig('engine: { servers: [{ port: 6800 }] }\n', file);
  assert.equal(config.file, file);
  assert.equal(config.engine.servers[0].port, 6800);
  assert.equal(config.engine.servers[0].entry, path.join(path.dirname(file), ENTRY));
});

test('an unknown key warns with file:line and is ignored', () => {
  const { config, file, warnings } = load(
    yaml(
      'logging:',
      '  level: info',
      '  colour: blue',
      'engine:',
      '  servers:',
      '    - port: 6790',
      '      max_files: 3',
      'extras: true',
    ),
  );
  assert.deepEqual(warnings, [
    `${file}:3: logging.colour: unknown key, ignored`,
    `${file}:7: engine.servers[0].max_files: unknown key, ignored`,
    `${file}:8: extras: unknown key, ignored`,
  ]);
  assert.equal(config.logging.level, 'info');
});

test('the message names file, line and key', () => {
  const err = rejects(
    yaml('engine:', '  servers:', '    - port: abc'),
    'engine.servers[0].port',
    3,
    /^must be an integer from 1 to 65535, got "abc"$/,
  );
  assert.equal(err.message, `${err.file}:3: engine.servers[0].port: must be an integer from 1 to 65535, got "abc"`);
  assert.equal(err.name, 'ConfigError');
});

test('ports must be integers from 1 to 65535', () => {
  rejects(yaml('engine:', '  apiServer:', '    port: 70000'), 'engine.apiServer.port', 3, /1 to 65535, got 70000/);
  rejects(yaml('center:', '  registry: { port: 0 }'), 'center.registry.port', 2, /got 0/);
  rejects(yaml('engine:', '  meshPoint:', '    bind: 0.0.0.0', '    port: 67.5'), 'engine.meshPoint.port', 4, /got 67.5/);
  rejects(yaml('engine:', '  servers:', '    - bind: 0.0.0.0', '      port: "12ab"'), 'engine.servers[0].port', 4, /got "12ab"/);
});

test('wrong types are rejected', () => {
  rejects(yaml('logging: 5'), 'logging', 1, /^must be a mapping, got 5$/);
  rejects(yaml('engine:', '  servers:', '    - bind: [a, b]'), 'engine.servers[0].bind', 3, /^must be a string, got a list$/);
  rejects(yaml('engine:', '  servers:', '    port: 6790'), 'engine.servers', 3, /^must be a list, got a mapping$/);
  rejects(yaml('engine:', '  mesh:', '    redis:', '      cluster: yes'), 'engine.mesh.redis.cluster', 4, /^must be true or false, got "yes"$/);
  rejects(yaml('logging:', '  maxFiles: seven'), 'logging.maxFiles', 2, /non-negative integer, got "seven"/);
});

test('negative timeouts and sizes are rejected', () => {
  rejects(yaml('engine:', '  servers:', '    - port: 6790', '      readTimeout: -1'), 'engine.servers[0].readTimeout', 4, /non-negative number, got -1/);
  rejects(yaml('engine:', '  apiServer:', '    writeBufferSize: -5'), 'engine.apiServer.writeBufferSize', 3, /non-negative integer, got -5/);
  rejects(yaml('engine:', '  maxConnections: -5'), 'engine.maxConnections', 2, /non-negative integer, got -5/);
  rejects(
    yaml('engine:', '  luavm:', '    redis:', '      - { name: default, idleTimeout: -300 }'),
    'engine.luavm.redis[0].idleTimeout',
    4,
    /got -300/,
  );
});

test('enumerated values are checked', () => {
  rejects(yaml('logging:', '  level: verbose'), 'logging.level', 2, /^must be one of debug, info, warn, error, got "verbose"$/);
  rejects(yaml('engine:', '  servers:', '    - protocol: http'), 'engine.servers[0].protocol', 3, /one of websocket, socket, got "http"/);
  rejects(yaml('engine:', '  mesh:', '    broker: kafka'), 'engine.mesh.broker', 3, /one of memory, redis, got "kafka"/);
  rejects(
    yaml('access:', '  users:', '    - username: a', '      password: b', '      roles: [read, admin]'),
    'access.users[0].roles[1]',
    5,
    /one of read, write, got "admin"/,
  );
});

test('access users need a username, a password and roles', () => {
  rejects(yaml('access:', '  users:', '    - password: b', '      roles: [read]'), 'access.users[0].username', 3, /^is required$/);
  rejects(yaml('access:', '  users:', '    - username: a', '      password:', '      roles: [read]'), 'access.users[0].password', 4, /^is required$/);
  rejects(yaml('access:', '  users:', '    - username: a', '      password: b'), 'access.users[0].roles', 3, /read, write or both/);
});

test('options must be a list of {name, value}', () => {
  rejects(yaml('engine:', '  servers:', '    - port: 6790', '      options: path=/chat'), 'engine.servers[0].options', 4, /must be a list, got "path=\/chat"/);
  rejects(yaml('engine:', '  servers:', '    - options:', '        - path'), 'engine.servers[0].options[0]', 4, /must be a mapping, got "path"/);
  rejects(yaml('engine:', '  servers:', '    - options:', '        - { value: /chat }'), 'engine.servers[0].options[0].name', 4, /^is required$/);
  rejects(yaml('engine:', '  servers:', '    - options:', '        - { name: path, value: [a] }'), 'engine.servers[0].options[0].value', 4, /must be a string/);
});

test('redis addresses must be host:port', () => {
  rejects(
    yaml('engine:', '  luavm:', '    redis:', '      - name: default', '        addr: localhost'),
    'engine.luavm.redis[0].addr',
    5,
    /^must be host:port, got "localhost"$/,
  );
  rejects(yaml('engine:', '  mesh:', '    redis:', '      addrs:', '        - 127.0.0.1:6379', '        - 127.0.0.1:http'), 'engine.mesh.redis.addrs[1]', 6, /host:port/);
  rejects(yaml('engine:', '  mesh:', '    redis:', '      addrs: [redis:99999]'), 'engine.mesh.redis.addrs[0]', 4, /got "redis:99999"/);
  rejects(yaml('engine:', '  mesh:', '    redis:', '      addrs: []'), 'engine.mesh.redis.addrs', 4, /at least one/);
  rejects(yaml('engine:', '  centerRegistry: center'), 'engine.centerRegistry', 2, /host:port/);
});

test('lua redis connection names are unique; a cluster mesh uses db 0', () => {
  rejects(
    yaml('engine:', '  luavm:', '    redis:', '      - { name: cache }', '      - { name: cache, db: 1 }'),
    'engine.luavm.redis[1].name',
    5,
    /duplicate connection name "cache"/,
  );
  rejects(yaml('engine:', '  mesh:', '    redis:', '      cluster: true', '      db: 2'), 'engine.mesh.redis.db', 5, /must be 0/);
});

test('two servers on the same port and bind are rejected', () => {
  rejects(
    yaml('engine:', '  servers:', '    - port: 7000', '    - port: 7001', '    - bind: 0.0.0.0', '      port: 7000'),
    'engine.servers[2].port',
    6,
    /^0\.0\.0\.0:7000 is already used by engine\.servers\[0\]$/,
  );
  // Without a port key the server's own line is the best there is.
  rejects(yaml('engine:', '  servers:', '    - port: 7000', '    - bind: 0.0.0.0', '      entry: lua/entry.websocket.lua', '    - protocol: socket'), 'engine.servers[2].port', 6, /0\.0\.0\.0:6790 is already used by engine\.servers\[1\]/);
  // The same port on another bind address is fine.
  const { config } = load(yaml('engine:', '  servers:', '    - { port: 7000, bind: 127.0.0.1 }', '    - { port: 7000, bind: 127.0.0.2 }'));
  assert.equal(config.engine.servers.length, 2);
});

test('an empty servers list is rejected', () => {
  rejects(yaml('engine:', '  apiServer: { port: 6789 }', '  servers: []'), 'engine.servers', 3, /at least one server/);
});

test('callBudget must be a positive number', () => {
  rejects(yaml('engine:', '  luavm:', '    callBudget: 0'), 'engine.luavm.callBudget', 3, /^must be a positive number, got 0$/);
  rejects(yaml('engine:', '  luavm:', '    queue: { topicSize: 10 }', '    callBudget: fast'), 'engine.luavm.callBudget', 4, /got "fast"/);
});

test('the queue\'s byte caps are read, and must be positive integers', () => {
  const { config } = load(yaml('engine:', '  luavm:', '    queue: { topicBytes: 1024, maxBytes: 4096 }'));
  assert.deepEqual(config.engine.luavm.queue, { topicSize: 2000, maxTopics: 100, topicBytes: 1024, maxBytes: 4096 });
  rejects(yaml('engine:', '  luavm:', '    queue:', '      topicBytes: 0'), 'engine.luavm.queue.topicBytes', 4, /^must be a positive integer, got 0$/);
  rejects(yaml('engine:', '  luavm:', '    queue:', '      maxBytes: lots'), 'engine.luavm.queue.maxBytes', 4, /got "lots"/);
});

test('maxMessageSize and maxBufferedBytes must be positive integers', () => {
  rejects(yaml('engine:', '  servers:', '    - maxMessageSize: 0'), 'engine.servers[0].maxMessageSize', 3, /^must be a positive integer, got 0$/);
  rejects(yaml('engine:', '  servers:', '    - port: 6790', '      maxBufferedBytes: 1.5'), 'engine.servers[0].maxBufferedBytes', 4, /got 1.5/);
});

test('the API listens on loopback unless the yaml names another address', () => {
  assert.equal(load(yaml('engine:', '  apiServer: { port: 9000 }')).config.engine.apiServer.bind, '127.0.0.1');
  assert.equal(load(yaml('engine:', '  apiServer: { bind: 0.0.0.0 }')).config.engine.apiServer.bind, '0.0.0.0');
});

test('the API and descriptor limits load and are checked with file, line and key', () => {
  const { config } = load(yaml(
    'engine:',
    '  fdReserve: 20',
    '  maxContextBytes: 1048576',
    '  apiServer:',
    '    maxBodySize: 1000',
    '    maxBytesInFlight: 5000',
    '    headersTimeout: 0.5',
    '    requestTimeout: 2',
    '    maxBufferedBytes: 65536',
    '  servers:',
    '    - maxPendingBytes: 4096',
  ));
  assert.equal(config.engine.fdReserve, 20);
  assert.equal(config.engine.maxContextBytes, 1048576);
  assert.equal(defaultConfig().engine.maxContextBytes, 512 * 1024 * 1024);
  assert.deepEqual(
    { ...config.engine.apiServer, port: 0, bind: '' },
    { ...defaultConfig().engine.apiServer, port: 0, bind: '', maxBodySize: 1000, maxBytesInFlight: 5000, headersTimeout: 0.5, requestTimeout: 2, maxBufferedBytes: 65536 },
  );
  assert.equal(config.engine.servers[0].maxPendingBytes, 4096);
  rejects(yaml('engine:', '  fdReserve: -1'), 'engine.fdReserve', 2, /non-negative integer, got -1/);
  rejects(yaml('engine:', '', '  maxContextBytes: 0'), 'engine.maxContextBytes', 3, /positive integer, got 0/);
  rejects(yaml('engine:', '  maxContextBytes: 512MiB'), 'engine.maxContextBytes', 2, /positive integer, got "512MiB"/);
  rejects(yaml('engine:', '  apiServer:', '    maxBodySize: 0'), 'engine.apiServer.maxBodySize', 3, /positive integer, got 0/);
  rejects(yaml('engine:', '  apiServer:', '    maxBytesInFlight: lots'), 'engine.apiServer.maxBytesInFlight', 3, /got "lots"/);
  rejects(yaml('engine:', '  apiServer:', '    headersTimeout: 0'), 'engine.apiServer.headersTimeout', 3, /positive number, got 0/);
  rejects(yaml('engine:', '  apiServer:', '    maxBufferedBytes: -1'), 'engine.apiServer.maxBufferedBytes', 3, /positive integer/);
  rejects(yaml('engine:', '  servers:', '    - maxPendingBytes: 1.5'), 'engine.servers[0].maxPendingBytes', 3, /positive integer, got 1.5/);
  rejects(yaml('engine:', '  apiServer:', '    requestTimeout: 5', '    headersTimeout: 8'), 'engine.apiServer.headersTimeout', 4, /must not exceed engine.apiServer.requestTimeout \(5\)/);
  rejects(yaml('engine:', '  apiServer:', '    maxBodySize: 9000', '    maxBytesInFlight: 5000'), 'engine.apiServer.maxBodySize', 3, /must not exceed engine.apiServer.maxBytesInFlight \(5000\)/);
});

test('writeWindow is a number of milliseconds from 0 to 100', () => {
  rejects(yaml('engine:', '  servers:', '    - writeWindow: 250'), 'engine.servers[0].writeWindow', 3, /^must be a number of milliseconds from 0 to 100, got 250$/);
  rejects(yaml('engine:', '  servers:', '    - writeWindow: -1'), 'engine.servers[0].writeWindow', 3, /from 0 to 100, got -1$/);
});

test('an entry is looked up beside the yaml first, then in the working directory', () => {
  const cwd = tempDir('connmix-cwd-');
  fs.mkdirSync(path.join(cwd, 'lua'));
  fs.writeFileSync(path.join(cwd, 'lua/both.lua'), '');
  fs.writeFileSync(path.join(cwd, 'lua/cwd-only.lua'), '');
  const previous = process.cwd();
  process.chdir(cwd);
  try {
    const text = yaml('engine:', '  servers:', '    - { port: 7000, entry: lua/both.lua }', '    - { port: 7001, entry: lua/cwd-only.lua }');
    const { config, file } = load(text, [ENTRY, 'lua/both.lua']);
    assert.equal(config.engine.servers[0].entry, path.join(path.dirname(file), 'lua/both.lua'));
    assert.equal(config.engine.servers[1].entry, path.join(fs.realpathSync(cwd), 'lua/cwd-only.lua'));

    const missing = yaml('engine:', '  servers:', '    - port: 7000', '      entry: lua/x.lua');
    const err = rejects(missing, 'engine.servers[0].entry', 4, /^entry file not found: lua\/x\.lua/);
    assert.equal(err.reason, `entry file not found: lua/x.lua (looked in ${path.dirname(err.file)}, ${process.cwd()})`);

    // The default entry is checked too, at the line of the server that relies on it.
    rejects(yaml('engine:', '  servers:', '    - port: 7000'), 'engine.servers[0].entry', 3, /entry file not found: lua\/entry\.websocket\.lua/, []);
  } finally {
    process.chdir(previous);
  }
});

test('an absolute entry must exist', () => {
  const absolute = path.join(os.tmpdir(), 'connmix-no-such-dir', 'x.lua');
  rejects(yaml('engine:', '  servers:', `    - entry: ${absolute}`), 'engine.servers[0].entry', 3, new RegExp(`^entry file not found: ${absolute}$`));
});

test('a YAML syntax error carries its line', () => {
  const file = project(yaml('logging:', '  level: info', 'engine:', '  servers: [1, 2', 'center: {}'));
  assert.throws(
    () => loadConfig(file),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.file, file);
      assert.equal(err.key, '');
      assert.equal(err.line, 5);
      assert.match(err.message, new RegExp(`^${file}:5: YAML syntax error: .+\\(column \\d+\\)$`));
      return true;
    },
  );
  const duplicate = project(yaml('logging:', '  level: info', '  level: warn'));
  assert.throws(() => loadConfig(duplicate), (err: unknown) => err instanceof ConfigError && err.line === 3);
});

test('a top level that is not a mapping is rejected', () => {
  const file = project(yaml('- a', '- b'));
  assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.line === 1 && /must be a mapping, got a list/.test(err.message));
});

test('a missing file is a ConfigError naming the file, line 0', () => {
  const file = path.join(os.tmpdir(), 'connmix-missing', 'connmix.yaml');
  assert.throws(
    () => loadConfig(file),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.file, file);
      assert.equal(err.line, 0);
      assert.equal(err.key, '');
      assert.equal(err.message, `${file}: config file not found`);
      return true;
    },
  );
});

test('servers[].hooks picks a socket entry\'s hook model: auto by default, current or v1.0.1, socket servers only', () => {
  assert.equal(defaultConfig().engine.servers[0].hooks, 'auto');
  const { config } = load(yaml('engine:', '  servers:', '    - port: 7000', '      protocol: socket', '      hooks: v1.0.1',
    '    - port: 7001', '      protocol: socket', '      hooks: current', '    - port: 7002', '      protocol: socket'));
  assert.deepEqual(config.engine.servers.map((server) => server.hooks), ['v1.0.1', 'current', 'auto']);
  rejects(yaml('engine:', '  servers:', '    - port: 7000', '      protocol: socket', '      hooks: 1.0.1'),
    'engine.servers[0].hooks', 5, /must be one of auto, current, v1\.0\.1, got/);
  rejects(yaml('engine:', '  servers:', '    - port: 7000', '      hooks: v1.0.1'),
    'engine.servers[0].hooks', 4, /applies to protocol: socket servers only/);
});

test('a yaml as CONNMIX wrote it in March to May 2022 loads unchanged: snake case keys, log, center.server, engine.control, queue max and size, one redis mapping', () => {
  const { config, warnings } = load(yaml(
    'log:',
    '  filename: logs/connmix.log',
    '  max_files: 3',
    '  level: warn',
    'licenses:',
    '  activation_code:',
    'center:',
    '  server:',
    '    port: 7787',
    '    bind: 127.0.0.1',
    'engine:',
    '  center_registry: 127.0.0.1:6786',
    '  mesh_point:',
    '    port: 6788',
    '  control:',
    '    protocol: websocket',
    '    port: 7789',
    '    read_timeout: 600',
    '  luavm:',
    '    queue:',
    '      max: 12',
    '      size: 34',
    '    redis:',
    '      addr: 127.0.0.1:6400',
    '      pool_size: 5',
    '  servers:',
    '    - port: 7790',
    `      entry: ${ENTRY}`,
    '      bytecode_expires: 0',
    '      read_timeout: 45',
  ));
  assert.equal(config.logging.maxFiles, 3);
  assert.equal(config.logging.level, 'warn');
  assert.equal(config.center.apiServer.port, 7787);
  assert.equal(config.engine.apiServer.port, 7789);
  assert.equal(config.engine.apiServer.readTimeout, 600);
  assert.deepEqual([config.engine.luavm.queue.maxTopics, config.engine.luavm.queue.topicSize], [12, 34]);
  assert.deepEqual(config.engine.luavm.redis.map((r) => [r.name, r.addr, r.poolSize]), [['default', '127.0.0.1:6400', 5]]);
  assert.equal(config.engine.servers[0].byteCodeExpires, 0);
  assert.equal(config.engine.servers[0].readTimeout, 45);
  // Only the key that means nothing here is reported, by its written name and line.
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /:16: engine\.apiServer\.protocol: unknown key, ignored$/);
});

test('engine.apiServer.username and password (CONNMIX docs, August 2022 to April 2023) are an access user with both roles', () => {
  const base = ['engine:', '  apiServer:', '    username: backend'];
  const { config } = load(yaml(...base, '    password: s3cret', '  servers:', '    - port: 7790', `      entry: ${ENTRY}`));
  assert.deepEqual(config.access.users, [{ username: 'backend', password: 's3cret', roles: ['read', 'write'], host: '*' }]);
  // Empty, as the docs' yaml shows them: no account, the API stays open.
  const open = load(yaml('engine:', '  apiServer:', '    username:', '    password:', '  servers:', '    - port: 7790', `      entry: ${ENTRY}`));
  assert.deepEqual(open.config.access.users, []);
  assert.throws(() => load(yaml(...base, '  servers:', '    - port: 7790', `      entry: ${ENTRY}`)),
    (error: ConfigError) => /engine\.apiServer\.password: is required with engine\.apiServer\.username/.test(error.message));
});
