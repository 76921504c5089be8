import cluster, { type Worker } from 'node:cluster';

/** A worker that dies is started again after this long, doubling while it keeps dying young. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that lived this long is considered healthy again (its restart delay resets). */
const HEALTHY_AFTER_MS = 30_000;
/** How long workers get to drain on SIGTERM/SIGINT (or when replaced) before they are killed. */
const STOP_GRACE_MS = 15_000;
/** How long a new worker may take to start serving during a rolling restart. */
const READY_TIMEOUT_MS = 30_000;
/** Workers exit with this code when the config or the Lua entry is bad (as the CLI does). */
const CONFIG_EXIT_CODE = 2;

/** The message a worker sends the primary once its engine serves. */
export const READY_MESSAGE = 'connmix:ready';

/**
 * `connmix engine -p N` in the primary process: runs N worker processes of this same command line,
 * each a full node of the mesh, all serving the same ports (Node's cluster module hands connections to
 * them in turn). A worker that exits unexpectedly is replaced; SIGHUP replaces every worker one at a
 * time (a rolling restart: a new worker serves before the old one drains), so the others keep serving;
 * SIGTERM/SIGINT stop every worker gracefully.
 */
export class WorkerSupervisor {
  private readonly current = new Map<number, Worker>();
  private readonly delays = new Map<number, number>();
  private stopping = false;
  private rolling = false;

  constructor(
    private readonly count: number,
    private readonly say: (line: string) => void,
  ) {}

  start(): void {
    for (let slot = 0; slot < this.count; slot++) this.fork(slot);
    process.once('SIGINT', () => this.stop('SIGINT'));
    process.once('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGHUP', () => void this.roll());
  }

  private fork(slot: number): Worker {
    const worker = cluster.fork({ CONNMIX_WORKER_SLOT: String(slot) });
    const startedAt = Date.now();
    this.current.set(slot, worker);
    worker.on('exit', (code, signal) => {
      if (this.stopping || this.current.get(slot) !== worker) return;
      if (code === CONFIG_EXIT_CODE) {
        // The config or the Lua entry is bad: restarting cannot help.
        this.say(`worker ${slot} cannot start (exit code ${code}), stopping`);
        this.stop('SIGTERM', CONFIG_EXIT_CODE);
        return;
      }
      const lived = Date.now() - startedAt;
      const delay = lived > HEALTHY_AFTER_MS ? RESTART_DELAY_MS : Math.min((this.delays.get(slot) ?? RESTART_DELAY_MS / 2) * 2, MAX_RESTART_DELAY_MS);
      this.delays.set(slot, delay);
      this.say(`worker ${slot} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}), restarting in ${delay} ms`);
      setTimeout(() => this.stopping || this.fork(slot), delay);
    });
    return worker;
  }

  /** Replaces the workers one at a time, each only once its successor serves. */
  private async roll(): Promise<void> {
    if (this.rolling || this.stopping) return;
    this.rolling = true;
    this.say(`rolling restart of ${this.count} workers`);
    try {
      for (let slot = 0; slot < this.count && !this.stopping; slot++) {
        const old = this.current.get(slot);
        const next = this.fork(slot);
        if (!(await ready(next))) {
          this.say(`worker ${slot} replacement did not become ready; rolling restart stopped`);
          return;
        }
        if (old && !old.isDead()) {
          old.process.kill('SIGTERM');
          await exited(old, STOP_GRACE_MS);
        }
        this.say(`worker ${slot} replaced (pid ${old?.process.pid} → ${next.process.pid})`);
      }
      this.say('rolling restart done');
    } finally {
      this.rolling = false;
    }
  }

  private stop(signal: NodeJS.Signals, exitCode = 0): void {
    if (this.stopping) return;
    this.stopping = true;
    this.say(`stopping ${this.count} workers (${signal})`);
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    for (const worker of workers) worker.process.kill('SIGTERM');
    Promise.all(workers.map((worker) => exited(worker, STOP_GRACE_MS))).then(() => process.exit(exitCode));
  }
}

/** Resolves true once the worker reports it serves, false if it exits or takes too long first. */
function ready(worker: Worker): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
    worker.on('message', (message) => {
      if (message === READY_MESSAGE) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Resolves once the worker has exited, killing it if it takes longer than `graceMs`. */
function exited(worker: Worker, graceMs: number): Promise<void> {
  if (worker.isDead()) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => worker.process.kill('SIGKILL'), graceMs);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
