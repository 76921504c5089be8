import { answerError, ConnmixError, ErrorCode, noAnswer } from './errors';
import { encodePayload } from './payload';
import type { CountResult, NodeInfo, Payload, PayloadOptions, PublishResult } from './types';
import type { CountAnswer, PublishAnswer } from '../wire/api-answers';

/** One node's HTTP API (`/v1/mesh/publish`, `/v1/mesh/send`, `/v1/mesh/count`, `/v1/nodes`, `/version`). */
export class HttpApi {
  constructor(
    /** `http://host:port` of the node's API server. */
    readonly baseUrl: string,
    private readonly headers: Record<string, string>,
    private readonly timeoutMs: number,
  ) {}

  async publish(channel: string, data: Payload, options?: PayloadOptions): Promise<PublishResult> {
    const r = (await this.request('POST', '/v1/mesh/publish', { c: channel, ...encodePayload(data, options) })) as PublishAnswer;
    return { delivered: r.s, failed: r.f };
  }

  async send(clientId: string, data: Payload, options?: PayloadOptions): Promise<void> {
    await this.request('POST', '/v1/mesh/send', { c: clientId, ...encodePayload(data, options) });
  }

  async count(channel: string): Promise<CountResult> {
    const r = (await this.request('POST', '/v1/mesh/count', { c: channel })) as CountAnswer;
    return { subscribers: r.n, unansweredNodes: r.f };
  }

  async nodes(): Promise<NodeInfo[]> {
    const body = (await this.request('GET', '/v1/nodes')) as { nodes: Array<{ id: string; api_server: string }> };
    return body.nodes.map((node) => ({ id: node.id, apiServer: node.api_server }));
  }

  async version(): Promise<string[]> {
    return ((await this.request('GET', '/version')) as { apis: string[] }).apis;
  }

  /** Sends one request; resolves with `r` (or the whole body for routes without the `{E, r}` envelope). */
  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: { ...this.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      // fetch reports "fetch failed"; the reason (ECONNREFUSED, a timeout) is in its cause.
      const reason = ((error as Error).cause as Error | undefined)?.message ?? (error as Error).message;
      throw noAnswer(`${method} ${this.baseUrl}${path}: ${reason}`, error);
    }
    let json: { E?: { c?: unknown; m?: unknown } | null; r?: unknown } & Record<string, unknown>;
    try {
      json = (await response.json()) as typeof json;
    } catch (error) {
      throw new ConnmixError(ErrorCode.MESH_UNAVAILABLE, `${method} ${path}: HTTP ${response.status} without a JSON body`, response.status, { cause: error });
    }
    if (json.E) throw answerError(json.E, response.status);
    if (!response.ok) throw new ConnmixError(response.status, `${method} ${path}: HTTP ${response.status}`, response.status);
    return 'r' in json ? json.r : json;
  }
}
