import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { destroySocket } from './http-request';

/** What a refusal says besides its status: a body (none by default) and extra headers. */
export interface RefusalBody {
  body?: string;
  contentType?: string;
  headers?: Readonly<Record<string, string>>;
}

/**
 * Refuses a request and closes its connection: the one writer of every refusal the servers give, on a raw
 * socket (an upgrade turned down: there is no ServerResponse, so the HTTP answer is written by hand) or on
 * a plain HTTP response.
 */
export function refuse(target: Duplex | ServerResponse, status: number, refusal: RefusalBody = {}): void {
  const body = refusal.body ?? '';
  const headers: Record<string, string> = { ...refusal.headers };
  if (refusal.contentType !== undefined) headers['Content-Type'] = refusal.contentType;
  headers['Content-Length'] = String(Buffer.byteLength(body));
  headers.Connection = 'close';
  if (isResponse(target)) {
    target.writeHead(status, headers);
    target.end(body);
    return;
  }
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  // end() closes only our half: a client that never closes its own would keep the descriptor for good
  // (an upgraded socket has no server timeout left). Once the answer is handed to the kernel, let go.
  target.once('finish', destroySocket);
  target.end(`${head}\r\n${body}`);
}

function isResponse(target: Duplex | ServerResponse): target is ServerResponse {
  return 'writeHead' in target;
}
