import Redis from 'ioredis';
import { byVideoTime, type Barrage, type NewBarrage } from './barrage';
import type { BarrageStore } from './store';

/**
 * Comments in Redis, shared by every backend process: `<prefix>video:<id>` is a sorted set of JSON
 * comments scored by video time, `<prefix>id` the id counter.
 */
export class RedisStore implements BarrageStore {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix = 'barrage:',
  ) {
    // Fail requests fast while Redis is down instead of queueing them behind reconnection attempts.
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    // Connection failures reach the requests that hit them (HTTP 500); the event itself needs a listener.
    this.redis.on('error', () => undefined);
  }

  /** Connects; rejects when Redis does not answer, so a bad URL is found at startup. */
  async connect(): Promise<void> {
    try {
      await this.redis.connect();
    } catch (error) {
      this.redis.disconnect();
      throw error;
    }
  }

  async add(comment: NewBarrage): Promise<Barrage> {
    const id = await this.redis.incr(`${this.prefix}id`);
    const barrage: Barrage = { ...comment, id, ts: Date.now() };
    await this.redis.zadd(`${this.prefix}video:${comment.video_id}`, barrage.time, JSON.stringify(barrage));
    return barrage;
  }

  async list(videoId: number): Promise<Barrage[]> {
    const members = await this.redis.zrange(`${this.prefix}video:${videoId}`, 0, -1);
    // Equal scores come back in member order; sort again so ties keep posting order.
    return members.map((member) => JSON.parse(member) as Barrage).sort(byVideoTime);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
