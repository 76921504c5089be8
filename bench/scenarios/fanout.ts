import { machineBusySeconds, totalCpu } from '../lib/proc';
import { nowMs } from '../load/payload';
import { Publisher } from '../load/publisher';
import type { FanoutRow } from '../report/types';
import { round, type Context } from './context';
import { ViewerGroup, FIRST_VIDEO } from './viewer-group';

export interface Ramp {
  viewers: number;
  videos: number;
  rates: number[];
  stepMs: number;
  drainMs: number;
  p99LimitMs: number;
}

/**
 * Viewers over `videos` videos; comments published to the videos in turn at each rate of the ramp,
 * one step per rate, until p99 latency passes the limit or a comment is lost (or a publish fails).
 */
export async function rampFanout(ctx: Context, ramp: Ramp): Promise<FanoutRow[]> {
  const { target, fleet, config } = ctx;
  const group = await ViewerGroup.open(fleet, target, {
    viewers: ramp.viewers,
    videos: ramp.videos,
    concurrency: config.connectConcurrency,
    timeoutMs: config.connectTimeoutMs,
  });
  ctx.log(`  ${group.opened}/${ramp.viewers} viewers subscribed in ${group.openMs} ms${group.failed ? ` (${group.failed} failed: ${group.errors[0]})` : ''}`);
  const rows: FanoutRow[] = [];
  const publisher = new Publisher(target.nodes[0].httpHost, target.nodes[0].httpPort);
  const channelFor = (i: number) => `video:${FIRST_VIDEO + (i % ramp.videos)}`;
  const rssPerConn = group.opened > 0 ? (group.rssAfter - group.rssBefore) / group.opened : 0;
  try {
    if (group.opened === 0) throw new Error(`no viewer could subscribe: ${group.errors[0] ?? 'unknown'}`);
    // Warm-up, not measured: the JIT and the first publish's lazy paths.
    await publisher.run(Math.min(20, ramp.rates[0]), 300, channelFor);
    await group.drain(Infinity, 300, 1000);
    for (const rate of ramp.rates) {
      const row = await step(ctx, group, publisher, rate, ramp, channelFor);
      row.rssPerConn = rssPerConn;
      rows.push(row);
      ctx.log(
        `  ${rate} msg/s: ${row.deliveriesPerSec}/s delivered, p50 ${row.p50} p99 ${row.p99} max ${row.max} ms, ` +
          `lost ${row.losses}, dup ${row.duplicates}, server CPU ${row.serverCpuS} s = ${row.cpuPerMillion} s per million` +
          `${row.otherCpuS > 0.1 * row.windowS ? ` (others used ${row.otherCpuS} CPU s meanwhile)` : ''}`,
      );
      const stop = !Number.isFinite(ramp.p99LimitMs)
        ? null
        : row.publishErrors > 0
          ? `${row.publishErrors} publishes failed`
          : row.losses > 0
            ? `${row.losses} deliveries lost`
            : row.p99 > ramp.p99LimitMs
              ? `p99 ${row.p99} ms > ${ramp.p99LimitMs} ms`
              : null;
      if (stop) {
        row.stop = stop;
        break;
      }
    }
  } finally {
    publisher.close();
    await group.close();
  }
  return rows;
}

async function step(ctx: Context, group: ViewerGroup, publisher: Publisher, rate: number, ramp: Ramp, channelFor: (i: number) => string): Promise<FanoutRow> {
  const { target, fleet } = ctx;
  const t0 = nowMs();
  await group.reset(t0);
  const cpu0 = totalCpu(target.pids);
  const load0 = totalCpu(fleet.pids);
  const busy0 = machineBusySeconds();
  const self0 = process.cpuUsage();
  const started = Date.now();
  const run = await publisher.run(rate, ramp.stepMs, channelFor);
  const expected = group.expected(run.perChannel);
  const lastProgress = await group.drain(expected, Math.min(1000, ramp.drainMs), ramp.drainMs);
  const t1 = nowMs();
  const serverCpu = totalCpu(target.pids) - cpu0;
  const loadCpu = totalCpu(fleet.pids) - load0;
  const self = process.cpuUsage(self0);
  const otherCpu = machineBusySeconds() - busy0 - serverCpu - loadCpu - (self.user + self.system) / 1e6;
  const stats = await group.stats();
  const windowS = Math.max(ramp.stepMs, lastProgress - started) / 1000;
  return {
    target: target.name,
    nodes: target.nodes.length,
    viewers: ramp.viewers,
    videos: ramp.videos,
    subscribed: group.opened,
    closed: group.opened - stats.open,
    rate,
    published: run.ok,
    publishErrors: run.errors,
    expected,
    delivered: stats.delivered,
    losses: Math.max(0, expected - stats.delivered),
    duplicates: stats.duplicates,
    late: stats.late,
    windowS: round(windowS),
    deliveriesPerSec: Math.round(stats.delivered / windowS),
    p50: round(stats.latency.quantile(0.5)),
    p99: round(stats.latency.quantile(0.99)),
    max: round(stats.latency.max),
    mean: round(stats.latency.mean),
    serverCpuS: round(serverCpu),
    cpuPerMillion: stats.delivered > 0 ? round(serverCpu / (stats.delivered / 1e6)) : 0,
    loadCpuS: round(loadCpu),
    otherCpuS: round(Math.max(0, otherCpu)),
    rssPerConn: 0,
    t0,
    t1,
    ...(run.firstError ? { error: run.firstError } : {}),
  };
}
