import type { Logger } from '../../log';
import type { LuaValue } from '../values';
import type { PublishResult } from '../../mesh/broker';

/** A connection as Lua scripts see it through `mix.websocket()`. */
export interface ScriptConnection {
  readonly clientId: string;
  readonly remoteAddr: string;
  readonly context: Map<string, LuaValue>;
  readonly open: boolean;
  /** Registry ref of the connection's userdata, -1 until a script asks for it. */
  luaRef: number;
  send(data: Uint8Array, binary: boolean): boolean;
  close(): void;
}

/**
 * What the `mix` API needs from its node. Answers may be synchronous (one node) or promises (a mesh
 * over Redis); the Lua side suspends the calling hook for the latter.
 */
export interface MixHost {
  readonly log: Logger;
  /** `servers[].options` of this server, by name. */
  readonly serverOptions: ReadonlyMap<string, string>;
  subscribe(conn: ScriptConnection, channels: string[]): string | null | Promise<string | null>;
  unsubscribe(conn: ScriptConnection, channels: string[]): string | null | Promise<string | null>;
  publish(channel: string, payload: Buffer, binary: boolean): PublishResult | Promise<PublishResult>;
  /** Sends to a connection anywhere in the mesh; false if it is unknown or gone. */
  send(clientId: string, payload: Buffer, binary: boolean): boolean | Promise<boolean>;
}
