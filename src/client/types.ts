/** What a publish or send carries: text, bytes, or any other value sent as its JSON. */
export type Payload = string | Uint8Array | object;

export interface PayloadOptions {
  /** Deliver one binary frame (text is sent as its UTF-8 bytes); text frames otherwise. */
  binary?: boolean;
}

/** How a publish went: connections written to, and connections that could not take it. */
export interface PublishResult {
  delivered: number;
  failed: number;
}

/** How many connections are subscribed to a channel over the whole mesh (`POST /v1/mesh/count`). */
export interface CountResult {
  /** Connections subscribed, summed over the nodes that answered. */
  subscribers: number;
  /** Nodes holding subscribers of the channel that did not answer in time (their connections are not counted). */
  unansweredNodes: number;
}

/** A node of the mesh, as `GET /v1/nodes` lists it. */
export interface NodeInfo {
  id: string;
  /** `host:port` of the node's API server. */
  apiServer: string;
}

/** An item a node's Lua pushed with `mix.queue.push(topic, data)`. */
export interface QueueEvent {
  nodeId: string;
  /** The connection whose Lua pushed the item. */
  clientId: string;
  topic: string;
  /** What Lua pushed: a string, or a table as a parsed JSON object. */
  data: unknown;
}

/** An `access.users` account. */
export interface Credentials {
  username: string;
  password: string;
}

/** Delays between reconnection attempts: doubling from `minMs` up to `maxMs`, with jitter. */
export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
}
