import type { Logger } from '../../log';
import type { ConnectionContext } from '../../session/context';
import type { Mesh } from '../../mesh/mesh';
import type { QueueItem } from '../../queue/memory-queue';
import type { LuaRedisPool } from './redis';
import type { HeldValue } from '../fengari/index';

/** A connection as Lua scripts see it through `mix.websocket()` or `mix.socket.tcp()`. */
export interface ScriptConnection {
  readonly clientId: string;
  readonly remoteAddr: string;
  readonly context: ConnectionContext;
  readonly open: boolean;
  /** The connection's userdata, made when a script first asks for it. */
  luaValue: HeldValue | null;
  /** The LuaVM generation (its state) `luaValue` was made in: a state reset makes it again. */
  luaGeneration: number;
  /** WebSocket: one message (text unless `binary`). Socket: raw bytes, `binary` does not apply. */
  send(data: Uint8Array, binary: boolean): boolean;
  close(): void;
  /** Drops the input not yet taken as packets; socket connections only. */
  clearBuffer?(): void;
}

/**
 * What the `mix` API needs from its node. Answers may be synchronous (one node) or promises (a mesh
 * over Redis); the Lua side suspends the calling hook for the latter.
 */
export interface MixHost {
  readonly log: Logger;
  /** The server's `protocol`: which of `mix.websocket()` / `mix.socket.tcp()` gives the connection (default websocket). */
  readonly protocol?: 'websocket' | 'socket';
  /** `servers[].options` of this server, by name. */
  readonly serverOptions: ReadonlyMap<string, string>;
  subscribe(conn: ScriptConnection, channels: string[]): string | null | Promise<string | null>;
  unsubscribe(conn: ScriptConnection, channels: string[]): string | null | Promise<string | null>;
  publish: Mesh['publish'];
  /** Queues an item for `/ws/v1` consumers; returns the topic's waiting count, throws when full. */
  queuePush(item: QueueItem): number;
  /** `mix.queue.new`: caps how many items of a topic may wait; throws past `maxTopics`. */
  queueNew(topic: string, size: number): void;
  /** Sends to a connection anywhere in the mesh; false if it is unknown or gone. */
  send: Mesh['send'];
  /** Subscribers of a channel over the mesh (absent: `mix.mesh.count` answers an error). */
  count?: Mesh['count'];
  /** The named Redis connections of `mix.redis.connection` (none configured if absent). */
  readonly redis?: LuaRedisPool;
  /** The node's id, which `mix.redis.push` items carry as `n`. */
  readonly nodeId?: string;
}
