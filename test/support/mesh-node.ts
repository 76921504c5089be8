import { MemoryBroker } from '../../src/mesh/memory-broker';
import { Hub, type ChannelEntry, type Outgoing, type Subscriber } from '../../src/mesh/hub';
import { Memberships } from '../../src/mesh/memberships';
import { Mesh } from '../../src/mesh/mesh';
import { Metrics } from '../../src/metrics';
import { ConnectionContext } from '../../src/session/context';
import type { Protocol } from '../../src/metrics';

/** A one-node mesh in this process, as the engine wires it, with no servers: MemoryBroker, Hub, Mesh, Metrics. */
export async function meshNode(): Promise<{ broker: MemoryBroker; hub: Hub; mesh: Mesh; metrics: Metrics }> {
  const broker = new MemoryBroker('127.0.0.1:1');
  let hub: Hub | null = null;
  const metrics = new Metrics({ maxAge: 600, ageBuckets: 5, bufCap: 500 }, {
    clients: () => 0,
    channels: () => hub?.channelCount ?? 0,
    queueWaiting: () => 0,
    queueBytes: () => 0,
    contextBytes: () => 0,
    brokerReady: () => broker.ready(),
    logDropped: () => 0,
    meshExpired: () => 0,
    meshSubscriptionRepairs: () => 0,
    meshSubscriptions: () => ({ wanted: 0, unsynced: 0, queued: 0 }),
  });
  hub = new Hub(broker, metrics);
  const mesh = new Mesh(broker, hub, metrics, { localOnly: true });
  await broker.start(hub);
  return { broker, hub, mesh, metrics };
}

/** How many names `memberships` holds, tombstones included (its private map's size). */
export function storedNames(memberships: Memberships<unknown>): number {
  return (memberships as unknown as { byName: Map<string, unknown> }).byName.size;
}

/** A connection as the hub sees it, keeping what it was given; `deliver` runs `during` first, if set. */
export class TestSubscriber implements Subscriber {
  readonly channels = new Memberships<ChannelEntry>();
  readonly context = new ConnectionContext();
  readonly received: string[] = [];
  accepts = true;

  constructor(
    readonly clientId: string,
    readonly protocol: Protocol = 'websocket',
    readonly maxChannels = 0,
    private readonly during?: () => void,
  ) {}

  deliver(message: Outgoing): boolean {
    this.during?.();
    if (!this.accepts) return false;
    this.received.push(message.payload.toString());
    return true;
  }
}

/** Keeps the CPU busy for `ms` of wall time: a delivery that is slow however fast the machine is. */
export function busyFor(ms: number): void {
  const until = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() < until);
}

/** The value of the first sample line of the node's metrics text that matches `pattern`, or 0. */
export async function sample(metrics: Metrics, pattern: RegExp): Promise<number> {
  const line = (await metrics.registry.metrics()).split('\n').find((candidate) => pattern.test(candidate));
  return line ? Number(line.split(' ').pop()) : 0;
}
