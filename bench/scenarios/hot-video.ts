import type { FanoutRow } from '../report/types';
import type { Context } from './context';
import { rampFanout } from './fanout';

/** hot-video: every viewer watches one video; the publish rate steps up (see rampFanout). */
export async function hotVideo(ctx: Context, viewers: number): Promise<FanoutRow[]> {
  const { rates, stepMs, drainMs, p99LimitMs } = ctx.config.hotVideo;
  return rampFanout(ctx, { viewers, videos: 1, rates, stepMs, drainMs, p99LimitMs });
}
