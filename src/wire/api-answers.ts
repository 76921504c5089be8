/**
 * The answers of the engine's API as they travel, shared by the servers that write them (src/api) and the
 * SDK that reads them (src/client). HTTP answers `{E, r}`; `/ws/v1` adds the request's `i`.
 */

/** A failure: `c` one of ErrorCode (api-errors.ts), `m` a message for people. */
export interface AnswerError {
  c: number;
  m: string;
}

/** `r` of a publish: connections written to (`s`) and those that could not take it (`f`). */
export interface PublishAnswer {
  s: number;
  f: number;
}

/** `r` of a send that reached its connection (one that did not answers SEND_FAILED). */
export interface SendAnswer {
  s: true;
}

/** `r` of a count: subscribers over the mesh (`n`) and nodes that did not answer in time (`f`). */
export interface CountAnswer {
  n: number;
  f: number;
}

/** An HTTP answer. */
export type Answer<R = unknown> = { E: null; r: R } | { E: AnswerError };

/** A `/ws/v1` answer: an HTTP answer with the request's `i` (null when it had none). */
export type Reply<R = unknown> = Answer<R> & { i: unknown };
