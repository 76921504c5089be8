import type { AnswerError, PublishAnswer } from '../wire/api-answers';
import { invalidParams } from '../wire/api-errors';

/**
 * The `/ws/v1` format of CONNMIX's first releases: its API page from March to May 2022 and its PHP SDK
 * v1.0.1 to v1.0.4 (the version laravel-chat locks). Requests are `{"method", "params", "id"}` with long
 * parameter names (`client_id`, `func`/`args`, `channel`, `data`), answers `{"error", "result", "id"}`
 * with `result` `{"success", "fail", "total"}` and `error` `{"code", "message"}`, and queue events
 * `{"event": "queue.consume", "result": {"client_id", "queue", "data"}, "id": null}`. This module
 * translates such a request into the current `{m, p}` and the current answer back; the commands are
 * the same.
 */

/** Whether a parsed request is in the long form: a `method` and no `m`. */
export function isLongForm(request: Record<string, unknown>): boolean {
  return request.m === undefined && typeof request.method === 'string';
}

/** A long-form request as the current method and params. */
export interface Translated {
  method: string;
  params: Record<string, unknown>;
}

/** The current method and params of a long-form `method` and `params`. */
export function fromLongForm(method: string, params: unknown): Translated {
  // Parameters other than queue.consume's topics came wrapped in a one-element list.
  const p = Array.isArray(params) && params.length === 1 && isObject(params[0]) ? params[0] : params;
  switch (method) {
    case 'queue.consume':
      return { method: 'queue.pop', params: { t: p } };
    case 'queue.unconsume':
      return { method: 'queue.unpop', params: {} };
    case 'conn.call': {
      const call = objectParams(p);
      // SDK v1.0.1 and v1.0.2 wrote method/params, v1.0.3 and the May 2022 page func/args.
      const f = call.func ?? call.method;
      let a = call.args ?? call.params;
      // SDK v1.0.1's setContextValue sent [$key => $value], a one-key object.
      if (f === 'set_context_value' && isObject(a) && Object.keys(a).length === 1) a = Object.entries(a)[0];
      return { method, params: { c: call.client_id, f, a } };
    }
    case 'mesh.send': {
      const send = objectParams(p);
      // SDK v1.0.1 to v1.0.4 sent meshPublish as mesh.send with a `channel`: a publish, by its name.
      if (send.channel !== undefined) return { method: 'mesh.publish', params: { c: send.channel, d: send.data } };
      return { method, params: { c: send.client_id, d: send.data } };
    }
    case 'mesh.publish': {
      const publish = objectParams(p);
      return { method, params: { c: publish.channel, d: publish.data } };
    }
    default:
      return { method, params: isObject(p) ? p : {} };
  }
}

/** The long-form answer to a request whose current method is `method`, given its current `r`. */
export function longFormOk(method: string, r: unknown, id: unknown): object {
  return { error: null, result: longFormResult(method, r), id };
}

export function longFormFailure(error: AnswerError, id: unknown): object {
  return { error: { code: error.c, message: error.m }, id };
}

/** A current `queue.pop` event (as the queue encodes it) in the long form. */
export function longFormEvent(event: string): string {
  const { p } = JSON.parse(event) as { p: { c: string; t: string; d: unknown } };
  return JSON.stringify({ event: 'queue.consume', result: { client_id: p.c, queue: p.t, data: p.d }, id: null });
}

function longFormResult(method: string, r: unknown): unknown {
  switch (method) {
    case 'mesh.publish': {
      const { s, f } = r as PublishAnswer;
      return { fail: f, success: true, total: s + f };
    }
    case 'mesh.send':
      return { fail: 0, success: true, total: 1 };
    case 'server.ping':
      return { status: 'server.pong' };
    case 'mesh.count':
      return r;
    default:
      return { success: true };
  }
}

function objectParams(p: unknown): Record<string, unknown> {
  if (!isObject(p)) throw invalidParams('params must be an object, or a list holding one');
  return p;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
