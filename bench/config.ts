/**
 * Sizes of every scenario, full and quick. A server process may hold at most 20,000 files here
 * (RLIMIT_NOFILE, hard), so one node cannot take 20,000 viewers: the large sizes are 19,500, and
 * 50,000 idle connections are spread over several nodes.
 */
export interface BenchConfig {
  quick: boolean;
  /** Connections opening at once per load process. */
  connectConcurrency: number;
  connectTimeoutMs: number;
  hotVideo: {
    viewers: number[];
    /** Publish rates tried in turn (msg/s) until p99 passes `p99LimitMs` or a comment is lost. */
    rates: number[];
    stepMs: number;
    /** Longest wait after the last publish of a step for deliveries to arrive; later ones are lost. */
    drainMs: number;
    p99LimitMs: number;
  };
  manyVideos: { viewers: number; videos: number; rates: number[]; stepMs: number; drainMs: number; p99LimitMs: number };
  /** `scaleOut`: the sizes for targets that add workers to hold more (connmix-ts-engine). */
  idle: { connections: number[]; scaleOut: number[]; videos: number; settleMs: number; cpuSettleMs: number; cpuWindowMs: number };
  /** `warmUp`: a smaller storm first, not measured, on each target, so that the measured one meets warm processes. */
  storm: {
    connections: number;
    concurrency: number;
    messageConnections: number;
    window: number;
    durationMs: number;
    warmUp: { connections: number; durationMs: number };
  };
  /** Members spread evenly over `rooms`; says per second (all members together) step up like hotVideo's rates. */
  chatRoom: { members: number; rooms: number; rates: number[]; stepMs: number; drainMs: number; p99LimitMs: number };
  publishApi: {
    channels: number;
    subscribersPerChannel: number;
    durationMs: number;
    /** Per load process. */
    http: { connections: number; pipeline: number };
    ws: { connections: number; window: number };
  };
}

/** Most connections one node is given (fd limit 20,000 minus listeners, Redis links, stdio). */
export const MAX_CONNECTIONS_PER_NODE = 19_500;

export const FULL: BenchConfig = {
  quick: false,
  connectConcurrency: 100,
  connectTimeoutMs: 20_000,
  hotVideo: { viewers: [5000, 19_500], rates: [10, 50, 100, 200, 400, 800, 1600, 3200], stepMs: 10_000, drainMs: 5000, p99LimitMs: 500 },
  manyVideos: { viewers: 19_500, videos: 1000, rates: [100, 500, 1000, 2000, 4000], stepMs: 10_000, drainMs: 5000, p99LimitMs: 500 },
  idle: { connections: [10_000, 50_000], scaleOut: [100_000], videos: 1000, settleMs: 3000, cpuSettleMs: 7000, cpuWindowMs: 10_000 },
  storm: {
    connections: 10_000, concurrency: 200, messageConnections: 200, window: 4, durationMs: 10_000,
    warmUp: { connections: 2000, durationMs: 2000 },
  },
  chatRoom: { members: 2000, rooms: 40, rates: [100, 200, 400, 800, 1600, 3200, 6400], stepMs: 10_000, drainMs: 5000, p99LimitMs: 500 },
  publishApi: { channels: 10, subscribersPerChannel: 3, durationMs: 10_000, http: { connections: 4, pipeline: 16 }, ws: { connections: 2, window: 64 } },
};

export const QUICK: BenchConfig = {
  quick: true,
  connectConcurrency: 100,
  connectTimeoutMs: 10_000,
  hotVideo: { viewers: [2000], rates: [10, 50], stepMs: 1000, drainMs: 1500, p99LimitMs: 500 },
  manyVideos: { viewers: 1000, videos: 100, rates: [200], stepMs: 1000, drainMs: 1500, p99LimitMs: 500 },
  idle: { connections: [5000], scaleOut: [5000], videos: 1000, settleMs: 500, cpuSettleMs: 2000, cpuWindowMs: 3000 },
  storm: {
    connections: 500, concurrency: 100, messageConnections: 100, window: 4, durationMs: 700,
    warmUp: { connections: 200, durationMs: 200 },
  },
  chatRoom: { members: 1000, rooms: 40, rates: [50, 200], stepMs: 1000, drainMs: 1500, p99LimitMs: 500 },
  publishApi: { channels: 10, subscribersPerChannel: 3, durationMs: 700, http: { connections: 4, pipeline: 16 }, ws: { connections: 2, window: 64 } },
};
