import type { BackoffOptions } from './types';

/** Reconnection delays: `minMs`, doubling to `maxMs`, each with up to 20% jitter so clients spread out. */
export class Backoff {
  private attempt = 0;
  private readonly minMs: number;
  private readonly maxMs: number;

  constructor(options: BackoffOptions = {}) {
    this.minMs = options.minMs ?? 500;
    this.maxMs = Math.max(this.minMs, options.maxMs ?? 30_000);
  }

  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (1 + Math.random() * 0.2));
  }

  reset(): void {
    this.attempt = 0;
  }
}
