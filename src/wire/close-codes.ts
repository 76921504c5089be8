/**
 * WebSocket close codes the engine sends (RFC 6455 7.4 and the 4000-4999 private range). "WebSocket close
 * codes" in docs/operations.md lists them; clients may reconnect on every code but 1008 and 1009.
 */
export const CloseCode = {
  /** `conn:close()` from Lua, or a normal end. */
  NORMAL: 1000,
  /** The node is shutting down: reconnect (to another node). */
  GOING_AWAY: 1001,
  /** The client broke the WebSocket protocol (ws closes the connection for it). */
  PROTOCOL_ERROR: 1002,
  /** The connection broke a limit (its send buffer overflowed, too many queued events). A peer whose
   * buffer overflowed is dropped without a close frame; on_close and the logs report this code. */
  POLICY: 1008,
  /** An inbound message was larger than `maxMessageSize`. */
  TOO_BIG: 1009,
  /** A Lua hook failed or ran past its budget. */
  SCRIPT_ERROR: 1011,
  /** Nothing was received for `readTimeout` seconds. */
  READ_TIMEOUT: 4001,
  /** Pending writes did not drain for `writeTimeout` seconds (dropped, reported as for 1008). */
  WRITE_TIMEOUT: 4002,
} as const;

/**
 * Codes `connmix_closes_total` names one by one: those the engine sends, those ws reports (1005 no code,
 * 1006 no close frame, 1007 bad UTF-8) and those docs/operations.md documents. A client may close with
 * any of about 2,000 valid codes; each would become a series of its own, so the rest count as `other`.
 */
const DOCUMENTED = new Set<number>([...Object.values(CloseCode), 1005, 1006, 1007]);

/** The `code` label of `connmix_closes_total` for a close code. */
export function closeCodeLabel(code: number): string {
  return DOCUMENTED.has(code) ? String(code) : 'other';
}

/**
 * The close code ws sends for each error code it documents (ws's doc/ws.md, "Error codes") that is not a
 * plain protocol error (1002): bad UTF-8 is invalid payload data (1007), too many fragments a policy
 * breach (1008), a frame or message over `maxPayload` too big (1009).
 */
const WS_ERROR_CLOSE_CODES: ReadonlyMap<string, number> = new Map([
  ['WS_ERR_INVALID_UTF8', 1007],
  ['WS_ERR_TOO_MANY_BUFFERED_PARTS', CloseCode.POLICY],
  ['WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', CloseCode.TOO_BIG],
  ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', CloseCode.TOO_BIG],
]);

/**
 * The close code ws sent when it closed a connection for a client's protocol error (1002, 1007, 1008
 * or 1009), or null for any other error. ws stops reading after such an error, so its own 'close'
 * event reports 1006; this is what on_close and the metrics report instead. It is read from the error's
 * public `code` (ws's documented `WS_ERR_*` names), not from ws internals.
 */
export function protocolErrorCode(error: Error & { code?: string }): number | null {
  if (!error.code?.startsWith('WS_ERR_')) return null;
  return WS_ERROR_CLOSE_CODES.get(error.code) ?? CloseCode.PROTOCOL_ERROR;
}
