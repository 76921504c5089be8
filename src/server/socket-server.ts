import * as net from 'node:net';
import type { BusinessServerConfig } from '../config/schema';
import type { Logger } from '../log';
import { SocketHooks, SOCKET_HOOKS, INIT_HOOK } from '../lua/hooks';
import type { HookTask } from '../session/hook-queue';
import { registerBufferType } from '../lua/mix/buffer';
import { bytesModule } from '../lua/mix/bytes';
import type { NodeServices } from './node-services';
import { WriteBatch } from '../wire/write-batch';
import { SocketConnection, type SocketConnectionOptions } from './socket-connection';
import { remoteAddress, clientIp } from '../wire/http-request';
import { BusinessServer, type HookCall, type Session } from './business-server';
import type { Metrics } from '../metrics';
import { InputPacer } from './input-pacer';
import { monotonicMs } from '../wire/clock';

interface SocketSession extends Session<SocketConnection> {
  /** A packet-loop turn is queued or running; more input joins it instead of queueing another. */
  reading: boolean;
  /** Input arrived since the loop last handed the buffer to protocol_input. */
  fresh: boolean;
  /** When protocol_input runs again after it answered 0. */
  readonly pacer: InputPacer;
}

/**
 * One `engine.servers[]` entry with `protocol: socket`: a TCP listener whose framing the Lua entry
 * defines. Inbound bytes go through the packet loop (protocol_input → protocol_decode → on_message);
 * messages from the mesh go through protocol_encode; `conn:send` writes raw bytes. What is not about
 * raw TCP or the packet loop is the core's (business-server.ts).
 */
export class SocketBusinessServer extends BusinessServer<SocketConnection, SocketSession> {
  readonly protocol = 'socket' as const;
  protected readonly listener: net.Server;
  protected readonly hooks: SocketHooks;
  /** What every connection of this server shares: its limits, write batch and encoder. */
  private readonly connectionOptions: SocketConnectionOptions;

  constructor(config: BusinessServerConfig, services: NodeServices, log: Logger, callBudget: number, metrics?: Metrics) {
    super(config, services, log, callBudget, metrics, {
      protocol: 'socket',
      hooks: SOCKET_HOOKS,
      optionalHooks: [INIT_HOOK],
      install: (vm) => registerBufferType(vm.L),
      builtins: { 'connmix.bytes': bytesModule },
      timeHooks: false,
      tooManyPending: 'too many pending events',
    });
    this.hooks = new SocketHooks(this.vm);
    this.connectionOptions = {
      maxBufferedBytes: config.maxBufferedBytes,
      maxChannels: config.maxChannelsPerConnection,
      batch: new WriteBatch(config.writeWindow),
      contexts: services.contexts,
      encode: this.encode,
    };
    this.listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  private readonly callOnConnect: HookCall<SocketConnection, undefined, undefined> = (conn, _a, _b, done) =>
    this.hooks.onConnect(conn, done);

  /** Decides which arguments the hooks get, once the entry has loaded; a v1.0.1 entry's init() runs now. */
  protected override async loaded(): Promise<void> {
    if (this.hooks.resolveModel(this.config.hooks) === 'v1.0.1') {
      this.log.info('socket server runs CONNMIX v1.0.1 hooks (the connection is their last argument)', { entry: this.vm.chunkName });
      await this.hooks.init();
    }
  }

  private accept(socket: net.Socket): void {
    const ip = clientIp(socket);
    // Without an HTTP answer to give, a refused client is disconnected before any hook runs.
    const refusal = this.stopping ? 'shutting_down' : this.admissionRefusal(ip);
    if (refusal) {
      this.metrics?.refused.inc({ reason: refusal });
      socket.destroy();
      return;
    }
    if (!this.services.fdGuard.admit(socket, 'business')) return;
    const conn = new SocketConnection(socket, this.services.mesh.nextClientId(), remoteAddress(socket), this.connectionOptions);
    const session: SocketSession = {
      conn, hooks: this.newHookQueue(), ip, pendingBytes: 0, paused: false, reading: false, fresh: false,
      pacer: new InputPacer(() => this.read(session)),
    };
    this.register(session);
    socket.on('data', (chunk: Buffer) => this.received(session, chunk));
    socket.on('error', (error) => {
      this.log.debug('socket error', { client_id: conn.clientId, error: error.message });
      conn.failed(error);
    });
    socket.on('close', () => {
      session.pacer.stop();
      this.closed(session, conn.closeError);
    });
    this.dispatch(session, 'on_connect', 0, this.callOnConnect, undefined, undefined);
  }

  private received(session: SocketSession, chunk: Buffer): void {
    const { conn } = session;
    conn.lastReadAt = monotonicMs();
    if (!conn.open) return;
    const size = conn.pending.length + chunk.length;
    if (size > this.config.maxMessageSize) {
      this.log.warn('pending input over maxMessageSize, closing', { client_id: conn.clientId, bytes: size });
      conn.close(`pending input over maxMessageSize (${this.config.maxMessageSize} bytes)`);
      return;
    }
    conn.append(chunk);
    session.fresh = true;
    if (!session.reading && session.pacer.due(conn.pending.length)) this.read(session);
  }

  /** Starts the packet loop on the pending input, unless it runs already. */
  private read(session: SocketSession): void {
    if (session.reading || !session.conn.open) return;
    session.reading = true;
    this.queue(session, this.readTurn(session), false);
  }

  /**
   * One turn of the packet loop (CONNMIX docs, `protocol: socket` entries): protocol_input on the
   * pending input; for a packet of n > 0 bytes, protocol_decode on them and on_message on a non-nil
   * result. Each packet is its own queued turn, so a burst of packets runs as a loop rather than a chain of nested callbacks.
   */
  private readTurn(session: SocketSession): HookTask {
    return (done) => {
      const { conn } = session;
      const next = (more: boolean): void => {
        if (more && conn.open && conn.pending.length > 0) this.queue(session, this.readTurn(session), true);
        else session.reading = false;
        done();
      };
      if (!conn.open || conn.pending.length === 0) return next(false);
      session.fresh = false;
      const seen = conn.pending.length;
      this.hooks.protocolInput(conn, conn.pending, (error, result) => {
        if (error) return next(this.hookFailed(conn, error));
        const length = packetLength(result, conn.pending.length);
        if (typeof length === 'string') return next(this.protocolFailed(conn, length));
        if (length === -1) {
          conn.close('protocol_input returned -1');
          return next(false);
        }
        if (length === 0) {
          // The script may have cleared the buffer; input that came while it waited was not in it.
          session.pacer.waiting(Math.min(seen, conn.pending.length));
          return next(session.fresh && session.pacer.due(conn.pending.length));
        }
        session.pacer.took();
        this.hooks.protocolDecode(conn, conn.take(length), (error, decoded) => {
          if (error) return next(this.hookFailed(conn, error));
          if (!conn.open || decoded === null) return next(true);
          this.metrics?.countRead('socket');
          this.hooks.onMessage(conn, decoded, (error) => next(error ? this.hookFailed(conn, error) : true));
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
    this.hooks.protocolEncode(conn, payload, (error, result) => {
      finished = true;
      if (error) {
        this.hookFailed(conn, error);
        return;
      }
      if (abandoned) return;
      if (typeof result !== 'string') encoded = result;
      else this.log.warn('protocol_encode must return a non-empty string; message not sent', { client_id: conn.clientId, got: result });
    });
    if (!finished) {
      abandoned = true;
      this.log.warn('protocol_encode cannot wait (deliveries need its answer at once); message not sent', { client_id: conn.clientId });
    }
    return encoded;
  };

  /** A protocol hook answered something the packet loop cannot use; returns false to stop the loop. */
  private protocolFailed(conn: SocketConnection, why: string): false {
    this.log.error('Lua protocol error', { client_id: conn.clientId, error: why });
    conn.close(why);
    return false;
  }
}

/** protocol_input's answer checked: -1, 0 or a packet length of at most `available` bytes, or why it is unusable. */
function packetLength(result: number | string, available: number): number | string {
  if (typeof result === 'string') return result;
  const n = result;
  if (!Number.isInteger(n) || n < -1) return `protocol_input returned ${n}: expected -1, 0 or a packet length`;
  if (n > available) return `protocol_input returned ${n} but only ${available} bytes are buffered`;
  return n;
}
