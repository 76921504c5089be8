import { shares } from '../load/fleet';
import type { StormResult } from '../load/storm';
import { sourceAddresses } from '../lib/addresses';
import { totalCpu } from '../lib/proc';
import { nowMs } from '../load/payload';
import type { StormRow } from '../report/types';
import { round, type Context } from './context';

/**
 * subscribe-storm: `connections` new connections each send the seed's subscribe as soon as they are
 * open (connections subscribed per second, handshakes included); then some of them send
 * unsubscribe/subscribe back to back, a few in flight each: answers per second there are Lua
 * on_message calls per second for connmix-ts.
 */
export async function subscribeStorm(ctx: Context): Promise<StormRow> {
  const { target, fleet, config } = ctx;
  const { connections, concurrency, messageConnections, window, durationMs } = config.storm;
  const urls = target.nodes.map((node) => node.wsUrl);
  const split = shares(connections, fleet.size);
  const senders = shares(messageConnections, fleet.size);
  try {
    const connectCpu0 = totalCpu(target.pids);
    const connectT0 = nowMs();
    const connected = await fleet.all<StormResult>((i) => ({
      op: 'storm.connect',
      params: {
        urls,
        dialect: target.dialect,
        firstIndex: split[i][0],
        count: split[i][1],
        addresses: sourceAddresses(split[i][1]),
        concurrency,
        timeoutMs: config.connectTimeoutMs,
      },
    }));
    const answered = connected.reduce((sum, r) => sum + r.answers, 0);
    const failed = connected.reduce((sum, r) => sum + r.failed, 0);
    const connectMs = Math.max(...connected.map((r) => r.ms));
    const cpu0 = totalCpu(target.pids);
    const connectT1 = nowMs();
    const connectCpu = cpu0 - connectCpu0;
    const t0 = nowMs();
    const messaged = await fleet.all<StormResult>((i) => ({
      op: 'storm.messages',
      params: { connections: senders[i][1], window, durationMs },
    }));
    const cpu = totalCpu(target.pids) - cpu0;
    const t1 = nowMs();
    const messages = messaged.reduce((sum, r) => sum + r.answers, 0);
    const messageMs = Math.max(...messaged.map((r) => r.ms));
    const row: StormRow = {
      target: target.name,
      nodes: target.nodes.length,
      connections,
      connectPerSec: Math.round((answered / connectMs) * 1000),
      connectFailed: failed,
      cpuUsPerConnect: answered > 0 ? round((connectCpu * 1e6) / answered, 1) : 0,
      messagesPerSec: Math.round((messages / messageMs) * 1000),
      messageConnections,
      cpuMsPerKMessages: messages > 0 ? round((cpu * 1e6) / messages, 3) : 0,
      t0,
      t1,
      connectT0,
      connectT1,
      ...(failed > 0 ? { error: connected.find((r) => r.errors.length)?.errors[0] } : {}),
    };
    ctx.log(`  ${row.connectPerSec} connect+subscribe/s (${failed} failed), ${row.messagesPerSec} subscribe messages/s`);
    return row;
  } finally {
    await fleet.all(() => ({ op: 'storm.close' }));
  }
}
