import { channelError } from '../mesh/hub';
import { invalidParams } from '../wire/api-errors';

/** A validated `{c, d, t}` request of `/v1/mesh/publish` or `/v1/mesh/send` (CONNMIX docs, websocket-api). */
export interface MeshRequest {
  /** The channel (publish) or client_id (send). */
  target: string;
  payload: Buffer;
  binary: boolean;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A `"c"` (or, in the 2022 long form, `"client_id"`) whose value is a bare integer too long for a double
 * (the PHP SDK sends client_ids as JSON numbers): quoted before parsing so that no digit is lost. Inside
 * JSON strings quotes are escaped, so this cannot match text within `d`.
 */
const LONG_NUMERIC_C = /("(?:c|client_id)"\s*:\s*)(\d{16,20})(?=\s*[,}])/g;

/** JSON.parse, except that client_ids sent as long JSON numbers keep every digit (as strings). */
export function parseJsonKeepingIds(text: string): unknown {
  return JSON.parse(hasNumericId(text) ? text.replace(LONG_NUMERIC_C, '$1"$2"') : text);
}

/** What may follow `"c` in an id key: `"` (the key `"c"`) or `lient_id"` (the 2022 key `"client_id"`). */
const ID_KEY_ENDS = ['"', 'lient_id"'];

/**
 * Whether some `"c"` or `"client_id"` key has a bare number for value: the common case (a channel
 * name, a quoted client_id) then skips the regular expression, which cost ~10% of a /ws/v1 publish
 * scanning all of `d`. One scan of the text finds both keys.
 */
function hasNumericId(text: string): boolean {
  for (let at = text.indexOf('"c'); at >= 0; at = text.indexOf('"c', at + 2)) {
    const end = ID_KEY_ENDS.find((rest) => text.startsWith(rest, at + 2));
    if (end === undefined) continue;
    let i = at + 2 + end.length;
    while (isJsonSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 0x3a /* : */) continue;
    i++;
    while (isJsonSpace(text.charCodeAt(i))) i++;
    const first = text.charCodeAt(i);
    if (first >= 0x30 && first <= 0x39) return true;
  }
  return false;
}

function isJsonSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/** Parses a request body as JSON, answering 101 when it is not a JSON object. */
export function parseBody(raw: Buffer | string | undefined): Record<string, unknown> {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : (raw ?? '');
  let body: unknown;
  try {
    body = parseJsonKeepingIds(text);
  } catch (error) {
    throw invalidParams(`invalid JSON body: ${(error as Error).message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidParams('the body must be a JSON object');
  return body as Record<string, unknown>;
}

/** The payload `d` with its type `t`: text as UTF-8, binary as strict base64. */
function payloadOf(body: Record<string, unknown>): { payload: Buffer; binary: boolean } {
  const { d, t } = body;
  if (typeof d !== 'string') throw invalidParams('d must be a string');
  if (t === undefined || t === null || t === 'text') return { payload: Buffer.from(d, 'utf8'), binary: false };
  if (t !== 'binary') throw invalidParams('t must be "text" or "binary"');
  if (!BASE64.test(d)) throw invalidParams('d must be base64 when t is "binary"');
  return { payload: Buffer.from(d, 'base64'), binary: true };
}

export function publishRequest(body: Record<string, unknown>): MeshRequest {
  const error = channelError(body.c);
  if (error) throw invalidParams(`c: ${error}`);
  return { target: body.c as string, ...payloadOf(body) };
}

/** The channel `c` of a `mesh.count` request. */
export function countRequest(body: Record<string, unknown>): string {
  const error = channelError(body.c);
  if (error) throw invalidParams(`c: ${error}`);
  return body.c as string;
}

/** client_ids arrive as decimal strings, or as JSON numbers from the PHP SDK. */
export function sendRequest(body: Record<string, unknown>): MeshRequest {
  const { c } = body;
  const target = typeof c === 'number' && Number.isInteger(c) && c >= 0 ? BigInt(c).toString() : c;
  if (typeof target !== 'string' || !/^\d{1,20}$/.test(target)) throw invalidParams('c must be a client_id (a decimal string)');
  return { target, ...payloadOf(body) };
}
