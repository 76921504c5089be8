import type { BusinessServerConfig, Config, LuaRedisConfig } from './schema';

/**
 * Defaults of one `engine.servers[]` entry, as CONNMIX ships them plus our own limits.
 * `entry` is still relative here: the loader resolves it against the yaml's folder, then the working directory.
 */
export function defaultServerConfig(): BusinessServerConfig {
  return {
    port: 6790,
    bind: '0.0.0.0',
    protocol: 'websocket',
    hooks: 'auto',
    options: [{ name: 'path', value: '/chat' }],
    entry: 'lua/entry.websocket.lua',
    byteCodeExpires: 10,
    readBufferSize: 1024,
    writeBufferSize: 1024,
    readTimeout: 60,
    writeTimeout: 10,
    maxMessageSize: 1048576,
    maxBufferedBytes: 4194304,
    softBufferedBytes: 1048576,
    writeWindow: 1,
    maxConnections: 100000,
    maxConnectionsPerIp: 0,
    maxChannelsPerConnection: 100,
    maxMessagesPerSecond: 100,
    handshakeTimeout: 10,
    maxPendingBytes: 1048576,
    origins: [],
  };
}

/** Defaults of one `engine.luavm.redis[]` entry (the shipped `default` connection). */
export function defaultLuaRedisConfig(): LuaRedisConfig {
  return {
    name: 'default',
    addr: 'localhost:6379',
    password: '',
    db: 0,
    poolSize: 20,
    minIdleConns: 10,
    maxConnAge: 0,
    idleTimeout: 300,
  };
}

/**
 * The whole config as CONNMIX ships it (docs: configuration-file-details), plus our extensions.
 * Returns a fresh object on every call, so callers may mutate it. `file` is '' and the paths
 * (`logging.filename`, `servers[].entry`) are still relative: only the loader knows what they are relative to.
 */
export function defaultConfig(): Config {
  return {
    file: '',
    logging: { filename: 'logs/connmix.log', maxFiles: 7, level: 'debug' },
    prometheus: { summary: { maxAge: 600, ageBuckets: 5, bufCap: 500 } },
    licenses: { activationCode: '', server: 'https://connmix.com' },
    access: { users: [] },
    center: {
      registry: { port: 6786, bind: '0.0.0.0' },
      // Loopback, like engine.apiServer: the node list it serves names every engine's API address.
      apiServer: { port: 6787, bind: '127.0.0.1' },
    },
    engine: {
      centerRegistry: 'localhost:6786',
      meshPoint: { port: 6788, bind: '0.0.0.0' },
      apiServer: {
        port: 6789,
        // Not CONNMIX's 0.0.0.0: an API left open on every interface lets anyone publish (docs/api.md "Access").
        bind: '127.0.0.1',
        // 40096 (not 4096) is the literal shipped value; kept on purpose (docs/compatibility.md).
        readBufferSize: 40096,
        writeBufferSize: 40096,
        readTimeout: 60,
        writeTimeout: 60,
        maxBodySize: 2097152,
        maxBytesInFlight: 67108864,
        headersTimeout: 10,
        requestTimeout: 30,
        maxBufferedBytes: 4194304,
      },
      luavm: {
        // Bytes are ours: items alone would let 2,000 large messages per topic exhaust the heap.
        queue: { topicSize: 2000, maxTopics: 100, topicBytes: 67108864, maxBytes: 268435456 },
        redis: [defaultLuaRedisConfig()],
        callBudget: 100,
        limits: {
          maxStringSize: 16777216,
          maxPatternSteps: 2000000,
          maxItems: 100000,
          maxLoadSize: 1048576,
          waitTimeout: 60,
          maxMemory: 268435456,
        },
      },
      servers: [defaultServerConfig()],
      mesh: {
        broker: 'memory',
        redis: { addrs: ['127.0.0.1:6379'], cluster: false, password: '', db: 0, prefix: 'connmix:', auditInterval: 30 },
      },
      maxConnections: 0,
      fdReserve: 100,
      // Ours: 16 MiB per context is MAX_CONTEXT_BYTES; 512 MiB is 32 full ones, or 50,000 connections of 10 KB.
      maxContextBytes: 536870912,
    },
  };
}
