import { stopProcess } from '../lib/proc';
import { startRedis } from './redis';
import { startScript, type StartedScript } from './raw-ws';
import type { RunningTarget, StartOptions, TargetNode, TargetSpec } from './target';

/** Socket.IO 4 + @socket.io/redis-adapter on `nodes` processes over one redis-server. */
function socketio(name: string, nodeCount: number): TargetSpec {
  return {
    name,
    description: `Socket.IO 4 with @socket.io/redis-adapter (ioredis), websocket transport only, ${nodeCount} node${nodeCount > 1 ? 's' : ''} over redis-server`,
    nodes: nodeCount,
    meshed: true,
    async start(options: StartOptions): Promise<RunningTarget> {
      const redis = await startRedis();
      const processes: StartedScript[] = [];
      try {
        for (let i = 0; i < options.nodes; i++) processes.push(await startScript('socketio-server.js', [String(redis.port)], /socketio listening/));
      } catch (error) {
        await Promise.all(processes.map((p) => stopProcess(p.started.child)));
        await redis.stop();
        throw error;
      }
      const nodes: TargetNode[] = processes.map(({ port, started }) => ({
        wsUrl: `ws://127.0.0.1:${port}`,
        httpHost: '127.0.0.1',
        httpPort: port,
        wsApiUrl: `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`,
        pid: started.pid,
      }));
      return {
        name,
        dialect: 'socketio',
        nodes,
        pids: [...nodes.map((node) => node.pid), redis.pid],
        meshed: true,
        stop: async () => {
          await Promise.all(processes.map((p) => stopProcess(p.started.child)));
          await redis.stop();
        },
      };
    },
  };
}

export const socketioRedis = socketio('socketio-redis', 1);
export const socketioRedis2 = socketio('socketio-redis-2n', 2);
