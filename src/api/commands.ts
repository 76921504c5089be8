import { CONN_FUNCTIONS, type ConnFunction, type CountResult, type PublishResult } from '../mesh/broker';
import type { MeshCommands } from '../mesh/mesh';
import { QueueError, type MemoryQueue, type QueueConsumer } from '../queue/memory-queue';
import { ApiError, ErrorCode, invalidParams } from '../wire/api-errors';
import type { AnswerError, CountAnswer, PublishAnswer, SendAnswer } from '../wire/api-answers';
import { whenSettled, type MaybePromise } from '../wire/maybe-promise';
import { countRequest, publishRequest, sendRequest } from './requests';

/**
 * The API's commands, written once for both transports: HTTP (`POST /v1/mesh/*`) and `/ws/v1` decode a
 * request into `params`, call a command, and encode its answer or its error with `errorOf`. Each
 * command validates its params (code 101), runs on the mesh or the queue, and shapes the `r` of
 * the answer. Answers stay synchronous when the mesh is (the memory broker).
 */

/** The `r` of a successful command. */
export type Answer = PublishAnswer | SendAnswer | CountAnswer;

/** `mesh.publish`: `{c: channel, d, t}` → `{s, f}`. */
export function publish(mesh: MeshCommands, params: Record<string, unknown>): MaybePromise<Answer> {
  const { target, payload, binary } = publishRequest(params);
  return onMesh(() => mesh.publish(target, payload, binary), published);
}

/** `mesh.send`: `{c: client_id, d, t}` → `{s: true}`, or 401 when the client is not found or gone. */
export function send(mesh: MeshCommands, params: Record<string, unknown>): MaybePromise<Answer> {
  const { target, payload, binary } = sendRequest(params);
  return onMesh(() => mesh.send(target, payload, binary), (sent) => delivered(sent, target));
}

/** `mesh.count`: `{c: channel}` → `{n, f}`. */
export function count(mesh: MeshCommands, params: Record<string, unknown>): MaybePromise<Answer> {
  const channel = countRequest(params);
  return onMesh(() => mesh.count(channel), counted);
}

/** `conn.call`: `{c: client_id, f, a}` → `{s: true}`, or 301 with the connection's refusal. */
export function call(mesh: MeshCommands, params: Record<string, unknown>): MaybePromise<Answer> {
  const { c, f, a } = params;
  const clientId = typeof c === 'number' && Number.isInteger(c) ? BigInt(c).toString() : c;
  if (typeof clientId !== 'string' || !/^\d{1,20}$/.test(clientId)) throw invalidParams('p.c must be a client_id');
  if (!CONN_FUNCTIONS.includes(f as ConnFunction)) throw invalidParams(`p.f must be one of ${CONN_FUNCTIONS.join(', ')}`);
  if (!Array.isArray(a)) throw invalidParams('p.a must be a list of arguments');
  // The PHP SDK's setContext($id, []) sends an empty PHP array, which json_encode writes as [].
  if (f === 'set_context' && a.length === 1 && Array.isArray(a[0]) && a[0].length === 0) a[0] = {};
  checkCallArgs(f as ConnFunction, a);
  return onMesh(() => mesh.call(clientId, f as ConnFunction, a), called);
}

/** `queue.pop`: `{t: [topic, ...]}` makes `consumer` a consumer of each topic → `{s: true}`. */
export function pop(queue: MemoryQueue, consumer: QueueConsumer, params: Record<string, unknown>): Answer {
  const topics = params.t;
  if (!Array.isArray(topics) || topics.length === 0 || !topics.every((t) => typeof t === 'string' && t.length > 0)) {
    throw invalidParams('p.t must be a non-empty list of topic names');
  }
  for (const topic of topics as string[]) {
    let added: boolean;
    try {
      added = queue.consume(consumer, topic);
    } catch (error) {
      if (error instanceof QueueError) throw new ApiError(ErrorCode.CONSUME_FAILED, error.message);
      throw error;
    }
    if (!added) throw new ApiError(ErrorCode.DUPLICATE_CONSUME, `already consuming topic "${topic}"`);
  }
  return SUCCESS;
}

/** `queue.unpop`: `consumer` stops consuming every topic → `{s: true}`, or 203 if it consumed none. */
export function unpop(queue: MemoryQueue, consumer: QueueConsumer): Answer {
  if (queue.release(consumer) === 0) throw new ApiError(ErrorCode.UNCONSUME_FAILED, 'not consuming any topic');
  return SUCCESS;
}

/**
 * The `E` for a failure: an ApiError as it is, anything else as code 500 (the mesh or the node failed;
 * `expected` false, so a transport may log it).
 */
export function errorOf(error: unknown): AnswerError & { expected: boolean } {
  if (error instanceof ApiError) return { c: error.code, m: error.message, expected: true };
  return { c: ErrorCode.MESH_UNAVAILABLE, m: error instanceof Error ? error.message : String(error), expected: false };
}

const SUCCESS = { s: true } as const;

// Answer shapes, as plain functions made once (not per answer).
function published(result: PublishResult): Answer {
  return { s: result.s, f: result.f };
}

function counted(result: CountResult): Answer {
  return { n: result.n, f: result.f };
}

function delivered(sent: boolean, clientId: string): Answer {
  if (!sent) throw new ApiError(ErrorCode.SEND_FAILED, `send failed: client ${clientId} not found or gone`);
  return SUCCESS;
}

function called(error: string | null): Answer {
  if (error) throw new ApiError(ErrorCode.CALL_FAILED, error);
  return SUCCESS;
}

/**
 * `run`'s answer from the mesh shaped by `shape`, at once when the mesh answers at once. A failure of the
 * mesh itself, thrown or rejected, answers code 500, never a false success.
 */
function onMesh<T>(run: () => MaybePromise<T>, shape: (value: T) => Answer): MaybePromise<Answer> {
  let result: MaybePromise<T>;
  try {
    result = run();
  } catch (error) {
    return unavailable(error);
  }
  return whenSettled(result, shape, unavailable);
}

/** Throws the MESH_UNAVAILABLE error (code 500) for a failure of the mesh itself. */
export function unavailable(error: unknown): never {
  throw new ApiError(ErrorCode.MESH_UNAVAILABLE, `mesh unavailable: ${(error as Error).message}`);
}

/** How deeply a context value may nest: Lua reads it back through values.ts, which stops at 64 levels. */
const MAX_CONTEXT_DEPTH = 64;

/** Whether `value` nests arrays/objects deeper than `limit` levels. */
export function nestedDeeper(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (limit <= 0) return true;
  return Object.values(value).some((item) => nestedDeeper(item, limit - 1));
}

function checkCallArgs(fn: ConnFunction, args: unknown[]): void {
  if (fn === 'set_context_value' && (args.length !== 2 || typeof args[0] !== 'string')) {
    throw invalidParams('set_context_value takes a = [key, value]');
  }
  if (fn === 'set_context' && (args.length !== 1 || args[0] === null || typeof args[0] !== 'object' || Array.isArray(args[0]))) {
    throw invalidParams('set_context takes a = [{...}]');
  }
  if ((fn === 'set_context_value' && nestedDeeper(args[1], MAX_CONTEXT_DEPTH))
    || (fn === 'set_context' && Object.values(args[0] as object).some((value) => nestedDeeper(value, MAX_CONTEXT_DEPTH)))) {
    throw invalidParams(`context values may nest at most ${MAX_CONTEXT_DEPTH} levels`);
  }
  if ((fn === 'subscribe' || fn === 'unsubscribe') && (args.length === 0 || !args.every((x) => typeof x === 'string'))) {
    throw invalidParams(`${fn} takes a = [channel, ...]`);
  }
}
