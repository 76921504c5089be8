import type { LuaVmConfig } from '../config/schema';
import type { MixHost } from '../lua/mix';
import type { Subscriber } from '../mesh/hub';
import type { FdGuard } from './fd-guard';

/** What a business server needs from its node. */
export interface NodeServices {
  /** The node's config; servers read `engine.luavm.redis` (the connections of `mix.redis`) from it. */
  readonly config: { readonly engine: { readonly luavm: Pick<LuaVmConfig, 'redis' | 'limits'> } };
  nextClientId(): string;
  subscribe(conn: Subscriber, channels: string[]): string | null | Promise<string | null>;
  unsubscribe(conn: Subscriber, channels: string[]): string | null | Promise<string | null>;
  publish: MixHost['publish'];
  queuePush: MixHost['queuePush'];
  queueNew: MixHost['queueNew'];
  send: MixHost['send'];
  count: NonNullable<MixHost['count']>;
  /** The connection is open and registered; it may receive deliveries. */
  attach(conn: Subscriber): void;
  /** The connection is gone; forget it and its subscriptions. */
  detach(conn: Subscriber): void;
  /** The node holds as many connections as `engine.maxConnections` lets it (its share with `-p N`). */
  nodeFull(): boolean;
  /** Counts accepted sockets against the process's descriptor limit (absent: no guard). */
  readonly fdGuard?: FdGuard;
}
