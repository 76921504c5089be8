import * as net from 'node:net';
import type { BusinessServerConfig } from '../config/schema';
import type { Logger } from '../log';
import { lua, bytesView, luaToJsString, type LuaState } from '../lua/fengari/index';
import { LuaVM, type LuaHookError, type PushArgs } from '../lua/vm';
import { HookQueue, type HookTask } from '../session/hook-queue';
import type { ScriptConnection } from '../lua/mix';
import { releaseConn } from '../lua/mix/conn';
import { registerBufferType, pushBuffer } from '../lua/mix/buffer';
import { bytesModule } from '../lua/mix/bytes';
import { LuaRedisPool } from '../lua/mix/redis';
import type { NodeServices } from './node-services';
import { createScriptHost, maintenanceTimers } from './script-host';
import { WriteBatch, blockedFor } from '../wire/write-batch';
import { SocketConnection, type SocketConnectionOptions } from './socket-connection';
import { remoteAddress, clientIp } from '../wire/http-request';
import { Admission } from './admission';
import { socketHookModel, v101Args, runInit, INIT_HOOK, type SocketHookModel } from './socket-hook-model';
import type { Metrics } from '../metrics';

const { LUA_TNUMBER, LUA_TSTRING, LUA_TNIL, lua_pushstring, lua_pushnil, lua_gettop, lua_type, lua_typename,
  lua_tonumber, lua_tolstring, lua_settop, lua_xmove } = lua;

/** Hooks a `protocol: socket` entry must define (reference 3.3); `on_handshake` is the protocol library's business. */
export const SOCKET_HOOKS = ['on_connect', 'on_close', 'protocol_input', 'protocol_decode', 'protocol_encode', 'on_message'] as const;

/** Events one connection may have waiting; input is one event however much arrives, so this is a backstop. */
const MAX_PENDING_EVENTS = 1024;

interface Session {
  readonly conn: SocketConnection;
  readonly hooks: HookQueue;
  /** A packet-loop turn is queued or running; more input joins it instead of queueing another. */
  reading: boolean;
  /** Input arrived since the loop last handed the buffer to protocol_input. */
  fresh: boolean;
  /** The client's IP, for maxConnectionsPerIp. */
  readonly ip: string;
}

/**
 * One `engine.servers[]` entry with `protocol: socket`: a TCP listener whose framing the Lua entry
 * defines. Inbound bytes go through the packet loop (protocol_input → protocol_decode → on_message);
 * messages from the mesh go through protocol_encode; `conn:send` writes raw bytes.
 */
export class SocketBusinessServer {
  readonly vm: LuaVM<ScriptConnection>;
  private readonly server: net.Server;
  private readonly sessions = new Map<SocketConnection, Session>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** What every connection of this server shares: its limits, write batch and encoder. */
  private readonly connectionOptions: SocketConnectionOptions;
  private readonly redis: LuaRedisPool;
  private readonly admission: Admission;
  /** Set by stop(): connections that arrive while the server drains are refused. */
  private stopping = false;
  /** Which arguments the hooks get, decided when the entry first loads. */
  private hookModel: SocketHookModel = 'current';

  constructor(
    private readonly config: BusinessServerConfig,
    private readonly services: NodeServices,
    private readonly log: Logger,
    callBudget: number,
    private readonly metrics?: Metrics,
  ) {
    this.admission = new Admission(config, () => services.nodeFull());
    this.connectionOptions = {
      maxBufferedBytes: config.maxBufferedBytes,
      maxChannels: config.maxChannelsPerConnection,
      batch: new WriteBatch(config.writeWindow),
      encode: this.encode,
    };
    ({ vm: this.vm, redis: this.redis } = createScriptHost(config, services, log, callBudget, {
      protocol: 'socket',
      hooks: SOCKET_HOOKS,
      optionalHooks: [INIT_HOOK],
      install: (vm) => registerBufferType(vm.L),
      builtins: { 'connmix.bytes': bytesModule },
    }));
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  readonly protocol = 'socket' as const;

  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Loads the Lua entry (throws LuaLoadError) and starts listening. */
  async start(): Promise<net.AddressInfo> {
    this.vm.load();
    this.hookModel = socketHookModel(this.config.hooks, this.vm);
    if (this.hookModel === 'v1.0.1') {
      this.log.info('socket server runs CONNMIX v1.0.1 hooks (the connection is their last argument)', { entry: this.vm.chunkName });
      await runInit(this.vm);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port, this.config.bind, () => {
        this.server.off('error', reject);
        // accept() failing (EMFILE while the table is full) must not be an unhandled 'error' event.
        this.server.on('error', (error) => this.log.warn('socket server: accept failed', { error: error.message }));
        resolve();
      });
    });
    this.timers.push(...maintenanceTimers(this.config, this.vm, () => this.sweep()));
    return this.server.address() as net.AddressInfo;
  }

  /** Stops accepting, closes every connection, and waits for their on_close hooks. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of this.sessions.keys()) conn.close();
    const deadline = Date.now() + 2000;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const conn of this.sessions.keys()) conn.abort('server shutting down');
    await closed;
    this.redis.close();
  }

  private accept(socket: net.Socket): void {
    const ip = clientIp(socket);
    // Without an HTTP answer to give, a refused client is disconnected before any hook runs.
    const refusal = this.stopping ? 'shutting_down' : this.admission.refusal(ip, this.sessions.size);
    if (refusal) {
      this.metrics?.refused.inc({ reason: refusal });
      socket.destroy();
      return;
    }
    if (this.services.fdGuard && !this.services.fdGuard.admit(socket, 'business')) return;
    this.admission.admitted(ip);
    const conn = new SocketConnection(socket, this.services.mesh.nextClientId(), remoteAddress(socket), this.connectionOptions);
    const session: Session = { conn, hooks: new HookQueue(MAX_PENDING_EVENTS), reading: false, fresh: false, ip };
    this.sessions.set(conn, session);
    this.services.mesh.attach(conn);
    socket.on('data', (chunk: Buffer) => this.received(session, chunk));
    socket.on('error', (error) => {
      this.log.debug('socket error', { client_id: conn.clientId, error: error.message });
      conn.failed(error);
    });
    socket.on('close', () => this.closed(session));
    this.dispatch(session, 'on_connect', (L) => {
      lua_pushstring(L, Buffer.from(conn.clientId));
      return 1;
    });
  }

  private received(session: Session, chunk: Buffer): void {
    const { conn } = session;
    conn.lastReadAt = Date.now();
    if (!conn.open) return;
    const size = conn.pending.length + chunk.length;
    if (size > this.config.maxMessageSize) {
      this.log.warn('pending input over maxMessageSize, closing', { client_id: conn.clientId, bytes: size });
      conn.close(`pending input over maxMessageSize (${this.config.maxMessageSize} bytes)`);
      return;
    }
    conn.append(chunk);
    session.fresh = true;
    if (session.reading) return;
    session.reading = true;
    this.queue(session, this.readTurn(session), false);
  }

  /**
   * One turn of the packet loop (reference 3.3): protocol_input on the pending input; for a packet of
   * n > 0 bytes, protocol_decode on them and on_message on a non-nil result. Each packet is its own
   * queued turn, so a burst of packets runs as a loop rather than a chain of nested callbacks.
   */
  private readTurn(session: Session): HookTask {
    return (done) => {
      const { conn } = session;
      const next = (more: boolean): void => {
        if (more && conn.open && conn.pending.length > 0) this.queue(session, this.readTurn(session), true);
        else session.reading = false;
        done();
      };
      if (!conn.open || conn.pending.length === 0) return next(false);
      const input = conn.pending;
      session.fresh = false;
      this.callForResults(conn, 'protocol_input', (L) => {
        pushBuffer(L, input);
        return 1;
      }, (error, results) => {
        if (error) return next(this.hookFailed(conn, error));
        const length = packetLength(results, conn.pending.length);
        if (typeof length === 'string') return next(this.protocolFailed(conn, length));
        if (length === -1) {
          conn.close('protocol_input returned -1');
          return next(false);
        }
        // Input that came while protocol_input waited was not in its buffer: look again.
        if (length === 0) return next(session.fresh);
        const packet = conn.take(length);
        this.callForResults(conn, 'protocol_decode', (L) => {
          lua_pushstring(L, packet);
          return 1;
        }, (error, decoded) => {
          if (error) return next(this.hookFailed(conn, error));
          if (!conn.open || !decoded || lua_gettop(decoded) === 0 || lua_type(decoded, 1) === LUA_TNIL) return next(true);
          this.metrics?.countRead('socket');
          this.vm.call(conn, 'on_message', this.args(conn, 'on_message', (L) => {
            lua_settop(decoded, 1);
            lua_xmove(decoded, L, 1);
            return 1;
          }), (error) => next(error ? this.hookFailed(conn, error) : true));
        });
      });
    };
  }

  /**
   * protocol_encode for a message from the mesh. It runs at delivery time, outside the connection's
   * queue, because deliveries report their counts at once and keep their order with `conn:send`; a
   * hook that tries to wait here fails that delivery.
   */
  private readonly encode = (conn: SocketConnection, payload: Buffer): Buffer | null => {
    let encoded: Buffer | null = null;
    let finished = false;
    let abandoned = false;
    this.callForResults(conn, 'protocol_encode', (L) => {
      lua_pushstring(L, payload);
      return 1;
    }, (error, results) => {
      finished = true;
      if (error) {
        this.hookFailed(conn, error);
        return;
      }
      if (abandoned) return;
      const type = results && lua_gettop(results) > 0 ? lua_type(results, 1) : lua.LUA_TNONE;
      const bytes = results && type === LUA_TSTRING ? bytesView(lua_tolstring(results, 1)!) : null;
      if (bytes && bytes.length > 0) encoded = bytes;
      else this.log.warn('protocol_encode must return a non-empty string; message not sent', {
        client_id: conn.clientId,
        got: bytes ? 'empty string' : typeName(results, type),
      });
    });
    if (!finished) {
      abandoned = true;
      this.log.warn('protocol_encode cannot wait (deliveries need its answer at once); message not sent', { client_id: conn.clientId });
    }
    return encoded;
  };

  /**
   * LuaVM.call that also hands `done` the finished coroutine, whose stack then holds exactly the hook's
   * return values (index 1 is the first). Null if no call was made.
   */
  private callForResults(conn: SocketConnection, hook: string, pushArgs: PushArgs,
    done: (error: LuaHookError | null, results: LuaState | null) => void): void {
    let thread: LuaState | null = null;
    this.vm.call(conn, hook, this.args(conn, hook, (L) => {
      thread = L;
      return pushArgs(L);
    }), (error) => done(error, thread));
  }

  /** A hook's arguments in the entry's model (see socket-hook-model.ts). */
  private args(conn: SocketConnection, hook: string, pushArgs: PushArgs): PushArgs {
    return this.hookModel === 'v1.0.1' ? v101Args(this.vm, conn, hook, pushArgs) : pushArgs;
  }

  /** Queues a hook call behind the connection's earlier events. */
  private dispatch(session: Session, hook: string, pushArgs: PushArgs): void {
    if (this.vm.isEmptyHook(hook)) return;
    const { conn } = session;
    this.queue(session, (done) => {
      if (hook !== 'on_close' && !conn.open) return done();
      this.vm.call(conn, hook, this.args(conn, hook, pushArgs), (error) => {
        if (error) this.hookFailed(conn, error);
        done();
      });
    }, hook === 'on_close');
  }

  private queue(session: Session, task: HookTask, force: boolean): void {
    if (!session.hooks.push(task, force)) session.conn.close('too many pending events');
  }

  /** Logs a failed hook and closes its connection (unless it already closed); returns false to stop the loop. */
  private hookFailed(conn: SocketConnection, error: LuaHookError): false {
    this.metrics?.hookErrors.inc({ hook: error.hook, kind: error.timedOut ? 'timeout' : 'error' });
    this.log.error(error.timedOut ? 'Lua hook stopped: budget exceeded' : 'Lua hook failed', {
      client_id: conn.clientId,
      hook: error.hook,
      error: error.traceback,
    });
    if (error.hook !== 'on_close') conn.close(error.timedOut ? 'script timeout' : 'script error');
    return false;
  }

  /** A protocol hook answered something the packet loop cannot use; returns false to stop the loop. */
  private protocolFailed(conn: SocketConnection, why: string): false {
    this.log.error('Lua protocol error', { client_id: conn.clientId, error: why });
    conn.close(why);
    return false;
  }

  private closed(session: Session): void {
    const { conn } = session;
    this.admission.left(session.ip);
    this.services.mesh.detach(conn);
    conn.context.close('connection closed');
    // A hook waiting on HTTP or Redis for this connection stops waiting, so on_close need not.
    this.vm.release(conn);
    this.dispatch(session, 'on_close', (L) => {
      lua_pushstring(L, Buffer.from(conn.clientId));
      if (conn.closeError === null) lua_pushnil(L);
      else lua_pushstring(L, Buffer.from(conn.closeError));
      return 2;
    });
    this.queue(session, (done) => {
      releaseConn(this.vm, conn);
      this.sessions.delete(conn);
      done();
    }, true);
  }

  /** Enforces readTimeout (nothing received) and writeTimeout (writes not draining, closing ones included). */
  private sweep(): void {
    const now = Date.now();
    const { readTimeout, writeTimeout } = this.config;
    for (const conn of this.sessions.keys()) {
      if (!conn.alive) continue;
      if (conn.open && readTimeout > 0 && now - conn.lastReadAt > readTimeout * 1000) {
        conn.close('read timeout');
        continue;
      }
      if (writeTimeout > 0 && blockedFor(conn, now) > writeTimeout * 1000) {
        this.log.warn('write timeout, dropping the connection', { client_id: conn.clientId });
        conn.abort('write timeout');
      }
    }
  }
}

/** protocol_input's answer: -1, 0 or a packet length of at most `available` bytes, or why it is unusable. */
function packetLength(results: LuaState | null, available: number): number | string {
  const type = results && lua_gettop(results) > 0 ? lua_type(results, 1) : lua.LUA_TNONE;
  if (!results || type !== LUA_TNUMBER) return `protocol_input must return an integer, got ${typeName(results, type)}`;
  const n = lua_tonumber(results, 1);
  if (!Number.isInteger(n) || n < -1) return `protocol_input returned ${n}: expected -1, 0 or a packet length`;
  if (n > available) return `protocol_input returned ${n} but only ${available} bytes are buffered`;
  return n;
}

function typeName(L: LuaState | null, type: number): string {
  return L ? luaToJsString(lua_typename(L, type)) : 'no value';
}
