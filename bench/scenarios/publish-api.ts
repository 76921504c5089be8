import type { ApiResult } from '../load/api-clients';
import { sourceAddresses } from '../lib/addresses';
import { totalCpu } from '../lib/proc';
import { nowMs } from '../load/payload';
import type { ApiRow } from '../report/types';
import { round, type Context } from './context';
import { ViewerGroup, FIRST_VIDEO } from './viewer-group';

/**
 * publish-api: backends publishing as fast as the API answers, to channels with a few subscribers
 * each: HTTP POST /v1/mesh/publish (pipelined keep-alive connections), then the WebSocket API
 * (`/ws/v1` mesh.publish; for Socket.IO an event with an acknowledgement), each with requests in flight.
 */
export async function publishApi(ctx: Context): Promise<ApiRow[]> {
  const { target, fleet, config } = ctx;
  const { channels, subscribersPerChannel, durationMs, http, ws } = config.publishApi;
  const group = await ViewerGroup.open(fleet, target, {
    viewers: channels * subscribersPerChannel,
    videos: channels,
    concurrency: config.connectConcurrency,
    timeoutMs: config.connectTimeoutMs,
  });
  const names = Array.from({ length: channels }, (_, k) => `video:${FIRST_VIDEO + k}`);
  const node = target.nodes[0];
  const rows: ApiRow[] = [];
  try {
    for (const api of ['http', 'ws'] as const) {
      await group.reset(0);
      const cpu0 = totalCpu(target.pids);
      const t0 = nowMs();
      const results = await fleet.all<ApiResult>(() =>
        api === 'http'
          ? { op: 'api.http', params: { host: node.httpHost, port: node.httpPort, channels: names, connections: http.connections, pipeline: http.pipeline, durationMs, localAddress: sourceAddresses(1)[0] } }
          : { op: 'api.ws', params: { url: node.wsApiUrl, dialect: target.dialect, channels: names, connections: ws.connections, window: ws.window, durationMs, localAddress: sourceAddresses(1)[0] } },
      );
      const t1 = nowMs();
      await group.drain(Infinity, 300, 2000);
      const cpu = totalCpu(target.pids) - cpu0;
      const stats = await group.stats();
      const ok = results.reduce((sum, r) => sum + r.ok, 0);
      const ms = Math.max(...results.map((r) => r.ms));
      const firstError = results.find((r) => r.firstError)?.firstError;
      const row: ApiRow = {
        target: target.name,
        nodes: target.nodes.length,
        api,
        requests: ok,
        perSec: Math.round((ok / ms) * 1000),
        errors: results.reduce((sum, r) => sum + r.errors, 0),
        // Comments here all carry small sequence numbers, so every receipt counts, repeats included.
        deliveries: stats.delivered + stats.duplicates + stats.late,
        cpuMsPerKRequests: ok > 0 ? round((cpu * 1e6) / ok, 3) : 0,
        t0,
        t1,
        ...(firstError ? { firstError } : {}),
      };
      rows.push(row);
      ctx.log(`  ${api}: ${row.perSec} publishes/s (${row.errors} errors), ${row.deliveries} deliveries`);
    }
  } finally {
    await group.close();
  }
  return rows;
}
