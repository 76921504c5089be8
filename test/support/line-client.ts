import * as net from 'node:net';
import { withTimeout } from './helpers';
import { Waker } from './waker';

/** A raw TCP client that splits what it receives into lines. */
export class LineClient {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  private input = '';
  private readonly waker = new Waker();

  constructor(port: number, localAddress?: string) {
    this.socket = net.connect({ port, host: '127.0.0.1', noDelay: true, localAddress });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.input += chunk;
      this.waker.wake();
    });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.on('close', () => {
      resolve();
      this.waker.wake();
    }));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next `length` characters received, waiting up to `timeoutMs`. */
  async take(length: number, timeoutMs = 3000): Promise<string> {
    await this.until(() => this.input.length >= length, timeoutMs);
    const out = this.input.slice(0, length);
    this.input = this.input.slice(length);
    return out;
  }

  /** The next line, without its "\n". */
  async line(timeoutMs = 3000): Promise<string> {
    await this.until(() => this.input.includes('\n'), timeoutMs);
    const end = this.input.indexOf('\n');
    const line = this.input.slice(0, end);
    this.input = this.input.slice(end + 1);
    return line;
  }

  /** Sends a line of Lua and returns the answer line. */
  async eval(source: string): Promise<string> {
    this.write(`${source}\n`);
    return this.line();
  }

  async silentFor(ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.input.length === 0;
  }

  waitClosed(timeoutMs = 3000): Promise<void> {
    return withTimeout(this.closed, timeoutMs, 'connection did not close');
  }

  close(): void {
    this.socket.end();
  }

  private until(ready: () => boolean, timeoutMs: number): Promise<void> {
    return this.waker.until(ready, timeoutMs, () => `nothing within ${timeoutMs} ms (had ${JSON.stringify(this.input)})`, () => {
      if (this.socket.destroyed) throw new Error(`connection closed while waiting (had ${JSON.stringify(this.input)})`);
    });
  }
}
