import { Publisher } from '../load/publisher';
import type { FanoutRow } from '../report/types';
import { round, type Context } from './context';
import { ViewerGroup, FIRST_VIDEO } from './viewer-group';
import { measureStep, othersNote, stopReason } from './step';

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
          `lost ${row.losses}, dup ${row.duplicates}, server CPU ${row.serverCpuS} s = ${row.cpuPerMillion} s per million${othersNote(row)}`,
      );
      const stop = stopReason(row, ramp.p99LimitMs, row.publishErrors > 0 ? `${row.publishErrors} publishes failed` : null);
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
  const { row, run, stats } = await measureStep(ctx, group, rate, ramp, () => publisher.run(rate, ramp.stepMs, channelFor),
    (run) => group.expected(run.perChannel));
  return {
    ...row,
    viewers: ramp.viewers,
    videos: ramp.videos,
    subscribed: group.opened,
    published: run.ok,
    publishErrors: run.errors,
    duplicates: stats.duplicates,
    mean: round(stats.latency.mean),
    rssPerConn: 0,
    ...(run.firstError ? { error: run.firstError } : {}),
  };
}
