/**
 * The shape of `connmix.yaml`: CONNMIX's schema (docs: configuration-file-details; camelCase keys, defaults as
 * shipped) plus connmix-ts extensions, which are marked "ours" below.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LoggingConfig {
  filename: string;
  maxFiles: number;
  level: LogLevel;
}

export interface PrometheusConfig {
  summary: { maxAge: number; ageBuckets: number; bufCap: number };
}

export interface AccessUser {
  username: string;
  password: string;
  roles: Array<'read' | 'write'>;
  /** Client-IP glob, `*` matches any run of characters. */
  host: string;
}

export interface ListenConfig {
  port: number;
  bind: string;
}

export interface ApiServerConfig extends ListenConfig {
  readBufferSize: number;
  writeBufferSize: number;
  readTimeout: number;
  writeTimeout: number;
  /** Ours: the largest HTTP request body or `/ws/v1` request in bytes. */
  maxBodySize: number;
  /** Ours: request bytes the API holds at once: HTTP bodies announced or sent while being read, `/ws/v1` frames until their command settles. */
  maxBytesInFlight: number;
  /** Ours: seconds a client has to send a request's headers. */
  headersTimeout: number;
  /** Ours: seconds a client has to send a whole request, body included. */
  requestTimeout: number;
  /** Ours: bytes that may wait to be sent to one `/ws/v1` connection; past it the connection is dropped (1008). */
  maxBufferedBytes: number;
  /** CONNMIX 2022: the API's one account, read as an `access.users` entry with both roles (see load.ts). */
  username?: string;
  password?: string;
}

export interface LuaRedisConfig {
  name: string;
  addr: string;
  password: string;
  db: number;
  poolSize: number;
  minIdleConns: number;
  maxConnAge: number;
  idleTimeout: number;
}

export interface LuaVmConfig {
  /** `topicBytes` and `maxBytes` are ours: bytes one topic, and the node's whole queue, may hold. */
  queue: { topicSize: number; maxTopics: number; topicBytes: number; maxBytes: number };
  redis: LuaRedisConfig[];
  /** Ours: milliseconds of Lua execution one hook call may use before it is stopped. */
  callBudget: number;
  /** Ours: what one Lua library call may build or walk, how long a wait may last, what the state may hold (src/lua/limits.ts). */
  limits: {
    maxStringSize: number;
    maxPatternSteps: number;
    maxItems: number;
    maxLoadSize: number;
    /** Seconds one `conn:wait_context_value` waits before it returns `nil, err`. */
    waitTimeout: number;
    /** Estimated bytes the Lua state may hold across calls; past it the calling connection is closed (1011). */
    maxMemory: number;
  };
}

export type SocketHookSetting = 'auto' | 'current' | 'v1.0.1';

export interface ServerOption {
  name: string;
  value: string;
}

export interface BusinessServerConfig extends ListenConfig {
  protocol: 'websocket' | 'socket';
  /**
   * Ours: the hook model of a `protocol: socket` entry. `current` passes client ids (`on_connect(client_id)`);
   * `v1.0.1` passes the connection last (`on_connect(conn)`, `protocol_input(buf, conn)`) and runs `init()`;
   * `auto` picks v1.0.1 when the entry's `protocol_input` declares a second parameter.
   */
  hooks: SocketHookSetting;
  options: ServerOption[];
  /** Absolute path of the Lua entry, resolved against the yaml's folder, then the working directory. */
  entry: string;
  byteCodeExpires: number;
  readBufferSize: number;
  writeBufferSize: number;
  /** Seconds without any inbound data before the connection is closed; 0 = never. */
  readTimeout: number;
  /** Seconds a pending write may wait for the socket to drain before the connection is closed; 0 = never. */
  writeTimeout: number;
  /** Ours: the largest inbound message in bytes; a larger one closes the connection with 1009. */
  maxMessageSize: number;
  /** Ours: bytes that may wait in one connection's send buffer; past it the connection is dropped (1008). */
  maxBufferedBytes: number;
  /** Ours: past this many buffered bytes a connection skips published messages until it catches up. */
  softBufferedBytes: number;
  /** Ours: milliseconds a connection's first pending frame may wait for others, to leave in one write (0 = end of the event-loop turn). */
  writeWindow: number;
  /** Ours: connections this server holds at most; more are refused with HTTP 503. 0 = no limit. */
  maxConnections: number;
  /** Ours: connections from one client IP at most; more are refused with HTTP 429. 0 = no limit. */
  maxConnectionsPerIp: number;
  /** Ours: channels one connection may subscribe to at most; `subscribe` returns an error past it. 0 = no limit. */
  maxChannelsPerConnection: number;
  /** Ours: inbound messages per second one connection may send; more closes it with 1008. 0 = no limit. */
  maxMessagesPerSecond: number;
  /** Ours: seconds a client has to complete the HTTP upgrade request. */
  handshakeTimeout: number;
  /** Ours: bytes of inbound messages one connection may have waiting for its hooks; past it reading pauses. */
  maxPendingBytes: number;
  /** Ours: allowed `Origin` header values (globs); empty allows every origin and requests without one. */
  origins: string[];
}

export interface RedisMeshConfig {
  addrs: string[];
  cluster: boolean;
  password: string;
  db: number;
  prefix: string;
  /**
   * Ours: seconds between checks that Redis holds the subscriptions each subscriber connection sent,
   * repaired when it does not (src/mesh/subscription-audit.ts); 0 = no check.
   */
  auditInterval: number;
}

/** Ours: how nodes share channels, sends and the node list. */
export interface MeshConfig {
  broker: 'memory' | 'redis';
  redis: RedisMeshConfig;
}

export interface EngineConfig {
  centerRegistry: string;
  meshPoint: ListenConfig;
  apiServer: ApiServerConfig;
  luavm: LuaVmConfig;
  servers: BusinessServerConfig[];
  mesh: MeshConfig;
  /** Ours: connections the engine holds over all its business servers (with `-p N`, each worker its share). 0 = no limit. */
  maxConnections: number;
  /** Ours: file descriptors kept free for the node itself; business listeners stop accepting before using them. */
  fdReserve: number;
  /** Ours: estimated bytes all connection contexts of the node (each worker's with `-p N`) may hold together. */
  maxContextBytes: number;
}

export interface Config {
  /** Absolute path of the yaml file this config came from ('' for a config built in code). */
  file: string;
  logging: LoggingConfig;
  prometheus: PrometheusConfig;
  licenses: { activationCode: string; server: string };
  access: { users: AccessUser[] };
  center: { registry: ListenConfig; apiServer: ListenConfig };
  engine: EngineConfig;
}
