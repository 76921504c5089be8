import { WebSocket } from 'ws';
import { Waker } from './waker';
import type { Json } from './helpers';

/** A `/ws/v1` answer or event as the PHP SDK reads it. */
export interface ApiFrame {
  E?: { c: number; m: string } | null;
  r?: Json;
  i?: unknown;
  e?: string;
  p?: Json;
}

/** A raw `/ws/v1` client for tests: sends `{m, p, i}` and matches answers by `i`; keeps events apart. */
export class ApiClient {
  readonly events: ApiFrame[] = [];
  private nextId = 1;
  private readonly waiting = new Map<unknown, (frame: ApiFrame) => void>();
  private readonly waker = new Waker();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as ApiFrame;
      if (frame.e) {
        this.events.push(frame);
        this.waker.wake();
        return;
      }
      const resolve = this.waiting.get(frame.i);
      this.waiting.delete(frame.i);
      resolve?.(frame);
    });
  }

  static async open(apiUrl: string, headers: Record<string, string> = {}): Promise<ApiClient> {
    const ws = new WebSocket(`${apiUrl.replace(/^http/, 'ws')}/ws/v1`, { headers });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new ApiClient(ws);
  }

  /** Calls method `m` with params `p`; resolves with the whole answer frame. */
  call(m: string, p: unknown, timeoutMs = 10_000): Promise<ApiFrame> {
    const i = this.nextId++;
    return this.raw({ m, p, i }, i, timeoutMs);
  }

  /** Sends any frame and waits for the answer whose `i` is `answerId`. */
  raw(frame: unknown, answerId: unknown, timeoutMs = 10_000): Promise<ApiFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${JSON.stringify(frame)}`)), timeoutMs);
      this.waiting.set(answerId, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    });
  }

  /** The next pushed event, waiting up to `timeoutMs`. */
  async nextEvent(timeoutMs = 10_000): Promise<ApiFrame> {
    await this.waker.until(() => this.events.length > 0, timeoutMs, () => `no event within ${timeoutMs} ms`);
    return this.events.shift() as ApiFrame;
  }

  close(): void {
    this.ws.close();
  }
}
