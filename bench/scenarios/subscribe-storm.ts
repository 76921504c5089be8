import { shares } from '../load/fleet';
import type { StormResult } from '../load/storm';
import { sourceAddresses } from '../lib/addresses';
import { quiet, totalCpu } from '../lib/proc';
import { nowMs } from '../load/payload';
import type { StormRow } from '../report/types';
import { round, type Context } from './context';

/** One storm: `connections` connect and subscribe, then `messageConnections` of them send for `durationMs`. */
interface StormSize {
  connections: number;
  messageConnections: number;
  durationMs: number;
  /** The first connection's index: connection i subscribes to video 1,000,000 + i. */
  firstIndex: number;
}

interface PhaseCounts {
  answers: number;
  failed: number;
  error?: string;
  ms: number;
}

/**
 * subscribe-storm: `connections` new connections each send the seed's subscribe as soon as they are
 * open (connections subscribed per second, handshakes included); then some of them send
 * unsubscribe/subscribe back to back, a few in flight each: answers per second there are Lua
 * on_message calls per second for connmix-ts. A smaller storm on other videos runs first, unmeasured,
 * so that the measured one meets warm load processes and a warm server that has finished closing the
 * warm-up's connections. The load's own CPU is recorded beside the server's.
 */
export async function subscribeStorm(ctx: Context): Promise<StormRow> {
  const { target, fleet, config } = ctx;
  const { connections, messageConnections, durationMs, warmUp } = config.storm;
  await storm(ctx, {
    connections: warmUp.connections,
    messageConnections: Math.min(messageConnections, warmUp.connections),
    durationMs: warmUp.durationMs,
    firstIndex: connections,
  });
  // The warm-up's connections are closed by then on the load's side; the server may still be closing them.
  await quiet(target.pids);
  // CPU seconds so far, [server, load], at the start of each phase and at the end.
  const marks: { t: number; cpu: [number, number] }[] = [];
  const mark = async () => {
    const server = totalCpu(target.pids);
    marks.push({ cpu: [server, await fleet.cpu()], t: nowMs() });
  };
  const [connected, messaged] = await storm(ctx, { connections, messageConnections, durationMs, firstIndex: 0 }, mark);
  const [start, connectEnd, end] = marks;
  const perConnect = (side: 0 | 1) => (connected.answers > 0 ? round(((connectEnd.cpu[side] - start.cpu[side]) * 1e6) / connected.answers, 1) : 0);
  const perKMessages = (side: 0 | 1) => (messaged.answers > 0 ? round(((end.cpu[side] - connectEnd.cpu[side]) * 1e6) / messaged.answers, 3) : 0);
  const row: StormRow = {
    target: target.name,
    nodes: target.nodes.length,
    connections,
    connectPerSec: Math.round((connected.answers / connected.ms) * 1000),
    connectFailed: connected.failed,
    cpuUsPerConnect: perConnect(0),
    loadCpuUsPerConnect: perConnect(1),
    messagesPerSec: Math.round((messaged.answers / messaged.ms) * 1000),
    messageConnections,
    cpuMsPerKMessages: perKMessages(0),
    loadCpuMsPerKMessages: perKMessages(1),
    t0: connectEnd.t,
    t1: end.t,
    connectT0: start.t,
    connectT1: connectEnd.t,
    ...(connected.error !== undefined ? { error: connected.error } : {}),
  };
  ctx.log(`  ${row.connectPerSec} connect+subscribe/s (${row.connectFailed} failed), ${row.messagesPerSec} subscribe messages/s`);
  return row;
}

/**
 * Runs one storm on the fleet and closes its connections. `mark` runs before the connect phase,
 * between the phases and after the message phase (the measured storm reads the CPU clocks there).
 */
async function storm(ctx: Context, size: StormSize, mark?: () => Promise<void>): Promise<[PhaseCounts, PhaseCounts]> {
  const { target, fleet, config } = ctx;
  const split = shares(size.connections, fleet.size);
  const senders = shares(size.messageConnections, fleet.size);
  try {
    await mark?.();
    const connected = await fleet.all<StormResult>((i) => ({
      op: 'storm.connect',
      params: {
        urls: target.nodes.map((node) => node.wsUrl),
        dialect: target.dialect,
        firstIndex: size.firstIndex + split[i][0],
        count: split[i][1],
        addresses: sourceAddresses(split[i][1]),
        concurrency: config.storm.concurrency,
        timeoutMs: config.connectTimeoutMs,
      },
    }));
    await mark?.();
    const messaged = await fleet.all<StormResult>((i) => ({
      op: 'storm.messages',
      params: { connections: senders[i][1], window: config.storm.window, durationMs: size.durationMs },
    }));
    await mark?.();
    return [counts(connected), counts(messaged)];
  } finally {
    await fleet.all(() => ({ op: 'storm.close' }));
  }
}

/** The load processes' results of one phase, together: the phase lasts as long as its slowest process. */
function counts(results: StormResult[]): PhaseCounts {
  const failed = results.reduce((sum, r) => sum + r.failed, 0);
  return {
    answers: results.reduce((sum, r) => sum + r.answers, 0),
    failed,
    ms: Math.max(...results.map((r) => r.ms)),
    ...(failed > 0 ? { error: results.find((r) => r.errors.length)?.errors[0] } : {}),
  };
}
