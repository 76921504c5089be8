/** The `E.c` codes of CONNMIX's APIs (the error table of its API docs), plus ours from 404 up. */
export const ErrorCode = {
  INVALID_PARAMS: 101,
  CONSUME_FAILED: 201,
  DUPLICATE_CONSUME: 202,
  UNCONSUME_FAILED: 203,
  CALL_FAILED: 301,
  SEND_FAILED: 401,
  /** Ours: the route does not exist. */
  NOT_FOUND: 404,
  /** Ours: the mesh could not carry the request (for example Redis is unreachable). */
  MESH_UNAVAILABLE: 500,
  /** Ours: the API server holds `maxBytesInFlight` bytes of requests already (HTTP bodies, `/ws/v1` frames); retry shortly (HTTP 503). */
  BUSY: 503,
} as const;

/** An API failure that answers `{"E": {"c": code, "m": message}}`. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export function invalidParams(message: string): ApiError {
  return new ApiError(ErrorCode.INVALID_PARAMS, message);
}

/** A request past the API server's `maxBytesInFlight` (HTTP bodies and `/ws/v1` frames alike). */
export function busy(limit: number): ApiError {
  return new ApiError(ErrorCode.BUSY, `busy: ${limit} bytes of requests are in flight; retry`);
}
