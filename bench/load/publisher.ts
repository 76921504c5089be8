import * as http from 'node:http';
import { comment, nowMs, openLoop } from './payload';
import { allWithin } from './connect';

export interface PublishRun {
  /** Publishes accepted by the server (HTTP 200 with "E":null), per channel. */
  perChannel: Map<string, number>;
  ok: number;
  errors: number;
  firstError?: string;
  /** From the first publish to the last answer. */
  ms: number;
}

/**
 * The backend posting comments: POST /v1/mesh/publish at a fixed rate, open loop (a slow server does
 * not slow the publisher down; each comment carries the time it was meant to leave, which also tells
 * a receiver that a comment belongs to an earlier step). Sequence numbers count per channel and run on
 * across steps, so each viewer sees a dense sequence and can tell duplicates.
 */
export class Publisher {
  private readonly seqs = new Map<string, number>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  /** Publishes `rate` comments per second for `durationMs`, to `channelFor(i)` for the i-th of the run. */
  async run(rate: number, durationMs: number, channelFor: (i: number) => string): Promise<PublishRun> {
    const result: PublishRun = { perChannel: new Map(), ok: 0, errors: 0, ms: 0 };
    const answers: Promise<void>[] = [];
    const started = await openLoop(rate, durationMs, (i, due) => {
      const channel = channelFor(i);
      const seq = this.seqs.get(channel) ?? 0;
      this.seqs.set(channel, seq + 1);
      answers.push(this.post(channel, comment(seq, due), result));
    });
    await allWithin(answers, 15_000);
    result.ms = nowMs() - started;
    return result;
  }

  private post(channel: string, d: string, result: PublishRun): Promise<void> {
    const body = JSON.stringify({ c: channel, d });
    return new Promise<void>((resolve) => {
      const req = http.request(
        { host: this.host, port: this.port, path: '/v1/mesh/publish', method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if (res.statusCode === 200 && text.includes('"E":null')) {
              result.ok++;
              result.perChannel.set(channel, (result.perChannel.get(channel) ?? 0) + 1);
            } else {
              result.errors++;
              result.firstError ??= `HTTP ${res.statusCode}: ${text.slice(0, 200)}`;
            }
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('publish timed out after 10 s')));
      req.on('error', (error) => {
        result.errors++;
        result.firstError ??= error.message;
        resolve();
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
