/**
 * `connmix-ts/client`: the SDK for backends of a connmix mesh (publish, send, queue consumption on
 * every node, `conn.call` helpers), with typed results and `ConnmixError` failures.
 */
export { ConnmixClient, type ClientOptions } from './client';
export { Consumer, type ConsumeOptions, type QueueHandler } from './consumer';
export { NodeSocket, type NodeSocketOptions } from './node-socket';
export { ConnmixError, ErrorCode } from './errors';
export type { BackoffOptions, CountResult, Credentials, NodeInfo, Payload, PayloadOptions, PublishResult, QueueEvent } from './types';
