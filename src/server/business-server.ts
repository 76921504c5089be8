import type { AddressInfo, Server } from 'node:net';
import type { BusinessServerConfig } from '../config/schema';
import type { Logger } from '../log';
import type { LuaVM, LuaHookError } from '../lua/vm';
import { HookQueue, type HookTask } from '../session/hook-queue';
import type { HookDone } from '../lua/hooks';
import type { ScriptConnection } from '../lua/mix';
import { releaseConn } from '../lua/mix/conn';
import type { LuaRedisPool } from '../lua/mix/redis';
import { secondsSince, type Metrics } from '../metrics';
import type { NodeServices } from './node-services';
import { createScriptHost, maintenanceTimers, type ScriptSetup } from './script-host';
import { Admission, type Refusal } from './admission';
import { CloseCode } from '../wire/close-codes';
import { listenLogged } from '../wire/listen';
import type { ClientConnection } from './client-connection';
import { TimeoutWatch } from './timeout-watch';
import { monotonicMs } from '../wire/clock';

/** Events one connection may have waiting behind a hook call that waits; more closes it. */
const MAX_PENDING_EVENTS = 1024;

/** A connection as its server tracks it; each protocol adds its own reading state. */
export interface Session<C extends ClientConnection> {
  readonly conn: C;
  readonly hooks: HookQueue;
  /** The client's IP, for maxConnectionsPerIp. */
  readonly ip: string;
  /** Bytes of messages waiting in `hooks`; past maxPendingBytes the connection is not read until they run. */
  pendingBytes: number;
  /** Reading is paused because of pendingBytes. */
  paused: boolean;
}

/**
 * A hook call as the core queues it: a typed hook function of lua/hooks.ts (or an adapter made once per
 * server) with its two arguments, so queueing a message allocates only its task.
 */
export type HookCall<C, A, B> = (conn: C, a: A, b: B, done: HookDone) => void;

/** What differs between the protocols' use of the core, fixed when the server is built. */
export interface CoreSetup extends ScriptSetup {
  /** Observe every queued hook's duration in `hook_duration_seconds`. */
  timeHooks: boolean;
  /** The close reason when a connection has MAX_PENDING_EVENTS events waiting. */
  tooManyPending: string;
}

/**
 * What every `engine.servers[]` entry does whatever its protocol: its Lua state, admission of new
 * connections, start, stop and drain, each connection's hook queue (dispatch), and their timeouts (TimeoutWatch).
 * The protocol servers add how connections arrive and how their input becomes hook calls.
 */
export abstract class BusinessServer<C extends ClientConnection, S extends Session<C>> {
  abstract readonly protocol: 'websocket' | 'socket';
  readonly vm: LuaVM<ScriptConnection>;
  protected readonly sessions = new Map<C, S>();
  protected readonly admission: Admission;
  /** Set by stop(): connections that arrive while the server drains are refused. */
  protected stopping = false;
  /** The listener start() opens and stop() closes. */
  protected abstract readonly listener: Server;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly timeouts: TimeoutWatch;
  private readonly redis: LuaRedisPool;
  private readonly timeHooks: boolean;
  private readonly tooManyPending: string;

  constructor(
    protected readonly config: BusinessServerConfig,
    protected readonly services: NodeServices,
    protected readonly log: Logger,
    callBudget: number,
    protected readonly metrics: Metrics | undefined,
    setup: CoreSetup,
  ) {
    this.admission = new Admission(config, () => services.nodeFull());
    this.timeouts = new TimeoutWatch(config, log);
    ({ vm: this.vm, redis: this.redis } = createScriptHost(config, services, log, callBudget, setup));
    this.timeHooks = setup.timeHooks;
    this.tooManyPending = setup.tooManyPending;
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  /** The protocol's hooks (lua/hooks.ts); the core calls only their on_close. */
  protected abstract readonly hooks: { readonly onClose: (conn: C, error: string | null, done: HookDone) => void };

  /** Calls on_close with its error (null for a clean close); made once, as dispatch wants it. */
  private readonly callOnClose: HookCall<C, string | null, undefined> = (conn, error, _none, done) =>
    this.hooks.onClose(conn, error, done);

  /** Loads the Lua entry (throws LuaLoadError) and starts listening. */
  async start(): Promise<AddressInfo> {
    this.vm.load();
    await this.loaded();
    const listener = this.listener;
    await listenLogged(listener, this.config.port, this.config.bind, this.log, this.protocol);
    this.timers.push(...maintenanceTimers(this.config, this.vm, () => this.timeouts.tick()));
    return listener.address() as AddressInfo;
  }

  /** Runs once the entry has loaded, before the server listens. */
  protected async loaded(): Promise<void> {}

  /** Stops accepting, closes every connection with `code`, and waits for their on_close hooks. */
  async stop(code: number = CloseCode.GOING_AWAY): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const conn of this.sessions.keys()) conn.shutDown(code);
    const deadline = Date.now() + 2000;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const conn of this.sessions.keys()) conn.terminate();
    this.drained();
    await closed;
    this.redis.close();
  }

  /** Runs once the connections are closed or terminated, before the listener is waited for. */
  protected drained(): void {}

  /** Why the server or node limits refuse a new connection from `ip`, or null. */
  protected admissionRefusal(ip: string): Refusal | null {
    return this.admission.refusal(ip, this.sessions.size);
  }

  /** Holds an admitted connection: counted for its IP, tracked here, and reachable from the mesh. */
  protected register(session: S): void {
    this.admission.admitted(session.ip);
    this.sessions.set(session.conn, session);
    this.services.mesh.attach(session.conn);
    this.timeouts.add(session.conn);
  }

  /** A new session's hook queue. */
  protected newHookQueue(): HookQueue {
    return new HookQueue(MAX_PENDING_EVENTS);
  }

  /**
   * Queues a hook call behind the connection's earlier events. `bytes` (an inbound message's size) count
   * against maxPendingBytes while the call waits: a hook that waits (mix.http.request) must not let its
   * client queue messages without end, so past the limit the connection is not read until the queue drains.
   */
  protected dispatch<A, B>(session: S, hook: string, bytes: number, call: HookCall<C, A, B>, a: A, b: B): void {
    // Nothing to run (the seed's on_handshake): neither the call nor its arguments (a headers table per connection).
    if (this.vm.isEmptyHook(hook)) return;
    const { conn } = session;
    session.pendingBytes += bytes;
    const accepted = session.hooks.push((done) => {
      if (bytes > 0) this.taken(session, bytes);
      if (hook !== 'on_close' && !conn.open) return done();
      const started = this.timeHooks ? monotonicMs() : 0;
      call(conn, a, b, (error) => {
        if (this.timeHooks) this.metrics?.observeHook(hook, secondsSince(started));
        if (error) this.hookFailed(conn, error);
        done();
      });
    }, hook === 'on_close');
    if (!accepted) {
      session.pendingBytes -= bytes;
      conn.closeWith(CloseCode.POLICY, this.tooManyPending);
      return;
    }
    if (!session.paused && session.pendingBytes > this.config.maxPendingBytes) {
      session.paused = true;
      conn.pauseReading();
      this.log.debug('reading paused: messages wait for a hook', { client_id: conn.clientId, bytes: session.pendingBytes });
    }
  }

  /** Queues a task of the protocol's own behind the connection's earlier events. */
  protected queue(session: S, task: HookTask, force: boolean): void {
    if (!session.hooks.push(task, force)) session.conn.closeWith(CloseCode.POLICY, this.tooManyPending);
  }

  /** A waiting message was handed to its hook; reading resumes once half the limit is free again. */
  private taken(session: S, bytes: number): void {
    session.pendingBytes -= bytes;
    if (session.paused && session.pendingBytes <= this.config.maxPendingBytes / 2) {
      session.paused = false;
      session.conn.resumeReading();
    }
  }

  /** Logs a failed hook and closes its connection (unless it already closed); false, to stop a loop. */
  protected hookFailed(conn: C, error: LuaHookError): false {
    this.metrics?.hookErrors.inc({ hook: error.hook, kind: error.timedOut ? 'timeout' : 'error' });
    this.log.error(error.timedOut ? 'Lua hook stopped: budget exceeded' : 'Lua hook failed', {
      client_id: conn.clientId,
      hook: error.hook,
      error: error.traceback,
    });
    if (error.hook !== 'on_close') conn.closeWith(CloseCode.SCRIPT_ERROR, error.timedOut ? 'script timeout' : 'script error');
    return false;
  }

  /**
   * The connection ended: it leaves the mesh, a hook of its that waits stops waiting, on_close runs with
   * `error` (null for a clean close), and then the server forgets it.
   */
  protected closed(session: S, error: string | null): void {
    const { conn } = session;
    this.admission.left(session.ip);
    this.timeouts.remove(conn);
    this.services.mesh.detach(conn);
    conn.context.close('connection closed');
    // A hook waiting on HTTP or Redis for this connection stops waiting, so on_close need not.
    this.vm.release(conn);
    this.dispatch(session, 'on_close', 0, this.callOnClose, error, undefined);
    this.queue(session, (done) => {
      releaseConn(conn);
      this.sessions.delete(conn);
      done();
    }, true);
  }
}
