import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

/**
 * A WebSocket client on a bare `net.Socket`, for the load of the subscribe storm. The storm's connect
 * phase measures how fast a server takes new connections; with ws's client the load spent 163-221 µs of
 * CPU per connect on two shared cores, more than any server, and so set the rate for every target
 * (bench/notes.md, thirteenth session). This client does what the wire needs and no more:
 *
 * - one handshake key per process, not per connection: a server can neither tell nor care, and the
 *   per-connection random key cost 12 µs a connect;
 * - client frames carry the mask bit with a zero key, which RFC 6455 allows and which leaves the
 *   payload as is;
 * - no HTTP client, no streams beyond the socket's own, no UTF-8 validation, no extensions.
 *
 * It still checks what a server could get wrong: the 101 status and the Sec-WebSocket-Accept value, and
 * frames that are masked, oversized or malformed close the socket. Server frames may arrive split or
 * several per chunk, fragmented or not, with 16- or 64-bit lengths; pings are answered.
 */

/** One key for the whole process; the accept value a server must answer with follows from it. */
const KEY = randomBytes(16).toString('base64');
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
const ACCEPT_LINE = /^sec-websocket-accept:[ \t]*(\S+)/im;

/** The largest message (or handshake answer) the client keeps; the storm's are under 100 bytes. */
const MAX_MESSAGE = 16 * 1024 * 1024;
const MAX_HANDSHAKE = 16 * 1024;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const EMPTY = Buffer.alloc(0);

export interface BareSocketOptions {
  /** ws://host:port/path?query */
  url: string;
  /** Source address to bind (127.0.0.x for the load's spread of ephemeral ports). */
  localAddress?: string;
  /** The handshake fails past this. */
  timeoutMs: number;
  /**
   * Each text or binary message; `data` is only valid during the call. Given here, not set after open()
   * resolves, because the server's first messages may arrive with its 101 answer.
   */
  onMessage(data: Buffer, socket: BareSocket): void;
}

export class BareSocket {
  /** Once, when the socket is gone, with why. */
  onClose: (reason: string) => void = () => {};

  /** 'failing': destroyed by this side, its 'close' event still to come. */
  private state: 'handshake' | 'open' | 'failing' | 'closed' = 'handshake';
  private pending: Buffer = EMPTY;
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private reason = 'closed by the server';
  private closeWaiters: Array<() => void> = [];
  /** Set by open() while the handshake runs. */
  private onOpen: () => void = () => {};

  private constructor(
    private readonly socket: net.Socket,
    private readonly onMessage: (data: Buffer, socket: BareSocket) => void,
  ) {}

  /** Connects and completes the opening handshake; rejects on a refused upgrade, an error or a timeout. */
  static open(options: BareSocketOptions): Promise<BareSocket> {
    const url = new URL(options.url);
    const port = Number(url.port) || 80;
    const request = Buffer.from(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      'latin1',
    );
    const socket = net.connect({ host: url.hostname, port, localAddress: options.localAddress, noDelay: true });
    const client = new BareSocket(socket, options.onMessage);
    return new Promise<BareSocket>((resolve, reject) => {
      const timer = setTimeout(() => client.fail(`no handshake after ${options.timeoutMs} ms`), options.timeoutMs);
      client.onOpen = () => {
        clearTimeout(timer);
        resolve(client);
      };
      client.onClose = (reason) => {
        clearTimeout(timer);
        reject(new Error(reason));
      };
      socket.on('connect', () => socket.write(request));
      socket.on('data', (chunk: Buffer) => client.receive(chunk));
      socket.on('error', (error) => (client.reason = error.message));
      socket.on('close', () => client.closed());
    });
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Sends one text message (ignored once the socket is closed). */
  send(text: string): void {
    if (this.state !== 'open') return;
    const length = Buffer.byteLength(text);
    const head = length < 126 ? 6 : length < 65536 ? 8 : 14;
    const frame = Buffer.allocUnsafe(head + length);
    frame[0] = 0x80 | OP_TEXT;
    writeLength(frame, length);
    frame.writeUInt32BE(0, head - 4); // the zero mask key
    frame.write(text, head);
    this.socket.write(frame);
  }

  /** Drops the connection at once (no closing handshake): the server sees the TCP close. */
  terminate(): void {
    this.fail('terminated');
  }

  /** Resolves when the socket is gone. */
  whenClosed(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  private fail(reason: string): void {
    if (this.state === 'failing' || this.state === 'closed') return;
    this.state = 'failing';
    this.reason = reason;
    this.socket.destroy();
  }

  private closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.pending = EMPTY;
    this.fragments = [];
    this.onClose(this.reason);
    for (const resolve of this.closeWaiters) resolve();
    this.closeWaiters = [];
  }

  private receive(chunk: Buffer): void {
    const data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = this.state === 'handshake' ? this.handshake(data) : 0;
    if (at < 0) return;
    while (this.state === 'open' && data.length - at >= 2) {
      const used = this.frame(data, at);
      if (used === 0) break;
      at += used;
    }
    this.pending = this.state === 'open' && at < data.length ? data.subarray(at) : EMPTY;
  }

  /** Reads the 101 answer; returns where the frames start, or -1 if it is incomplete or refused. */
  private handshake(data: Buffer): number {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) {
      if (data.length > MAX_HANDSHAKE) this.fail('handshake answer too long');
      else this.pending = data;
      return -1;
    }
    const head = data.toString('latin1', 0, end);
    const status = head.slice(0, head.indexOf('\r\n'));
    if (!/^HTTP\/1\.1 101 /.test(status)) {
      this.fail(`upgrade refused: ${status}`);
      return -1;
    }
    if (ACCEPT_LINE.exec(head)?.[1] !== ACCEPT) {
      this.fail('wrong Sec-WebSocket-Accept');
      return -1;
    }
    this.state = 'open';
    this.onOpen();
    return end + 4;
  }

  /** Handles the frame at `at`; returns its size, or 0 if it has not fully arrived. */
  private frame(data: Buffer, at: number): number {
    const first = data[at];
    const second = data[at + 1];
    if (second & 0x80) return this.protocolError('masked frame from the server');
    if (first & 0x70) return this.protocolError('reserved bits set');
    let length = second & 0x7f;
    let head = 2;
    if (length === 126) {
      if (data.length - at < 4) return 0;
      length = data.readUInt16BE(at + 2);
      head = 4;
    } else if (length === 127) {
      if (data.length - at < 10) return 0;
      if (data.readUInt32BE(at + 2) !== 0) return this.protocolError('frame too long');
      length = data.readUInt32BE(at + 6);
      head = 10;
    }
    if (length > MAX_MESSAGE) return this.protocolError('frame too long');
    if (data.length - at < head + length) return 0;
    const payload = data.subarray(at + head, at + head + length);
    const opcode = first & 0x0f;
    const fin = (first & 0x80) !== 0;
    if (opcode >= OP_CLOSE) {
      if (!fin || length > 125) return this.protocolError('bad control frame');
      if (opcode === OP_PING) this.control(OP_PONG, payload);
      else if (opcode === OP_CLOSE) this.fail(`closed by the server (${length >= 2 ? payload.readUInt16BE(0) : 1005})`);
      else if (opcode !== OP_PONG) return this.protocolError(`unknown opcode ${opcode}`);
    } else if (!this.message(opcode, fin, payload)) {
      return 0;
    }
    return head + length;
  }

  /** Delivers a data frame, or keeps it until its message's last fragment; false on a protocol error. */
  private message(opcode: number, fin: boolean, payload: Buffer): boolean {
    const continuing = this.fragments.length > 0;
    if (opcode === OP_CONTINUATION ? !continuing : continuing || (opcode !== OP_TEXT && opcode !== OP_BINARY)) {
      this.protocolError(`unexpected opcode ${opcode}`);
      return false;
    }
    if (fin && !continuing) {
      this.onMessage(payload, this);
      return true;
    }
    this.fragmentBytes += payload.length;
    if (this.fragmentBytes > MAX_MESSAGE) {
      this.protocolError('message too long');
      return false;
    }
    // A copy, not a view that would keep the whole chunk alive.
    this.fragments.push(Buffer.from(payload));
    if (fin) {
      const whole = Buffer.concat(this.fragments);
      this.fragments = [];
      this.fragmentBytes = 0;
      this.onMessage(whole, this);
    }
    return true;
  }

  private control(opcode: number, payload: Buffer): void {
    const frame = Buffer.allocUnsafe(6 + payload.length);
    frame[0] = 0x80 | opcode;
    frame[1] = 0x80 | payload.length;
    frame.writeUInt32BE(0, 2);
    payload.copy(frame, 6);
    this.socket.write(frame);
  }

  private protocolError(reason: string): 0 {
    this.fail(`protocol error: ${reason}`);
    return 0;
  }
}

/** Writes a masked frame's payload length (7, 16 or 64 bits) after its first byte. */
function writeLength(frame: Buffer, length: number): void {
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
}
