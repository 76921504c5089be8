import { Counter, Gauge, Registry } from 'prom-client';
import { collectProcessMetrics } from './process-metrics';
import { SlidingSummary } from './sliding-summary';
import { BucketHistogram } from './bucket-histogram';
import type { PrometheusConfig } from '../config/schema';
import { monotonicMs } from '../wire/clock';

/** The business protocols, as the `protocol` label of CONNMIX's metrics names them. */
export type Protocol = 'websocket' | 'socket';

/** Why a message did not reach a connection. */
export type DropReason = 'slow_consumer' | 'buffer_full' | 'closed';

/** Live figures the metrics read when scraped, rather than being told on every change. */
export interface MetricSources {
  clients(protocol: Protocol): number;
  channels(): number;
  queueWaiting(): number;
  queueBytes(): number;
  /** Estimated bytes all connection contexts hold (what `engine.maxContextBytes` caps). */
  contextBytes(): number;
  brokerReady(): boolean;
  /** Log lines dropped so far because their output was not read (a running total). */
  logDropped(): number;
  /** Requests from other nodes dropped so far because they arrived after their deadline (a running total). */
  meshExpired(): number;
  /** Times the Redis subscription audit repaired a subscriber connection (a running total). */
  meshSubscriptionRepairs(): number;
  /** The Redis subscriber side (zeros without Redis): channels wanted, those Redis may not carry as wanted yet, unanswered (un)subscribe commands. */
  meshSubscriptions(): { wanted: number; unsynced: number; queued: number };
}

/** A series to observe into, looked up once. */
interface Observer {
  observe(value: number): void;
}

/** The labelled series one kind of publish or send is recorded in. */
interface SendTimers {
  send: Observer;
  broker: Observer;
}

/**
 * A counter child bumped on a hot path: increments add up in a plain number that reaches prom-client
 * when the counter is scraped (prom-client validates and hashes a child's labels on every inc).
 */
class Tally {
  private pending = 0;

  constructor(private readonly child: Counter.Internal) {}

  inc(by = 1): void {
    this.pending += by;
  }

  flush(): void {
    if (this.pending === 0) return;
    this.child.inc(this.pending);
    this.pending = 0;
  }
}

/** A counter that follows a running total kept elsewhere, read when scraped. */
function runningTotal(name: string, help: string, read: () => number, registers: Registry[]): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers,
    collect(this: Counter) {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = now;
    },
  });
}

/** Seconds since `started`, a monotonicMs() reading (no BigInt per reading, as hrtime.bigint made). */
export function secondsSince(started: number): number {
  return (monotonicMs() - started) / 1000;
}

/**
 * The node's Prometheus metrics: CONNMIX's names (CONNMIX docs, prometheus) and ours. Counters on the delivery path
 * are bumped once per publish with the summed counts, never once per socket; those bumped per message
 * or per request are tallies, and per-call timings go to histograms without label hashing.
 */
export class Metrics {
  readonly registry = new Registry();
  /** CONNMIX: messages read from clients. */
  readonly readMessages: Counter<'protocol'>;
  /** CONNMIX: messages written to clients. */
  readonly sendMessages: Counter<'protocol'>;
  /** CONNMIX: messages that could not be written. */
  readonly sendErrors: Counter<'protocol'>;
  /** CONNMIX: API publish/send duration; `scenario` is `local` (this node only) or `forward` (through the mesh). */
  readonly sendDuration: SlidingSummary<'protocol' | 'scenario'>;
  /** Messages not delivered to one connection, by reason (`slow_consumer`, `buffer_full`, `closed`). */
  readonly drops: Counter<'reason'>;
  /** Connections ended, by close code (the close code table of docs/operations.md). */
  readonly closes: Counter<'code'>;
  /** Connections (WebSocket upgrades, socket accepts) refused before a connection existed, by reason. */
  readonly refused: Counter<'reason'>;
  /** Subscribes refused because the connection holds maxChannelsPerConnection channels. */
  readonly subscribesRefused: Counter;
  readonly hookDuration: BucketHistogram<'hook'>;
  readonly hookErrors: Counter<'hook' | 'kind'>;
  /** Time the broker took to answer a publish, send or conn.call. */
  readonly brokerDuration: BucketHistogram<'op'>;
  readonly apiRequests: Counter<'route' | 'code'>;
  /** `mix.queue.push` calls refused, by the limit they hit (`topic_size`, `topic_bytes`, `node_bytes`, `topics`). */
  readonly queueRefused: Counter<'reason'>;
  /** Every tally, flushed whenever a counter that has some is scraped. */
  private readonly tallies: Tally[] = [];
  private readonly read: Record<Protocol, Tally>;
  private readonly sent: Record<Protocol, { ok: Tally; failed: Tally }>;
  private readonly dropped = new Map<DropReason, Tally>();
  private readonly requests = new Map<string, Tally>();
  private readonly hookTimers = new Map<string, Observer>();
  private readonly sendTimers: Record<'publish' | 'send', Partial<Record<'local' | 'forward', SendTimers>>> = { publish: {}, send: {} };

  constructor(summary: PrometheusConfig['summary'], sources: MetricSources, labels: Record<string, string> = {}) {
    const registers = [this.registry];
    const collect = () => {
      for (const tally of this.tallies) tally.flush();
    };
    this.registry.setDefaultLabels(labels);
    collectProcessMetrics(this.registry);
    new Gauge({
      name: 'connmix_engine_servers_clients',
      help: 'Connected clients.',
      labelNames: ['protocol'],
      registers,
      collect(this: Gauge<'protocol'>) {
        for (const protocol of ['websocket', 'socket'] as const) this.set({ protocol }, sources.clients(protocol));
      },
    });
    this.readMessages = new Counter({ name: 'connmix_engine_servers_read_messages_total', help: 'Messages read from clients.', labelNames: ['protocol'], registers, collect });
    this.sendMessages = new Counter({ name: 'connmix_engine_servers_send_messages_total', help: 'Messages written to clients.', labelNames: ['protocol'], registers, collect });
    this.sendErrors = new Counter({ name: 'connmix_engine_servers_send_errors_total', help: 'Messages that could not be written to a client.', labelNames: ['protocol'], registers, collect });
    this.sendDuration = new SlidingSummary({
      name: 'connmix_engine_servers_send_duration_seconds',
      help: 'Duration of API publishes and sends.',
      labelNames: ['protocol', 'scenario'],
      percentiles: [0, 0.25, 0.5, 0.75, 1],
      maxAgeSeconds: summary.maxAge,
      ageBuckets: summary.ageBuckets,
      sampleSize: summary.bufCap,
      registers,
    });
    new Gauge({ name: 'connmix_channels', help: 'Channels with at least one subscriber on this node.', registers, collect(this: Gauge) { this.set(sources.channels()); } });
    new Gauge({ name: 'connmix_queue_waiting_items', help: 'Items waiting in the memory queue.', registers, collect(this: Gauge) { this.set(sources.queueWaiting()); } });
    new Gauge({ name: 'connmix_queue_waiting_bytes', help: 'Bytes (UTF-8) waiting in the memory queue.', registers, collect(this: Gauge) { this.set(sources.queueBytes()); } });
    new Gauge({ name: 'connmix_context_bytes', help: 'Estimated bytes all connection contexts hold (engine.maxContextBytes caps them).', registers, collect(this: Gauge) { this.set(sources.contextBytes()); } });
    this.queueRefused = new Counter({ name: 'connmix_queue_refused_total', help: 'Queue pushes refused, by the limit they hit.', labelNames: ['reason'], registers });
    runningTotal('connmix_log_dropped_lines_total', 'Log lines a log output dropped: stdout not read fast enough, or the log file unwritable (full disk, no free descriptor); counted per output.', sources.logDropped, registers);
    runningTotal('connmix_mesh_expired_total', 'Requests from other nodes dropped because they arrived after their deadline.', sources.meshExpired, registers);
    runningTotal('connmix_mesh_subscription_repairs_total', 'Times the subscription audit found Redis not holding what a subscriber connection of this node had sent, and repaired it.', sources.meshSubscriptionRepairs, registers);
    new Gauge({
      name: 'connmix_mesh_channels_wanted',
      help: 'Channels this node wants subscribed in Redis: its channels with local subscribers, and its inbox.',
      registers,
      collect(this: Gauge) { this.set(sources.meshSubscriptions().wanted); },
    });
    new Gauge({
      name: 'connmix_mesh_channels_unsynced',
      help: 'Channels whose subscription in Redis may not be as wanted yet: not sent, unanswered or refused; every wanted one while its subscriber connection is away.',
      registers,
      collect(this: Gauge) { this.set(sources.meshSubscriptions().unsynced); },
    });
    new Gauge({
      name: 'connmix_mesh_subscribe_commands_pending',
      help: '(Un)subscribe commands written to Redis and not answered yet.',
      registers,
      collect(this: Gauge) { this.set(sources.meshSubscriptions().queued); },
    });
    new Gauge({ name: 'connmix_broker_ready', help: '1 when the broker can carry traffic.', registers, collect(this: Gauge) { this.set(sources.brokerReady() ? 1 : 0); } });
    this.drops = new Counter({ name: 'connmix_drops_total', help: 'Messages not delivered to a connection, by reason.', labelNames: ['reason'], registers, collect });
    this.closes = new Counter({ name: 'connmix_closes_total', help: 'Connections ended, by close code.', labelNames: ['code'], registers });
    this.subscribesRefused = new Counter({ name: 'connmix_subscribes_refused_total', help: 'Subscribes refused by maxChannelsPerConnection.', registers });
    this.refused = new Counter({ name: 'connmix_connections_refused_total', help: 'Connections refused before they opened, by reason.', labelNames: ['reason'], registers });
    this.hookDuration = new BucketHistogram({
      name: 'connmix_lua_hook_duration_seconds',
      help: 'Wall time of Lua hook calls (waits included).',
      labelNames: ['hook'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.hookErrors = new Counter({ name: 'connmix_lua_hook_errors_total', help: 'Lua hook calls that failed (kind error) or ran past their budget (kind timeout).', labelNames: ['hook', 'kind'], registers });
    this.brokerDuration = new BucketHistogram({
      name: 'connmix_broker_duration_seconds',
      help: 'Time the broker took to answer, by operation.',
      labelNames: ['op'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5],
      registers,
    });
    this.read = { websocket: this.tally(this.readMessages.labels('websocket')), socket: this.tally(this.readMessages.labels('socket')) };
    this.sent = {
      websocket: { ok: this.tally(this.sendMessages.labels('websocket')), failed: this.tally(this.sendErrors.labels('websocket')) },
      socket: { ok: this.tally(this.sendMessages.labels('socket')), failed: this.tally(this.sendErrors.labels('socket')) },
    };
    this.apiRequests = new Counter({ name: 'connmix_api_requests_total', help: 'API requests, by route and E code (0 = success).', labelNames: ['route', 'code'], registers, collect });
  }

  private tally(child: Counter.Internal): Tally {
    const tally = new Tally(child);
    this.tallies.push(tally);
    return tally;
  }

  /** Counts a message read from a client. */
  countRead(protocol: Protocol): void {
    this.read[protocol].inc();
  }

  /** Counts an API request by route and E code (0 = success). */
  countApiRequest(route: string, code: number): void {
    const key = `${route} ${code}`;
    let tally = this.requests.get(key);
    if (!tally) this.requests.set(key, (tally = this.tally(this.apiRequests.labels(route, String(code)))));
    tally.inc();
  }

  /** Counts one fan-out's writes: successes and failures per protocol. */
  countSends(websocketOk: number, websocketFailed: number, socketOk: number, socketFailed: number): void {
    if (websocketOk) this.sent.websocket.ok.inc(websocketOk);
    if (websocketFailed) this.sent.websocket.failed.inc(websocketFailed);
    if (socketOk) this.sent.socket.ok.inc(socketOk);
    if (socketFailed) this.sent.socket.failed.inc(socketFailed);
  }

  /** Records how long a publish or send took (send_duration_seconds and broker_duration_seconds). */
  observeSend(op: 'publish' | 'send', scenario: 'local' | 'forward', seconds: number): void {
    let timers = this.sendTimers[op][scenario];
    if (!timers) {
      timers = { send: this.sendDuration.labels('websocket', scenario), broker: this.brokerDuration.labels(op) };
      this.sendTimers[op][scenario] = timers;
    }
    timers.send.observe(seconds);
    timers.broker.observe(seconds);
  }

  /** Records one hook call's wall time (the labelled child is looked up once per hook name). */
  observeHook(hook: string, seconds: number): void {
    let child = this.hookTimers.get(hook);
    if (!child) this.hookTimers.set(hook, (child = this.hookDuration.labels(hook)));
    child.observe(seconds);
  }

  /** Counts a message one connection did not get. */
  drop(reason: DropReason): void {
    let tally = this.dropped.get(reason);
    if (!tally) this.dropped.set(reason, (tally = this.tally(this.drops.labels(reason))));
    tally.inc();
  }

}
