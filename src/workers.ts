import cluster, { type Worker } from 'node:cluster';

/** A worker that dies is started again after this long, doubling while it keeps dying young. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that lived this long is considered healthy again (its restart delay resets). */
const HEALTHY_AFTER_MS = 30_000;
/** Workers exit with this code when the config or the Lua entry is bad (as the CLI does). */
const CONFIG_EXIT_CODE = 2;
/** How long workers get to drain on SIGTERM/SIGINT before they are killed. */
const STOP_GRACE_MS = 15_000;

/**
 * `connmix engine -p N` in the primary process: runs N worker processes of this same command line,
 * each a full node of the mesh, all serving the same ports (Node's cluster module hands connections
 * to them in turn). A worker that exits unexpectedly is replaced; SIGTERM/SIGINT stop every worker
 * gracefully. Returns when the supervisor is set up.
 */
export function superviseWorkers(count: number, say: (line: string) => void): void {
  let stopping = false;
  const delays = new Map<number, number>();
  const start = (slot: number) => {
    const worker = cluster.fork({ CONNMIX_WORKER_SLOT: String(slot) });
    const startedAt = Date.now();
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      if (code === CONFIG_EXIT_CODE) {
        // The config or the Lua entry is bad: restarting cannot help.
        say(`worker ${slot} cannot start (exit code ${code}), stopping`);
        stop('SIGTERM', CONFIG_EXIT_CODE);
        return;
      }
      const lived = Date.now() - startedAt;
      const delay = lived > HEALTHY_AFTER_MS ? RESTART_DELAY_MS : Math.min((delays.get(slot) ?? RESTART_DELAY_MS / 2) * 2, MAX_RESTART_DELAY_MS);
      delays.set(slot, delay);
      say(`worker ${slot} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}), restarting in ${delay} ms`);
      setTimeout(() => start(slot), delay);
    });
  };
  const stop = (signal: NodeJS.Signals, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    say(`stopping ${count} workers (${signal})`);
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    for (const worker of workers) worker.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const worker of workers) worker.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
    timer.unref();
    Promise.all(workers.map((worker) => new Promise((resolve) => (worker.isDead() ? resolve(null) : worker.once('exit', resolve))))).then(() =>
      process.exit(exitCode),
    );
  };
  for (let slot = 0; slot < count; slot++) start(slot);
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
