import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { startProcess, stopProcess, freePort, type Started } from '../lib/proc';
import { startRedis, type RunningRedis } from './redis';
import { profileArgs } from './raw-ws';
import type { RunningTarget, StartOptions, TargetNode, TargetSpec } from './target';

/** The repository root (this file runs from dist/bench/targets). */
const ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * The shipped connmix.yaml with only what a bench run must change: free ports on 127.0.0.1, the seed's
 * entry by absolute path, warnings only on stdout and no log file, the broker, and no per-connection
 * message rate limit (maxMessagesPerSecond, 100 by default): subscribe-storm sends faster than that on
 * purpose, to measure the Lua path rather than the abuse limiter. Every other limit stays as shipped
 * (writeWindow too, unless `--write-window` asks for another). `dev` also serves the center API: give
 * it `centerPort`, so that several nodes on one machine do not all want 6787. `entry` replaces the
 * seed's entry (absolute, or from the repository root: the chat-room scenario's lua/examples/chat-room.lua).
 */
export function benchYaml(wsPort: number, apiPort: number, redisPort: number | null,
  { writeWindow, centerPort, entry }: { writeWindow?: number; centerPort?: number; entry?: string } = {}): string {
  const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'connmix.yaml'), 'utf8'));
  if (centerPort !== undefined) config.center = { ...config.center, apiServer: { port: centerPort, bind: '127.0.0.1' } };
  config.logging = { ...config.logging, level: 'warn', filename: '' };
  config.engine.apiServer = { ...config.engine.apiServer, port: apiPort, bind: '127.0.0.1' };
  const server = config.engine.servers[0];
  config.engine.servers = [{ ...server, port: wsPort, bind: '127.0.0.1', entry: path.resolve(ROOT, entry ?? server.entry), maxMessagesPerSecond: 0 }];
  if (writeWindow !== undefined) config.engine.servers[0].writeWindow = writeWindow;
  config.engine.mesh =
    redisPort === null
      ? { ...config.engine.mesh, broker: 'memory' }
      : { ...config.engine.mesh, broker: 'redis', redis: { ...config.engine.mesh.redis, addrs: [`127.0.0.1:${redisPort}`] } };
  return YAML.stringify(config);
}

/** The viewer path of the shipped yaml (the seed's /barrage-videos). */
export function viewerPath(): string {
  const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'connmix.yaml'), 'utf8'));
  const option = (config.engine.servers[0].options as { name: string; value: string }[]).find((o) => o.name === 'path');
  return option?.value ?? '/';
}

/** A connmix-ts process as the load sees it: its viewer URL, its HTTP and WebSocket APIs, its pid. */
function connmixNode(wsPort: number, apiPort: number, pid: number): TargetNode {
  return {
    wsUrl: `ws://127.0.0.1:${wsPort}${viewerPath()}`,
    httpHost: '127.0.0.1',
    httpPort: apiPort,
    wsApiUrl: `ws://127.0.0.1:${apiPort}/ws/v1`,
    pid,
  };
}

function connmix(name: string, nodeCount: number, broker: 'memory' | 'redis'): TargetSpec {
  return {
    name,
    description: `connmix-ts (bin/connmix.js dev) with the seed's Lua and connmix.yaml, ${broker} broker, ${nodeCount} node${nodeCount > 1 ? 's' : ''}`,
    nodes: nodeCount,
    meshed: broker === 'redis',
    async start(options: StartOptions): Promise<RunningTarget> {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-bench-'));
      let redis: RunningRedis | null = null;
      const processes: { wsPort: number; apiPort: number; started: Started }[] = [];
      const stop = async () => {
        await Promise.all(processes.map((p) => stopProcess(p.started.child, 12_000)));
        await redis?.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      };
      try {
        if (broker === 'redis') redis = await startRedis();
        for (let i = 0; i < options.nodes; i++) {
          const wsPort = await freePort();
          const apiPort = await freePort();
          const file = path.join(dir, `node${i}.yaml`);
          fs.writeFileSync(file, benchYaml(wsPort, apiPort, redis?.port ?? null, { writeWindow: options.writeWindow, centerPort: await freePort(), entry: options.entry }));
          const started = await startProcess(
            process.execPath,
            [...profileArgs(options), path.join(ROOT, 'bin', 'connmix.js'), 'dev', '-f', file],
            /api server listening/,
            20_000,
            { cwd: dir },
          );
          processes.push({ wsPort, apiPort, started });
        }
      } catch (error) {
        await stop();
        throw error;
      }
      const nodes = processes.map(({ wsPort, apiPort, started }) => connmixNode(wsPort, apiPort, started.pid));
      return {
        name,
        dialect: 'seed',
        nodes,
        pids: [...nodes.map((node) => node.pid), ...(redis ? [redis.pid] : [])],
        meshed: broker === 'redis' || options.nodes === 1,
        stop,
      };
    },
  };
}

/**
 * `connmix engine -p N` over Redis: N worker processes share one business port and one API port (the
 * primary hands connections to them in turn), each a node of the mesh. `nodes` is the worker count;
 * the target lists the shared ports once per worker, so the load spreads its requests the same way.
 */
function connmixEngine(name: string, workers: number): TargetSpec {
  return {
    name,
    description: `connmix-ts (bin/connmix.js engine -p N) with the seed's Lua and connmix.yaml, redis broker, N worker processes on one port (N = ${workers}, or more for more connections than ${workers} processes may hold)`,
    nodes: workers,
    meshed: true,
    scalesOut: true,
    async start(options: StartOptions): Promise<RunningTarget> {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-bench-'));
      let redis: RunningRedis | null = null;
      let primary: Started | null = null;
      const stop = async () => {
        if (primary) await stopProcess(primary.child, 20_000);
        await redis?.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      };
      try {
        redis = await startRedis();
        const [wsPort, apiPort] = [await freePort(), await freePort()];
        const file = path.join(dir, 'engine.yaml');
        fs.writeFileSync(file, benchYaml(wsPort, apiPort, redis.port, { writeWindow: options.writeWindow, entry: options.entry }));
        primary = await startProcess(
          process.execPath,
          [path.join(ROOT, 'bin', 'connmix.js'), 'engine', '-f', file, '-p', String(options.nodes)],
          new RegExp(`(?:api server listening[\\s\\S]*){${options.nodes}}`),
          60_000,
          { cwd: dir },
        );
        const pids = [...primary.output().matchAll(/worker \d+ \(pid (\d+)\): api server listening/g)].map((m) => Number(m[1]));
        const nodes = pids.map((pid) => connmixNode(wsPort, apiPort, pid));
        return { name, dialect: 'seed', nodes, pids: [primary.pid, ...pids, redis.pid], meshed: true, stop };
      } catch (error) {
        await stop();
        throw error;
      }
    },
  };
}

export const connmixMemory = connmix('connmix-ts', 1, 'memory');
export const connmixEngine2 = connmixEngine('connmix-ts-engine', 2);
export const connmixRedis2 = connmix('connmix-ts-redis-2n', 2, 'redis');
