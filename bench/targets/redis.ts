import { startProcess, stopProcess, freePort } from '../lib/proc';

export interface RunningRedis {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free 127.0.0.1 port: no persistence, nothing written to disk. */
export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  const started = await startProcess(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', '/tmp'],
    /Ready to accept connections/,
    10_000,
  ).catch((error: Error) => {
    throw new Error(`redis-server could not start (apt-get install redis-server?): ${error.message.split('\n')[0]}`);
  });
  return { port, pid: started.pid, stop: () => stopProcess(started.child) };
}
