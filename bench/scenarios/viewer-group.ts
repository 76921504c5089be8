import type { Fleet } from '../load/fleet';
import { shares } from '../load/fleet';
import { Histogram } from '../load/histogram';
import { mergeAudiences } from '../load/audience';
import type { ViewerStats } from '../load/viewers';
import type { OpenedClients } from '../load/audience';
import { sourceAddresses } from '../lib/addresses';
import { totalRss } from '../lib/proc';
import type { RunningTarget } from '../targets/target';
import { FleetAudience } from './fleet-audience';

/** Video ids start here (the seed's example video is 100001). */
export const FIRST_VIDEO = 100001;

export interface GroupOptions {
  viewers: number;
  videos: number;
  /** Connections opening at once, per load process. */
  concurrency: number;
  timeoutMs: number;
}

/** Merged statistics of every load process for one step. */
export interface GroupStats {
  delivered: number;
  duplicates: number;
  late: number;
  latency: Histogram;
  open: number;
}

/**
 * A target's viewers, spread over every load process, every node of the target and enough source
 * addresses; knows how many viewers each video has, which is what a publish should reach.
 */
export class ViewerGroup extends FleetAudience<GroupStats> {
  /** Server RSS before and after the viewers connected, in bytes. */
  rssBefore = 0;
  rssAfter = 0;

  private constructor(
    fleet: Fleet,
    readonly options: GroupOptions,
  ) {
    super(fleet, 'viewers');
  }

  static async open(fleet: Fleet, target: RunningTarget, options: GroupOptions): Promise<ViewerGroup> {
    const group = new ViewerGroup(fleet, options);
    const split = shares(options.viewers, fleet.size);
    const urls = target.nodes.map((node) => node.wsUrl);
    group.rssBefore = totalRss(target.pids);
    const results = await fleet.all<OpenedClients>((i) => ({
      op: 'viewers.open',
      params: {
        urls,
        dialect: target.dialect,
        firstIndex: split[i][0],
        count: split[i][1],
        videos: options.videos,
        firstVideo: FIRST_VIDEO,
        addresses: sourceAddresses(split[i][1]),
        concurrency: options.concurrency,
        timeoutMs: options.timeoutMs,
      },
    }));
    group.addOpened(results);
    group.rssAfter = totalRss(target.pids);
    return group;
  }

  /** Deliveries a run should produce: each accepted publish times the subscribers of its video. */
  expected(perChannel: Map<string, number>): number {
    let total = 0;
    for (const [channel, count] of perChannel) total += count * (this.perGroup.get(Number(channel.slice('video:'.length))) ?? 0);
    return total;
  }

  async stats(): Promise<GroupStats> {
    const all = await this.allStats<ViewerStats>();
    return { ...mergeAudiences(all), duplicates: all.reduce((sum, stats) => sum + stats.duplicates, 0) };
  }
}
