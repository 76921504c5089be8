/** What each scenario measures, one row per target and size (and rate). Times in ms, CPU in seconds. */

/** One measured step of a delivery scenario at `rate` (hot-video, many-videos, chat-room), made by bench/scenarios/step.ts. */
export interface DeliveryStep {
  target: string;
  nodes: number;
  /** Clients that connected but were no longer open at the end of the step (dropped by the server, for example). */
  closed: number;
  rate: number;
  expected: number;
  delivered: number;
  losses: number;
  late: number;
  /** Seconds from the step's first message to the last delivery seen. */
  windowS: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU of every server process (redis-server included) over the window. */
  serverCpuS: number;
  /** Server CPU per million deliveries, in s (= µs per delivery). */
  cpuPerMillion: number;
  /** CPU of the load processes over the window (the other half of the box). */
  loadCpuS: number;
  /** CPU used over the window by processes outside this run (others' test suites): noise when high. */
  otherCpuS: number;
  /** Set on the step that ended the ramp, and why. */
  stop?: string;
  /** Step window on the machine's monotonic clock (ms), for profiles. */
  t0: number;
  t1: number;
  error?: string;
}

export interface FanoutRow extends DeliveryStep {
  viewers: number;
  videos: number;
  /** Viewers that connected and subscribed (the rest failed). */
  subscribed: number;
  published: number;
  publishErrors: number;
  duplicates: number;
  mean: number;
  /** Server RSS growth while the viewers connected, per viewer, in bytes. */
  rssPerConn: number;
}

export interface IdleRow {
  target: string;
  nodes: number;
  connections: number;
  subscribed: number;
  rssBefore: number;
  rssAfter: number;
  bytesPerConn: number;
  /** Server CPU while the connections opened, per thousand connections. */
  connectCpuPerK: number;
  /** Server CPU per second while they sat idle, in ms per thousand connections (absent in older runs). */
  idleCpuMsPerK?: number;
  error?: string;
}

export interface StormRow {
  target: string;
  nodes: number;
  connections: number;
  connectPerSec: number;
  connectFailed: number;
  /** Server CPU per connection opened and subscribed, in µs (absent in runs before it was recorded). */
  cpuUsPerConnect?: number;
  /** The load processes' CPU per connection opened and subscribed, in µs (absent before it was recorded). */
  loadCpuUsPerConnect?: number;
  /** subscribe/unsubscribe messages answered per second on open connections: on_message calls for connmix-ts. */
  messagesPerSec: number;
  messageConnections: number;
  /** Server CPU per thousand answered messages, in ms. */
  cpuMsPerKMessages: number;
  /** The load processes' CPU per thousand answered messages, in ms (absent before it was recorded). */
  loadCpuMsPerKMessages?: number;
  /** The message phase on the machine's monotonic clock (ms), for profiles. */
  t0: number;
  t1: number;
  /** The connect phase, likewise (absent in runs before it was recorded). */
  connectT0?: number;
  connectT1?: number;
  error?: string;
}

/** One step of the chat-room scenario: members say things to their rooms at `rate` says/s. */
export interface ChatRow extends DeliveryStep {
  members: number;
  rooms: number;
  /** Members that connected and joined their room (the rest failed). */
  joined: number;
  /** Says sent on open connections during the step (each expects the members of its room, the sender included). */
  says: number;
  saysPerSec: number;
  /** A say received again or before an earlier say of the same sender (0 when rooms keep order). */
  outOfOrder: number;
  /** Server CPU per thousand says, in ms (= µs per say: its Lua call, its encoding and its fan-out). */
  cpuMsPerKSays: number;
}

export interface ApiRow {
  target: string;
  nodes: number;
  api: 'http' | 'ws';
  requests: number;
  perSec: number;
  errors: number;
  deliveries: number;
  /** Server CPU per thousand requests, in ms. */
  cpuMsPerKRequests: number;
  t0: number;
  t1: number;
  firstError?: string;
  error?: string;
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  percent: number;
}

export interface ProfileSummary {
  target: string;
  scenario: string;
  window: string;
  totalMs: number;
  top: ProfileEntry[];
  note?: string;
}

export interface Machine {
  cpus: number;
  model: string;
  node: string;
  os: string;
  memoryGiB: number;
  fdLimit: string;
}

export interface RunRecord {
  name: string;
  date: string;
  command: string;
  quick: boolean;
  durationS: number;
  machine: Machine;
  /** 1-minute load average at the start and the end of the run (2 = both cores busy). */
  loadAverage: [number, number];
  targets: { name: string; description: string }[];
  hotVideo: FanoutRow[];
  manyVideos: FanoutRow[];
  idle: IdleRow[];
  storm: StormRow[];
  publishApi: ApiRow[];
  /** Absent in runs recorded before the scenario existed. */
  chatRoom?: ChatRow[];
  profiles: ProfileSummary[];
  failures: string[];
}
