import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineCounter, isAlias, isMap, isNode, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Scalar, YAMLError, YAMLMap, YAMLSeq } from 'yaml';
import { defaultConfig, defaultLuaRedisConfig, defaultServerConfig } from './defaults';
import type {
  AccessUser,
  ApiServerConfig,
  BusinessServerConfig,
  Config,
  EngineConfig,
  ListenConfig,
  LoggingConfig,
  LuaRedisConfig,
  LuaVmConfig,
  MeshConfig,
  PrometheusConfig,
  RedisMeshConfig,
  ServerOption,
} from './schema';

/** Options of {@link loadConfig} and {@link parseConfig}. */
export interface LoadOptions {
  /** Receives non-fatal findings such as unknown keys. Default: `console.warn`. */
  warn?: (message: string) => void;
}

/**
 * A config that cannot be used. The message reads `<file>:<line>: <key>: <reason>`; the `:<line>` part is left
 * out when the line is unknown (0) and the `<key>: ` part when no key is involved (unreadable file, YAML syntax).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  /**
   * @param file absolute path of the yaml file
   * @param line 1-based line of the offending node, 0 if unknown
   * @param key dotted path of the offending key, such as `engine.servers[0].port`; '' when no key is involved
   * @param reason what is wrong, without the location
   */
  constructor(
    readonly file: string,
    readonly line: number,
    readonly key: string,
    readonly reason: string,
  ) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${key ? `${key}: ` : ''}${reason}`);
  }
}

/**
 * Reads, validates and completes a CONNMIX yaml file.
 * @param file path of the yaml; relative paths are taken from the working directory
 * @returns every key filled in, with `file`, `logging.filename` and `engine.servers[].entry` absolute
 * @throws ConfigError when the file cannot be read or the config is invalid
 */
export function loadConfig(file: string, options: LoadOptions = {}): Config {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (err) {
    throw readFailure(absolute, err as NodeJS.ErrnoException);
  }
  return parseConfig(text, absolute, options);
}

/** The ConfigError for a config file that could not be read. */
export function readFailure(file: string, error: NodeJS.ErrnoException): ConfigError {
  return new ConfigError(file, 0, '', error.code === 'ENOENT' ? 'config file not found' : `cannot read the config file: ${error.message}`);
}

/**
 * Same as {@link loadConfig}, from yaml text already in memory (tests, hot reload).
 * @param file where the text came from: names it in errors and anchors the relative paths in it
 */
export function parseConfig(text: string, file: string, options: LoadOptions = {}): Config {
  const absolute = path.resolve(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const [syntaxError] = doc.errors;
  if (syntaxError) throw yamlSyntaxError(absolute, syntaxError);

  const ctx: Context = {
    file: absolute,
    text,
    doc,
    lineCounter,
    warn: options.warn ?? ((message) => console.warn(message)),
    lines: new Map(),
  };
  for (const warning of doc.warnings) {
    ctx.warn(`${absolute}:${warning.linePos?.[0].line ?? 0}: ${firstLine(warning.message)}`);
  }
  const root = valueOf(ctx, doc.contents);
  const read = root ? readConfig(ctx, root, '', defaultConfig()) : defaultConfig();
  return completeConfig(ctx, { ...read, file: absolute });
}

function yamlSyntaxError(file: string, error: YAMLError): ConfigError {
  const position = error.linePos?.[0];
  const column = position ? ` (column ${position.col})` : '';
  return new ConfigError(file, position?.line ?? 0, '', `YAML syntax error: ${firstLine(error.message)}${column}`);
}

/** The yaml package appends the position and a source excerpt; the position is reported separately. */
function firstLine(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: walks the YAML tree alongside the defaults, so every value is checked where its line is known.

interface Context {
  readonly file: string;
  readonly text: string;
  readonly doc: Document;
  readonly lineCounter: LineCounter;
  readonly warn: (message: string) => void;
  /** Line of every key met while reading, for the checks that run on the finished config. */
  readonly lines: Map<string, number>;
}

type ValueNode = Scalar | YAMLMap | YAMLSeq;

/** Reads `node` found at `key`; `fallback` is the default it is merged over. */
type Reader<T> = (ctx: Context, node: ValueNode, key: string, fallback: T) => T;

function lineOf(ctx: Context, node: unknown): number {
  return isNode(node) && node.range ? ctx.lineCounter.linePos(node.range[0]).line : 0;
}

function fail(ctx: Context, node: unknown, key: string, reason: string): ConfigError {
  return new ConfigError(ctx.file, lineOf(ctx, node), key, reason);
}

/** The node a value stands for, or undefined for an absent or empty (null) value, which means "the default". */
function valueOf(ctx: Context, raw: unknown): ValueNode | undefined {
  const node = isAlias(raw) ? raw.resolve(ctx.doc) : raw;
  if (isMap(node) || isSeq(node)) return node;
  if (isScalar(node) && node.value !== null && node.value !== undefined) return node;
  return undefined;
}

function describe(node: ValueNode): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  return typeof node.value === 'string' ? JSON.stringify(node.value) : String(node.value);
}

function scalarText(ctx: Context, node: Scalar): string {
  if (typeof node.value === 'string') return node.value;
  // Plain numbers keep their spelling, so `password: 007` is "007", not "7".
  return node.range ? ctx.text.slice(node.range[0], node.range[1]) : String(node.value);
}

const str: Reader<string> = (ctx, node, key) => {
  if (!isScalar(node)) throw fail(ctx, node, key, `must be a string, got ${describe(node)}`);
  return scalarText(ctx, node);
};

const flag: Reader<boolean> = (ctx, node, key) => {
  if (isScalar(node) && typeof node.value === 'boolean') return node.value;
  throw fail(ctx, node, key, `must be true or false, got ${describe(node)}`);
};

function toNumber(node: ValueNode): number | undefined {
  if (!isScalar(node)) return undefined;
  if (typeof node.value === 'number') return Number.isFinite(node.value) ? node.value : undefined;
  // Quoted numbers ("6790") are accepted: quoting ports is common and harmless.
  if (typeof node.value === 'string' && /^\s*[-+]?\d+(\.\d+)?\s*$/.test(node.value)) return Number(node.value);
  return undefined;
}

function numeric(expected: string, accepts: (n: number) => boolean): Reader<number> {
  return (ctx, node, key) => {
    const n = toNumber(node);
    if (n === undefined || !accepts(n)) throw fail(ctx, node, key, `must be ${expected}, got ${describe(node)}`);
    return n;
  };
}

const port = numeric('an integer from 1 to 65535', (n) => Number.isInteger(n) && n >= 1 && n <= 65535);
const count = numeric('a non-negative integer', (n) => Number.isInteger(n) && n >= 0);
const positiveInteger = numeric('a positive integer', (n) => Number.isInteger(n) && n > 0);
const seconds = numeric('a non-negative number', (n) => n >= 0);
const positiveNumber = numeric('a positive number', (n) => n > 0);

function oneOf<T extends string>(...values: T[]): Reader<T> {
  return (ctx, node, key) => {
    const text = isScalar(node) ? scalarText(ctx, node) : undefined;
    if (text !== undefined && (values as string[]).includes(text)) return text as T;
    throw fail(ctx, node, key, `must be one of ${values.join(', ')}, got ${describe(node)}`);
  };
}

/** `host:port`; the host may be a bracketed IPv6 address. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):(\d{1,5})$/;

const hostPort: Reader<string> = (ctx, node, key) => {
  const match = isScalar(node) ? HOST_PORT.exec(scalarText(ctx, node)) : null;
  const portNumber = match ? Number(match[1]) : 0;
  if (match && portNumber >= 1 && portNumber <= 65535) return match[0];
  throw fail(ctx, node, key, `must be host:port, got ${describe(node)}`);
};

/** A list replaces the default list; each item is merged over `itemDefaults()` (unused by scalar items). */
function list<T>(item: Reader<T>, itemDefaults: () => T): Reader<T[]> {
  return (ctx, node, key) => {
    if (!isSeq(node)) throw fail(ctx, node, key, `must be a list, got ${describe(node)}`);
    return node.items.map((raw, i) => {
      const itemKey = `${key}[${i}]`;
      const value = valueOf(ctx, raw);
      if (!value) throw fail(ctx, raw ?? node, itemKey, 'must not be empty');
      ctx.lines.set(itemKey, lineOf(ctx, value));
      return item(ctx, value, itemKey, itemDefaults());
    });
  };
}

/** A list, or (as CONNMIX v1.0.1 wrote `engine.luavm.redis`) one mapping standing for a list of it alone. */
function listOrOne<T>(item: Reader<T>, itemDefaults: () => T): Reader<T[]> {
  const many = list(item, itemDefaults);
  return (ctx, node, key, fallback) => (isMap(node) ? [item(ctx, node, key, itemDefaults())] : many(ctx, node, key, fallback));
}

type Fields<T> = { [K in keyof T]?: Reader<T[K]> };

/** `read_buffer_size` → `readBufferSize`: CONNMIX v1.0.1 wrote its keys in snake case. */
function camelCase(name: string): string {
  return name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * A mapping is merged over its default key by key; keys without a reader are reported and skipped. A key
 * may also be written in snake case, or by an older name in `aliases` (both as CONNMIX's 2022 docs did).
 */
function object<T extends object>(fields: Fields<T>, aliases: Record<string, keyof T & string> = {}): Reader<T> {
  const known = (name: string): name is keyof T & string => Object.hasOwn(fields, name);
  const canonical = (written: string): string => {
    if (known(written)) return written;
    const camel = camelCase(written);
    return aliases[written] ?? (known(camel) ? camel : aliases[camel] ?? written);
  };
  return (ctx, node, key, fallback) => {
    if (!isMap(node)) throw fail(ctx, node, key, `must be a mapping, got ${describe(node)}`);
    const result = { ...fallback };
    for (const pair of node.items) {
      const written = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const name = canonical(written) as keyof T & string;
      const childKey = key ? `${key}.${name}` : name;
      const read = known(name) ? fields[name] : undefined;
      if (!read) {
        ctx.warn(`${ctx.file}:${lineOf(ctx, pair.key)}: ${key ? `${key}.${written}` : written}: unknown key, ignored`);
        continue;
      }
      ctx.lines.set(childKey, lineOf(ctx, pair.value ?? pair.key));
      const value = valueOf(ctx, pair.value);
      if (value) result[name] = read(ctx, value, childKey, fallback[name]);
    }
    return result;
  };
}

const listen = object<ListenConfig>({ port, bind: str });

const readLogging = object<LoggingConfig>({
  filename: str,
  maxFiles: count,
  level: oneOf('debug', 'info', 'warn', 'error'),
});

const readPrometheus = object<PrometheusConfig>({
  summary: object<PrometheusConfig['summary']>({ maxAge: seconds, ageBuckets: positiveInteger, bufCap: positiveInteger }),
});

/** No defaults for credentials: the empty values are caught by `checkUsers`. */
const emptyUser = (): AccessUser => ({ username: '', password: '', roles: [], host: '*' });

const readUser = object<AccessUser>({
  username: str,
  password: str,
  roles: list(oneOf('read', 'write'), () => 'read' as const),
  host: str,
});

const readApiServer = object<ApiServerConfig>({
  port,
  bind: str,
  readBufferSize: count,
  writeBufferSize: count,
  readTimeout: seconds,
  writeTimeout: seconds,
  maxBodySize: positiveInteger,
  maxBytesInFlight: positiveInteger,
  headersTimeout: positiveNumber,
  requestTimeout: positiveNumber,
  maxBufferedBytes: positiveInteger,
  username: str as Reader<string | undefined>,
  password: str as Reader<string | undefined>,
});

const readLuaVm = object<LuaVmConfig>({
  queue: object<LuaVmConfig['queue']>(
    { topicSize: positiveInteger, maxTopics: positiveInteger, topicBytes: positiveInteger, maxBytes: positiveInteger },
    { max: 'maxTopics', size: 'topicSize' },
  ),
  redis: listOrOne(
    object<LuaRedisConfig>({
      name: str,
      addr: hostPort,
      password: str,
      db: count,
      poolSize: count,
      minIdleConns: count,
      maxConnAge: seconds,
      idleTimeout: seconds,
    }),
    defaultLuaRedisConfig,
  ),
  callBudget: positiveNumber,
  limits: object<LuaVmConfig['limits']>({
    maxStringSize: positiveInteger,
    maxPatternSteps: positiveInteger,
    maxItems: positiveInteger,
    maxLoadSize: positiveInteger,
    waitTimeout: positiveInteger,
    maxMemory: positiveInteger,
  }),
});

const readServer = object<BusinessServerConfig>({
  port,
  bind: str,
  protocol: oneOf('websocket', 'socket'),
  hooks: oneOf('auto', 'current', 'v1.0.1'),
  options: list(object<ServerOption>({ name: str, value: str }), () => ({ name: '', value: '' })),
  entry: str,
  byteCodeExpires: seconds,
  readBufferSize: count,
  writeBufferSize: count,
  readTimeout: seconds,
  writeTimeout: seconds,
  maxMessageSize: positiveInteger,
  maxBufferedBytes: positiveInteger,
  softBufferedBytes: positiveInteger,
  writeWindow: numeric('a number of milliseconds from 0 to 100', (n) => n >= 0 && n <= 100),
  maxConnections: count,
  maxConnectionsPerIp: count,
  maxChannelsPerConnection: count,
  maxMessagesPerSecond: count,
  handshakeTimeout: positiveNumber,
  maxPendingBytes: positiveInteger,
  origins: list(str, () => ''),
}, { bytecodeExpires: 'byteCodeExpires' });

const readMesh = object<MeshConfig>({
  broker: oneOf('memory', 'redis'),
  redis: object<RedisMeshConfig>({
    addrs: list(hostPort, () => ''),
    cluster: flag,
    password: str,
    db: count,
    prefix: str,
    auditInterval: seconds,
  }),
});

// The names before CONNMIX's August 2022 docs: `log`, `center.server`, `engine.control`.
const readConfig = object<Config>({
  logging: readLogging,
  prometheus: readPrometheus,
  licenses: object<Config['licenses']>({ activationCode: str, server: str }),
  access: object<Config['access']>({ users: list(readUser, emptyUser) }),
  center: object<Config['center']>({ registry: listen, apiServer: listen }, { server: 'apiServer' }),
  engine: object<EngineConfig>({
    centerRegistry: hostPort,
    meshPoint: listen,
    apiServer: readApiServer,
    luavm: readLuaVm,
    servers: list(readServer, defaultServerConfig),
    mesh: readMesh,
    maxConnections: count,
    fdReserve: count,
    maxContextBytes: positiveInteger,
  }, { control: 'apiServer' }),
}, { log: 'logging' });

// ---------------------------------------------------------------------------------------------------------------
// Completing: checks that span several keys, and paths made absolute. Values may come from the defaults here,
// so their line is the nearest one the yaml gave (the key itself, else its closest written parent, else 0).

function lineAt(ctx: Context, key: string): number {
  for (let k = key; k; k = k.replace(/\[\d+\]$|\.?[^.[\]]+$/, '')) {
    const line = ctx.lines.get(k);
    if (line !== undefined) return line;
  }
  return 0;
}

function failAt(ctx: Context, key: string, reason: string): ConfigError {
  return new ConfigError(ctx.file, lineAt(ctx, key), key, reason);
}

function completeConfig(ctx: Context, config: Config): Config {
  config = withApiServerUser(ctx, config);
  checkUsers(ctx, config.access.users);
  checkServers(ctx, config.engine.servers);
  checkLuaRedis(ctx, config.engine.luavm.redis);
  checkMeshRedis(ctx, config.engine.mesh.redis);
  checkApiServer(ctx, config.engine.apiServer);
  const yamlDir = path.dirname(ctx.file);
  const { filename } = config.logging;
  return {
    ...config,
    // '' is left alone so that a logger can read it as "no log file".
    logging: { ...config.logging, filename: filename && path.resolve(yamlDir, filename) },
    engine: {
      ...config.engine,
      servers: config.engine.servers.map((server, i) => ({
        ...server,
        entry: resolveEntry(ctx, server.entry, `engine.servers[${i}].entry`),
      })),
    },
  };
}

/**
 * CONNMIX's docs from August 2022 to April 2023 guarded the API with `engine.apiServer.username` and
 * `password`, before `access.users`: a username given there is an access user with both roles, from any host.
 */
function withApiServerUser(ctx: Context, config: Config): Config {
  const { username, password } = config.engine.apiServer;
  if (!username) return config;
  if (!password) throw failAt(ctx, 'engine.apiServer.password', 'is required with engine.apiServer.username');
  const user: AccessUser = { username, password, roles: ['read', 'write'], host: '*' };
  return { ...config, access: { ...config.access, users: [...config.access.users, user] } };
}

function checkUsers(ctx: Context, users: AccessUser[]): void {
  users.forEach((user, i) => {
    const key = `access.users[${i}]`;
    if (!user.username) throw failAt(ctx, `${key}.username`, 'is required');
    if (!user.password) throw failAt(ctx, `${key}.password`, 'is required');
    if (user.roles.length === 0) throw failAt(ctx, `${key}.roles`, 'must list read, write or both');
  });
}

function checkServers(ctx: Context, servers: BusinessServerConfig[]): void {
  if (servers.length === 0) throw failAt(ctx, 'engine.servers', 'must list at least one server');
  const owners = new Map<string, number>();
  servers.forEach((server, i) => {
    server.options.forEach((option, j) => {
      if (!option.name) throw failAt(ctx, `engine.servers[${i}].options[${j}].name`, 'is required');
    });
    if (server.hooks !== 'auto' && server.protocol !== 'socket') {
      throw failAt(ctx, `engine.servers[${i}].hooks`, 'applies to protocol: socket servers only');
    }
    const address = `${server.bind}:${server.port}`;
    const owner = owners.get(address);
    if (owner !== undefined) {
      throw failAt(ctx, `engine.servers[${i}].port`, `${address} is already used by engine.servers[${owner}]`);
    }
    owners.set(address, i);
  });
}

function checkLuaRedis(ctx: Context, connections: LuaRedisConfig[]): void {
  const names = new Set<string>();
  connections.forEach((connection, i) => {
    if (names.has(connection.name)) {
      throw failAt(ctx, `engine.luavm.redis[${i}].name`, `duplicate connection name ${JSON.stringify(connection.name)}`);
    }
    names.add(connection.name);
  });
}

function checkMeshRedis(ctx: Context, redis: RedisMeshConfig): void {
  if (redis.addrs.length === 0) throw failAt(ctx, 'engine.mesh.redis.addrs', 'must list at least one host:port');
  if (redis.cluster && redis.db !== 0) {
    throw failAt(ctx, 'engine.mesh.redis.db', 'must be 0 with cluster: true (Redis Cluster has only db 0)');
  }
}

function checkApiServer(ctx: Context, api: ApiServerConfig): void {
  // Node refuses a server whose headers may take longer than the whole request.
  if (api.headersTimeout > api.requestTimeout) {
    throw failAt(ctx, 'engine.apiServer.headersTimeout', `must not exceed engine.apiServer.requestTimeout (${api.requestTimeout})`);
  }
  if (api.maxBodySize > api.maxBytesInFlight) {
    throw failAt(ctx, 'engine.apiServer.maxBodySize', `must not exceed engine.apiServer.maxBytesInFlight (${api.maxBytesInFlight})`);
  }
}

/** Design contract 1: an entry is looked up beside the yaml first, then in the working directory. */
function resolveEntry(ctx: Context, entry: string, key: string): string {
  const dirs = [...new Set([path.dirname(ctx.file), process.cwd()])];
  const candidates = path.isAbsolute(entry) ? [entry] : dirs.map((dir) => path.resolve(dir, entry));
  const found = candidates.find((candidate) => fs.statSync(candidate, { throwIfNoEntry: false })?.isFile());
  if (found) return found;
  const lookedIn = path.isAbsolute(entry) ? '' : ` (looked in ${dirs.join(', ')})`;
  throw failAt(ctx, key, `entry file not found: ${entry}${lookedIn}`);
}
