import type { LuaVmConfig } from '../config/schema';
import type { MixHost } from '../lua/mix';
import type { ServerMesh } from '../mesh/mesh';
import type { FdGuard } from './fd-guard';
import type { ByteBudget } from '../wire/byte-budget';

/** What a business server needs from its node. */
export interface NodeServices {
  /** The node's config; servers read `engine.luavm.redis` (the connections of `mix.redis`) from it. */
  readonly config: { readonly engine: { readonly luavm: Pick<LuaVmConfig, 'redis' | 'limits'> } };
  /** The node's id, as `GET /v1/nodes` lists it. */
  readonly nodeId: string;
  /** Client ids, (un)subscribes, publishes and sends: the node's Mesh. */
  readonly mesh: ServerMesh;
  queuePush: MixHost['queuePush'];
  queueNew: MixHost['queueNew'];
  /** The node holds as many connections as `engine.maxConnections` lets it (its share with `-p N`). */
  nodeFull(): boolean;
  /** Counts accepted sockets against the process's descriptor limit. */
  readonly fdGuard: FdGuard;
  /** What all the node's connection contexts may hold together (`engine.maxContextBytes`). */
  readonly contexts: ByteBudget;
}
