import type { DialectName } from '../load/dialects';

/** One server node of a target, as the load generator sees it. */
export interface TargetNode {
  /** Where viewers connect (ws://127.0.0.1:<port>/barrage-videos, or the Socket.IO server's root). */
  wsUrl: string;
  /** HTTP API: POST /v1/mesh/publish. */
  httpHost: string;
  httpPort: number;
  /** The WebSocket publish API (`/ws/v1`, or the Socket.IO endpoint). */
  wsApiUrl: string;
  pid: number;
}

export interface RunningTarget {
  name: string;
  dialect: DialectName;
  nodes: TargetNode[];
  /** Every server process whose CPU and memory are the target's cost: the nodes and redis-server. */
  pids: number[];
  /** True if a publish on one node reaches the viewers of every node (false: independent processes). */
  meshed: boolean;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** How many nodes; for unmeshed targets, independent processes (only for idle and storm). */
  nodes: number;
  /** Write a V8 CPU profile of each node process here (node --cpu-prof), where supported. */
  profileDir?: string;
  /** connmix-ts only: `engine.servers[].writeWindow` in ms instead of the shipped value. */
  writeWindow?: number;
  /**
   * connmix-ts only: serve this Lua entry (a path from the repository root) instead of the shipped
   * yaml's. The peers' servers speak every scenario's protocol and ignore it.
   */
  entry?: string;
}

export interface TargetSpec {
  name: string;
  /** One line for the report. */
  description: string;
  /** The node count the target is defined with (1, or 2 for the two-node variants). */
  nodes: number;
  /** True when more nodes share channels (Redis), false when extra nodes would be independent. */
  meshed: boolean;
  /** A target made to hold many connections by adding workers: only its idle scenario runs, at the `idle.scaleOut` sizes. */
  scalesOut?: boolean;
  start(options: StartOptions): Promise<RunningTarget>;
}
