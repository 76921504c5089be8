import type { Broker, CallOutcome, ConnFunction, CountResult, NodeInfo, PublishResult } from './broker';
import type { Hub, Subscriber } from './hub';
import { SubscriberCounts } from './subscriber-counts';
import { ClientIdGenerator, nodeNumberOf } from './ids';
import { secondsSince, type Metrics } from '../metrics';
import { monotonicMs } from '../wire/clock';

/**
 * What the node does over the mesh, in one place: the API, the Lua host and the business servers are
 * handed this, never the broker or the hub. Every method answers synchronously when the broker does
 * (the memory broker), so a node without a network pays no promise per message.
 */
export class Mesh {
  private readonly counts: SubscriberCounts;
  private ids: ClientIdGenerator | null = null;
  /** Publishes are local fan-outs on a broker that carries nothing elsewhere (the memory broker). */
  private readonly publishScenario: 'local' | 'forward';
  /** Set by the node once it serves its API, cleared as it stops (for /readyz). */
  private serving = false;

  constructor(
    private readonly broker: Broker,
    private readonly hub: Hub,
    private readonly metrics: Metrics,
    options: { localOnly: boolean },
  ) {
    this.counts = new SubscriberCounts((channel) => this.broker.count(channel));
    this.publishScenario = options.localOnly ? 'local' : 'forward';
  }

  /** Delivers to every subscriber of `channel` in the mesh; `s`/`f` are summed over the nodes. */
  publish(channel: string, payload: Buffer, binary: boolean): PublishResult | Promise<PublishResult> {
    // The clock starts before the broker runs: its local fan-out happens inside the call.
    const started = monotonicMs();
    return this.timed('publish', this.publishScenario, started, this.broker.publish(channel, payload, binary));
  }

  /** Delivers to one connection anywhere in the mesh; false if it is unknown or gone. */
  send(clientId: string, payload: Buffer, binary: boolean): boolean | Promise<boolean> {
    const started = monotonicMs();
    const scenario = nodeNumberOf(clientId) === this.broker.nodeNumber ? 'local' : 'forward';
    return this.timed('send', scenario, started, this.broker.send(clientId, payload, binary));
  }

  /** `conn.call`: runs a connection function on whichever node holds the connection. */
  call(clientId: string, fn: ConnFunction, args: unknown[]): CallOutcome {
    return this.broker.call(clientId, fn, args);
  }

  /** How many connections are subscribed to `channel` over the mesh (reused for a couple of seconds). */
  count(channel: string): CountResult | Promise<CountResult> {
    return this.counts.count(channel);
  }

  /** The live nodes of the mesh. */
  nodes(): NodeInfo[] | Promise<NodeInfo[]> {
    return this.broker.nodes();
  }

  /** Whether the node can carry traffic: it serves, is not stopping, and its broker is connected. */
  ready(): boolean {
    return this.serving && this.broker.ready();
  }

  /** The node starts (true) or stops (false) serving; readiness follows. */
  setServing(serving: boolean): void {
    this.serving = serving;
  }

  /** A new client_id, carrying this node's number. */
  nextClientId(): string {
    // The broker may take a new node number while serving (its number was taken during a Redis outage).
    if (!this.ids || this.ids.nodeNumber !== this.broker.nodeNumber) this.ids = new ClientIdGenerator(this.broker.nodeNumber);
    return this.ids.next();
  }

  /** The connection is open and registered; it may receive deliveries. */
  attach(conn: Subscriber): void {
    this.hub.add(conn);
  }

  /** The connection is gone; forget it and its subscriptions. */
  detach(conn: Subscriber): void {
    this.hub.remove(conn);
  }

  /** Subscribes `conn` to every channel (all or none); resolves once the broker carries them. */
  subscribe(conn: Subscriber, channels: string[]): string | null | Promise<string | null> {
    return this.hub.subscribe(conn, channels);
  }

  unsubscribe(conn: Subscriber, channels: string[]): string | null | Promise<string | null> {
    return this.hub.unsubscribe(conn, channels);
  }

  /** Records how long a publish or send took, from `started` to its answer (send_duration_seconds and broker_duration_seconds). */
  private timed<T>(op: 'publish' | 'send', scenario: 'local' | 'forward', started: number, answer: T | Promise<T>): T | Promise<T> {
    if (!(answer instanceof Promise)) {
      this.metrics.observeSend(op, scenario, secondsSince(started));
      return answer;
    }
    return answer.finally(() => this.metrics.observeSend(op, scenario, secondsSince(started)));
  }
}

/** What the API's mesh commands need. */
export type MeshCommands = Pick<Mesh, 'publish' | 'send' | 'call' | 'count'>;

/** What a business server and its Lua host need of the mesh. */
export type ServerMesh = Pick<Mesh, 'publish' | 'send' | 'count' | 'subscribe' | 'unsubscribe' | 'attach' | 'detach' | 'nextClientId'>;
