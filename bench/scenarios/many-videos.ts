import type { FanoutRow } from '../report/types';
import type { Context } from './context';
import { rampFanout } from './fanout';

/** many-videos: viewers spread evenly over many videos; comments go to the videos in turn. */
export async function manyVideos(ctx: Context): Promise<FanoutRow[]> {
  const { viewers, videos, rates, stepMs, drainMs, p99LimitMs } = ctx.config.manyVideos;
  return rampFanout(ctx, { viewers, videos, rates, stepMs, drainMs, p99LimitMs });
}
