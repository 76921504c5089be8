import { ErrorCode as EngineErrorCode } from '../wire/api-errors';

/**
 * The `E.c` codes an engine answers with, plus `NO_ANSWER` for requests that got no answer at all
 * (the node could not be reached, the connection dropped, or the timeout passed).
 */
export const ErrorCode = {
  ...EngineErrorCode,
  /** HTTP Basic credentials missing or wrong; `status` is 401 as well. */
  UNAUTHORIZED: 401,
  /** The account lacks the role, or may not connect from this host. */
  FORBIDDEN: 403,
  NO_ANSWER: 0,
} as const;

/**
 * A failed request: `code` is the engine's `E.c` (or `NO_ANSWER`), `status` the HTTP status when the
 * failure came with one (401 and 403 from `access.users` share codes with send failures, so check it).
 */
export class ConnmixError extends Error {
  override readonly name = 'ConnmixError';

  constructor(
    readonly code: number,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The error an answer `{E: {c, m}}` stands for. */
export function answerError(error: { c?: unknown; m?: unknown }, status?: number): ConnmixError {
  const code = typeof error.c === 'number' ? error.c : EngineErrorCode.MESH_UNAVAILABLE;
  return new ConnmixError(code, typeof error.m === 'string' ? error.m : `engine error ${code}`, status);
}

export function noAnswer(message: string, cause?: unknown): ConnmixError {
  return new ConnmixError(ErrorCode.NO_ANSWER, message, undefined, { cause });
}
