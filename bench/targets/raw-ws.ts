import * as path from 'node:path';
import { startProcess, stopProcess, freePort } from '../lib/proc';
import type { RunningTarget, StartOptions, TargetNode, TargetSpec } from './target';

/** Starts one bench server script (compiled next to this file) on a free port. */
export async function startScript(script: string, args: string[], ready: RegExp, nodeArgs: string[] = []) {
  const port = await freePort();
  const started = await startProcess(process.execPath, [...nodeArgs, path.join(__dirname, script), String(port), ...args], ready, 15_000);
  return { port, started };
}

export type StartedScript = Awaited<ReturnType<typeof startScript>>;

/** Node arguments of a server process: BENCH_SERVER_FLAGS (space-separated), then the profiler's when asked for. */
export function profileArgs(options: StartOptions): string[] {
  const extra = process.env.BENCH_SERVER_FLAGS ? process.env.BENCH_SERVER_FLAGS.split(' ') : [];
  return [...extra, ...(options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : [])];
}

export const rawWs: TargetSpec = {
  name: 'raw-ws',
  description: 'the smallest Node + ws server doing the same job (bench/targets/raw-ws-server.ts): frame once, cork per tick',
  nodes: 1,
  meshed: false,
  async start(options: StartOptions): Promise<RunningTarget> {
    const processes: StartedScript[] = [];
    try {
      for (let i = 0; i < options.nodes; i++) processes.push(await startScript('raw-ws-server.js', [], /raw-ws listening/, profileArgs(options)));
    } catch (error) {
      await Promise.all(processes.map((p) => stopProcess(p.started.child)));
      throw error;
    }
    const nodes: TargetNode[] = processes.map(({ port, started }) => ({
      wsUrl: `ws://127.0.0.1:${port}/barrage-videos`,
      httpHost: '127.0.0.1',
      httpPort: port,
      wsApiUrl: `ws://127.0.0.1:${port}/ws/v1`,
      pid: started.pid,
    }));
    return {
      name: 'raw-ws',
      dialect: 'seed',
      nodes,
      pids: nodes.map((node) => node.pid),
      meshed: options.nodes === 1,
      stop: async () => {
        await Promise.all(processes.map((p) => stopProcess(p.started.child)));
      },
    };
  },
};
