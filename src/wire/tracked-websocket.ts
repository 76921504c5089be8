import { WebSocket } from 'ws';

/** What a TrackedWebSocket keeps in step with its state. */
export interface OpenFlag {
  /** True while the WebSocket is OPEN. */
  wsOpen: boolean;
}

/**
 * A ws WebSocket that keeps its owner's `wsOpen` in step with its state, so that the fan-out reads a
 * field of the connection it already holds instead of the WebSocket: one object fewer touched per
 * delivery, which was what kept hot-video's CPU per delivery above a bare ws server (bench/notes.md).
 * ws changes its state by assigning `_readyState` in a dozen places (close frames sent or received,
 * the socket's end, error and close, a failing send, terminate); an accessor here sees every one.
 * Give it to a WebSocketServer as its `WebSocket` option.
 */
export class TrackedWebSocket extends WebSocket {
  /** ws's state, stored here because `_readyState` is an accessor. */
  declare private state: number;
  declare private owner: OpenFlag | undefined;

  /** From now on `owner.wsOpen` follows this WebSocket's state; it is set to the current one. */
  track(owner: OpenFlag): void {
    this.owner = owner;
    owner.wsOpen = this.state === WebSocket.OPEN;
  }

  get _readyState(): number {
    return this.state;
  }

  set _readyState(state: number) {
    this.state = state;
    if (this.owner !== undefined) this.owner.wsOpen = state === WebSocket.OPEN;
  }
}
