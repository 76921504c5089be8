import type { Socket } from 'node:net';
import { ConnectionContext } from '../session/context';
import type { ByteBudget } from '../wire/byte-budget';
import type { ScriptConnection } from '../lua/mix';
import type { Subscriber, Outgoing, ChannelEntry } from '../mesh/hub';
import { Memberships } from '../mesh/memberships';
import type { Protocol } from '../metrics';
import { Peer } from '../wire/peer';

/**
 * The fields every client connection of a business server has beyond a Peer's: its identity, Lua
 * context and channels. The kinds (WebSocket, socket) add their transport, with what the core needs of
 * it (the abstract members). Codes are WebSocket close codes; a transport without them keeps only the reason.
 */
export abstract class ClientConnection extends Peer implements Subscriber, ScriptConnection {
  abstract readonly protocol: Protocol;
  readonly context: ConnectionContext;
  readonly channels = new Memberships<ChannelEntry>();
  /** The second under which the server's TimeoutWatch filed this connection (0 = not filed); the watch's own. */
  dueAt = 0;
  /** This connection's Lua userdata, made when a script first asks for it. */
  luaValue: ScriptConnection['luaValue'] = null;
  luaGeneration = 0;

  constructor(
    socket: Socket,
    readonly clientId: string,
    readonly remoteAddr: string,
    /** Channels the connection may hold (0 = no limit). */
    readonly maxChannels: number,
    /** What the node's contexts may hold together; the context gives its share back when cleared. */
    contexts: ByteBudget | null,
  ) {
    super(socket);
    this.context = new ConnectionContext(contexts);
  }

  /** Open until either side starts closing it. */
  abstract get open(): boolean;
  /** Still holds resources (it may be flushing its last writes after a close); writeTimeout still applies. */
  abstract get alive(): boolean;
  abstract deliver(message: Outgoing): boolean;
  /** `conn:send` from Lua. */
  abstract send(data: Uint8Array, binary: boolean): boolean;
  /** `conn:close()` from Lua: a normal close. */
  abstract close(): void;
  /** Closes after the writes already queued, telling the peer why where the transport can. */
  abstract closeWith(code: number, reason: string): void;
  /** Drops the connection at once (a peer that does not read); `reason` is what on_close reports. */
  abstract drop(code: number, reason: string): void;
  /** The server stops: closes normally where the transport can say so (`code`), without an error for on_close. */
  abstract shutDown(code: number): void;
  /** Destroys what is left after a shutdown's grace period. */
  abstract terminate(): void;
  /** Stops and restarts reading, while the connection's messages wait for their hooks. */
  abstract pauseReading(): void;
  abstract resumeReading(): void;
  /** Silent for half its readTimeout: a transport that can probe the peer (a WebSocket ping) does it now. */
  abstract probe(now: number): void;
}
