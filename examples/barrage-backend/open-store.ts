import { RedisStore } from './redis-store';
import { MemoryStore, type BarrageStore } from './store';

/** Redis when `redisUrl` is set (connected, so a bad URL fails at startup), memory otherwise. */
export async function openStore(redisUrl: string | undefined): Promise<BarrageStore> {
  if (!redisUrl) return new MemoryStore();
  const store = new RedisStore(redisUrl);
  await store.connect();
  return store;
}
