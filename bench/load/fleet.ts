import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { track, stopProcess } from '../lib/proc';
import type { Command } from './worker';

/** Connections one load process may hold (RLIMIT_NOFILE is 20,000 here, hard; keep room for the rest). */
export const MAX_CONNECTIONS_PER_WORKER = 18_000;

/**
 * The load-generator processes: at least one per core, more when the connections would not fit the fd
 * limit of one process. Commands go to every worker (each with its share) and the answers come back
 * as one list.
 */
export class Fleet {
  private readonly workers: ChildProcess[] = [];
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private nextId = 0;

  private constructor() {}

  static async start(count: number): Promise<Fleet> {
    const fleet = new Fleet();
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(__dirname, 'worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      track(child);
      child.on('message', (message: { id: number; result?: unknown; error?: string }) => {
        const waiter = fleet.pending.get(message.id);
        if (!waiter) return;
        fleet.pending.delete(message.id);
        if (message.error !== undefined) waiter.reject(new Error(`load worker: ${message.error}`));
        else waiter.resolve(message.result);
      });
      child.on('exit', (code, signal) => {
        // A worker that dies mid-command fails that command instead of hanging the run.
        for (const [id, waiter] of fleet.pending) {
          fleet.pending.delete(id);
          waiter.reject(new Error(`load worker exited (${signal ?? code})`));
        }
      });
      fleet.workers.push(child);
    }
    return fleet;
  }

  get size(): number {
    return this.workers.length;
  }

  get pids(): number[] {
    return this.workers.map((worker) => worker.pid!);
  }

  /** Sends `command(i)` to worker i, for every worker, and resolves with their answers. */
  all<T>(command: (worker: number) => Command | null): Promise<T[]> {
    const calls: Promise<T>[] = [];
    this.workers.forEach((worker, i) => {
      const c = command(i);
      if (c) calls.push(this.call<T>(worker, c));
    });
    return Promise.all(calls);
  }

  /** CPU seconds the workers have used since they started, all together (user and system). */
  async cpu(): Promise<number> {
    const each = await this.all<number>(() => ({ op: 'cpu' }));
    return each.reduce((sum, seconds) => sum + seconds, 0);
  }

  private call<T>(worker: ChildProcess, command: Command): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      worker.send({ id, command });
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((worker) => {
      worker.disconnect();
      return stopProcess(worker, 3000);
    }));
  }
}

/** Splits `total` into `parts` near-equal shares: [first index, count] of each. */
export function shares(total: number, parts: number): [number, number][] {
  const result: [number, number][] = [];
  let first = 0;
  for (let i = 0; i < parts; i++) {
    const count = Math.floor(total / parts) + (i < total % parts ? 1 : 0);
    result.push([first, count]);
    first += count;
  }
  return result;
}

/** Workers needed for `connections`: at least `minimum` (one per core), and enough for the fd limit. */
export function workersFor(connections: number, minimum: number): number {
  return Math.max(minimum, Math.ceil(connections / MAX_CONNECTIONS_PER_WORKER));
}
