import type { Broker, CallOutcome, ConnFunction, CountResult, LocalDelivery, NodeInfo, PublishResult } from './broker';
import { newNodeId } from './ids';

/** The embedded broker: one node, nothing else to run. Publishes and sends are local deliveries. */
export class MemoryBroker implements Broker {
  readonly nodeNumber = 0;
  readonly nodeId = newNodeId();
  private local: LocalDelivery | null = null;

  constructor(private readonly apiAddress: string) {}

  async start(local: LocalDelivery): Promise<void> {
    this.local = local;
  }

  subscribe(): void {}

  unsubscribe(): void {}

  publish(channel: string, payload: Buffer, binary: boolean): PublishResult {
    return this.local ? this.local.deliver(channel, payload, binary) : { s: 0, f: 0 };
  }

  send(clientId: string, payload: Buffer, binary: boolean): boolean {
    return this.local ? this.local.deliverTo(clientId, payload, binary) : false;
  }

  call(clientId: string, fn: ConnFunction, args: unknown[]): CallOutcome {
    return this.local ? this.local.callOn(clientId, fn, args) : `client ${clientId} not found or gone`;
  }

  count(channel: string): CountResult {
    return { n: this.local ? this.local.count(channel) : 0, f: 0 };
  }

  nodes(): NodeInfo[] {
    return [{ id: this.nodeId, api_server: this.apiAddress }];
  }

  async leave(): Promise<void> {}

  ready(): boolean {
    return this.local !== null;
  }

  async stop(): Promise<void> {
    this.local = null;
  }
}
