/** Counts of a publish: connections written to (`s`) and connections that could not take it (`f`). */
export interface PublishResult {
  s: number;
  f: number;
}

/**
 * A count of a channel's subscribers over the mesh: `n` connections, summed over the nodes that answered;
 * `f` nodes that hold subscribers of it but did not answer in time (their connections are not in `n`).
 */
export interface CountResult {
  n: number;
  f: number;
}

/** A node of the mesh as `/v1/nodes` lists it. */
export interface NodeInfo {
  id: string;
  api_server: string;
}

/** The connection functions a backend may run through `conn.call` (CONNMIX docs, websocket-api). */
export const CONN_FUNCTIONS = ['set_context_value', 'set_context', 'subscribe', 'unsubscribe'] as const;
export type ConnFunction = (typeof CONN_FUNCTIONS)[number];

/** An answer that may come now or later: an error message, or null for success. */
export type CallOutcome = string | null | Promise<string | null>;

/** What a broker hands to its node: deliveries to the node's own connections. */
export interface LocalDelivery {
  /** Writes `payload` to every local subscriber of `channel`. */
  deliver(channel: string, payload: Buffer, binary: boolean): PublishResult;
  /** Writes `payload` to the local connection `clientId`; false if it is not here or cannot take it. */
  deliverTo(clientId: string, payload: Buffer, binary: boolean): boolean;
  /** Runs `fn(args)` on the local connection `clientId`. */
  callOn(clientId: string, fn: ConnFunction, args: unknown[]): CallOutcome;
  /** How many local connections are subscribed to `channel`. */
  count(channel: string): number;
}

/**
 * How nodes share channels and sends. The node's hub keeps the local subscribers and tells the broker
 * when a channel gains its first or loses its last local subscriber; the broker carries publishes and
 * sends to whichever nodes need them. Client logic never knows which broker runs.
 *
 * Methods may answer synchronously (the memory broker) or with a promise (brokers that talk to Redis),
 * so that one node without a network pays no promise per publish.
 */
export interface Broker {
  /** This node's number (client_ids carry it) and id, known once `start` has resolved. */
  readonly nodeNumber: number;
  readonly nodeId: string;
  start(local: LocalDelivery): Promise<void>;
  /** The channel has its first subscriber on this node. */
  subscribe(channel: string): void | Promise<void>;
  /** The channel lost its last subscriber on this node. */
  unsubscribe(channel: string): void | Promise<void>;
  /** Delivers to every subscriber in the mesh; counts are summed over all nodes. */
  publish(channel: string, payload: Buffer, binary: boolean): PublishResult | Promise<PublishResult>;
  /** Delivers to one connection anywhere in the mesh; false if it is unknown or gone. */
  send(clientId: string, payload: Buffer, binary: boolean): boolean | Promise<boolean>;
  /** Runs a `conn.call` function on a connection anywhere in the mesh. */
  call(clientId: string, fn: ConnFunction, args: unknown[]): CallOutcome;
  /** How many connections are subscribed to `channel`, summed over every node (uncached). */
  count(channel: string): CountResult | Promise<CountResult>;
  /** The live nodes of the mesh. */
  nodes(): NodeInfo[] | Promise<NodeInfo[]>;
  /** Leaves the node list (so SDKs stop using this node) while still carrying traffic; idempotent. */
  leave(): Promise<void>;
  /** Whether the broker can carry traffic now. */
  ready(): boolean;
  stop(): Promise<void>;
}
