import { WebSocket } from 'ws';
import { withTimeout, type Json } from './helpers';
import { Waker } from './waker';

// A queue consumer that talks to engines the way CONNMIX's PHP SDK (connmix/connmix-php, async mode)
// does, so the conformance tests exercise the wire format real backends use, not the test ApiClient:
//  - discovery: GET <host>/version, take the first of `apis`, then GET <host>/<api>/nodes, where <host>
//    is what the user gave setHost (CONNMIX's center API, `127.0.0.1:6787` in every example; Guzzle
//    reads a host without a scheme as http://);
//  - one ws://<api_server>/ws/v1 connection per node, each sending `queue.pop` with the topics as a bare
//    list (`"p": ["chat"]`, as AsyncNode::pop does);
//  - requests `{"m", "p", "i"}` with a process-wide auto-increment `i`; replies sent on the connection
//    of the node the event came from (meshSend, setContextValue, subscribe... on `$node`);
//  - a frame is an "event" if it has `e`, an "error" if `E` is set, a "result" if it has `r`.
// The PHP SDK types client ids as int and so sends them as JSON numbers; `numericClientIds` does the
// same (written into the JSON text, since a JS number cannot hold 19 digits). By default they are sent
// as the decimal strings the engine emits, which CONNMIX accepts too.

/** One frame received from a node, typed as the SDK's Message::type() does. */
export interface SdkMessage {
  type: 'event' | 'error' | 'result' | 'unknown';
  frame: Json;
}

let lastId = 0;

/** The connection to one engine's /ws/v1 (the SDK's AsyncNode). */
export class ConsumerNode {
  readonly messages: SdkMessage[] = [];
  private readonly answers = new Map<number, (message: SdkMessage) => void>();

  constructor(
    readonly id: string,
    readonly apiServer: string,
    readonly ws: WebSocket,
    private readonly numericClientIds: boolean,
    onMessage: (node: ConsumerNode, message: SdkMessage) => void,
  ) {
    ws.on('message', (raw: Buffer) => {
      const frame = JSON.parse(raw.toString('utf8'));
      const message: SdkMessage = {
        type: frame.e ? 'event' : frame.E ? 'error' : frame.r !== undefined && frame.r !== null ? 'result' : 'unknown',
        frame,
      };
      this.messages.push(message);
      const answer = typeof frame.i === 'number' ? this.answers.get(frame.i) : undefined;
      if (answer) {
        this.answers.delete(frame.i);
        answer(message);
      }
      onMessage(this, message);
    });
    ws.on('error', () => undefined);
  }

  /** Sends `{"m": method, "p": params, "i": <next id>}` and resolves with the answer to it. */
  send(method: string, params: unknown, rawParams?: string): Promise<SdkMessage> {
    const i = ++lastId;
    const answered = new Promise<SdkMessage>((resolve) => this.answers.set(i, resolve));
    const p = rawParams ?? JSON.stringify(params);
    this.ws.send(`{"m":${JSON.stringify(method)},"p":${p},"i":${i}}`);
    return withTimeout(answered, 3000, `no answer to ${method} #${i} from node ${this.id}`);
  }

  pop(...topics: string[]): Promise<SdkMessage> {
    return this.send('queue.pop', topics);
  }

  connCall(clientId: string, f: string, a: unknown[]): Promise<SdkMessage> {
    return this.send('conn.call', null, `{"c":${this.clientId(clientId)},"f":${JSON.stringify(f)},"a":${JSON.stringify(a)}}`);
  }

  setContextValue(clientId: string, key: string, value: unknown): Promise<SdkMessage> {
    return this.connCall(clientId, 'set_context_value', [key, value]);
  }

  subscribe(clientId: string, ...channels: string[]): Promise<SdkMessage> {
    return this.connCall(clientId, 'subscribe', channels);
  }

  meshSend(clientId: string, data: string): Promise<SdkMessage> {
    return this.send('mesh.send', null, `{"c":${this.clientId(clientId)},"d":${JSON.stringify(data)}}`);
  }

  meshPublish(channel: string, data: string): Promise<SdkMessage> {
    return this.send('mesh.publish', { c: channel, d: data });
  }

  private clientId(clientId: string): string {
    if (!/^\d+$/.test(clientId)) throw new Error(`not a client id: ${clientId}`);
    return this.numericClientIds ? clientId : JSON.stringify(clientId);
  }
}

/** A `queue.pop` event and the node connection it arrived on. */
export interface ConsumerEvent {
  node: ConsumerNode;
  frame: Json;
}

export interface ConsumerOptions {
  /** What the SDK's setHost takes: `host:port` of the center API (or of any engine's API), `http://` optional. */
  host: string;
  topics: string[];
  /** Called for every frame, as the SDK's onMessage($node). */
  onMessage?: (node: ConsumerNode, message: SdkMessage) => void;
  numericClientIds?: boolean;
}

/** Discovers every node, connects to each, and pops the topics on all of them. */
export class PhpStyleConsumer {
  /** Every `queue.pop` event received from any node, oldest first, with the node it came from. */
  readonly events: ConsumerEvent[] = [];
  private readonly waker = new Waker();
  nodes: ConsumerNode[] = [];

  private constructor() {}

  /** Takes the oldest event not yet taken that `match` accepts (any by default), waiting up to `timeoutMs`. */
  async nextEvent(timeoutMs = 3000, match: (event: ConsumerEvent) => boolean = () => true): Promise<ConsumerEvent> {
    await this.waker.until(() => this.events.some(match), timeoutMs, () => `no matching queue event within ${timeoutMs} ms`);
    return this.events.splice(this.events.findIndex(match), 1)[0];
  }

  /** True if no event that `match` accepts arrives within `ms`. */
  async quietFor(ms: number, match: (event: ConsumerEvent) => boolean = () => true): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return !this.events.some(match);
  }

  static async start(options: ConsumerOptions): Promise<PhpStyleConsumer> {
    const consumer = new PhpStyleConsumer();
    const onMessage = (node: ConsumerNode, message: SdkMessage): void => {
      if (message.type === 'event') {
        consumer.events.push({ node, frame: message.frame });
        consumer.waker.wake();
      }
      options.onMessage?.(node, message);
    };
    const host = /^https?:\/\//.test(options.host) ? options.host : `http://${options.host}`;
    const version = await getJson(`${host}/version`);
    const api = (version.apis as string[])[0];
    const { nodes } = await getJson(`${host}/${api}/nodes`);
    const connected: ConsumerNode[] = [];
    try {
      for (const { id, api_server } of nodes as { id: string; api_server: string }[]) {
        const ws = new WebSocket(`ws://${api_server}/ws/${api}`);
        await withTimeout(new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        }), 3000, `connect to ${api_server}`);
        const node = new ConsumerNode(id, api_server, ws, options.numericClientIds ?? false, onMessage);
        connected.push(node);
        const popped = await node.pop(...options.topics);
        if (popped.type !== 'result' || popped.frame.r.s !== true) throw new Error(`queue.pop on ${api_server}: ${JSON.stringify(popped.frame)}`);
      }
    } catch (error) {
      for (const node of connected) node.ws.close();
      throw error;
    }
    consumer.nodes = connected;
    return consumer;
  }

  node(id: string): ConsumerNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (!node) throw new Error(`no connection to node ${id}`);
    return node;
  }

  close(): void {
    for (const node of this.nodes) node.ws.close();
  }
}

async function getJson(url: string): Promise<Json> {
  const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (response.status !== 200) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.json();
}
