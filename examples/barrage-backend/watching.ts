import type { CountResult, PublishResult } from '../../src/client';

/** What the watching counts need from the SDK (a `ConnmixClient` or a `NodeSocket`). */
export interface CountingPublisher {
  publish(channel: string, data: object): Promise<PublishResult>;
  count(channel: string): Promise<CountResult>;
}

/** The event the page receives on `video:<id>` every few seconds. */
export interface WatchingEvent {
  event: '@watching';
  data: { video_id: number; watching: number };
}

/**
 * Publishes `{"event":"@watching","data":{"video_id","watching"}}` to every video someone watches, every
 * `intervalMs`. Videos are followed from the moment a page asks for their history; one is dropped once
 * nobody has watched it for `idleMs`. The engine caches counts for about 2 s, so one backend asking every
 * few seconds per video costs the mesh one question per video per interval.
 */
export class WatchingReporter {
  /** Followed videos and when someone was last seen on each (ms). */
  private readonly videos = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly publisher: CountingPublisher,
    private readonly intervalMs = 3000,
    private readonly onError: (message: string, error: unknown) => void = () => undefined,
    private readonly idleMs = 60_000,
  ) {}

  /** Follows `videoId` (a page opened it). */
  touch(videoId: number): void {
    this.videos.set(videoId, Date.now());
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.videos.clear();
  }

  /** One round: count every followed video and publish its count. A round still running skips the next. */
  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all([...this.videos.keys()].map((videoId) => this.report(videoId)));
    } finally {
      this.running = false;
    }
  }

  private async report(videoId: number): Promise<void> {
    const channel = `video:${videoId}`;
    try {
      const { subscribers } = await this.publisher.count(channel);
      if (subscribers > 0) {
        this.videos.set(videoId, Date.now());
        const event: WatchingEvent = { event: '@watching', data: { video_id: videoId, watching: subscribers } };
        await this.publisher.publish(channel, event);
      } else if (Date.now() - (this.videos.get(videoId) ?? 0) > this.idleMs) {
        this.videos.delete(videoId);
      }
    } catch (error) {
      this.onError(`watching count of ${channel} failed`, error);
    }
  }
}
