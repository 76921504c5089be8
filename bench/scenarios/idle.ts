import { sleep, totalCpu, totalRss } from '../lib/proc';
import type { IdleRow } from '../report/types';
import { round, type Context } from './context';
import { ViewerGroup } from './viewer-group';

/**
 * idle: `connections` viewers connect and subscribe, then nothing is published. The server's RSS after
 * they settled minus its RSS before they came, divided by their number, is what one idle subscribed
 * connection costs (the Lua side of a connection included, for connmix-ts). The server's CPU over
 * `cpuWindowMs`, once `cpuSettleMs` more have let the garbage of the connects be collected, per second
 * and thousand connections, is what keeping them costs while nothing happens (timeouts, keepalives). Run on a fresh target, so that no earlier scenario's heap
 * hides in the baseline.
 */
export async function idle(ctx: Context, connections: number): Promise<IdleRow> {
  const { target, fleet, config } = ctx;
  await sleep(config.idle.settleMs);
  const rssBefore = totalRss(target.pids);
  const cpu0 = totalCpu(target.pids);
  const group = await ViewerGroup.open(fleet, target, {
    viewers: connections,
    videos: config.idle.videos,
    concurrency: config.connectConcurrency,
    timeoutMs: config.connectTimeoutMs,
  });
  const connectCpu = totalCpu(target.pids) - cpu0;
  ctx.log(`  ${group.opened}/${connections} idle viewers subscribed in ${group.openMs} ms${group.failed ? ` (${group.failed} failed: ${group.errors[0]})` : ''}`);
  try {
    await sleep(config.idle.settleMs);
    const rssAfter = totalRss(target.pids);
    await sleep(config.idle.cpuSettleMs);
    const cpu1 = totalCpu(target.pids);
    await sleep(config.idle.cpuWindowMs);
    const idleCpu = totalCpu(target.pids) - cpu1;
    const row: IdleRow = {
      target: target.name,
      nodes: target.nodes.length,
      connections,
      subscribed: group.opened,
      rssBefore,
      rssAfter,
      bytesPerConn: group.opened > 0 ? Math.round((rssAfter - rssBefore) / group.opened) : 0,
      connectCpuPerK: group.opened > 0 ? round((connectCpu / group.opened) * 1000, 3) : 0,
      idleCpuMsPerK: group.opened > 0 ? round((idleCpu * 1e6) / (config.idle.cpuWindowMs / 1000) / group.opened, 3) : 0,
      ...(group.failed > 0 ? { error: `${group.failed} failed: ${group.errors[0]}` } : {}),
    };
    ctx.log(`  RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB: ${(row.bytesPerConn / 1024).toFixed(2)} KiB per connection; idle CPU ${row.idleCpuMsPerK} ms/s per 1k`);
    return row;
  } finally {
    await group.close();
  }
}
