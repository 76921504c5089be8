/** What a dialect answers protocol frames on: a ws client or the storm's bare socket. */
export interface TextSender {
  send(text: string): void;
}

/**
 * How a load client speaks to a target. `seed` is the CONNMIX barrage protocol (connmix-ts and raw-ws):
 * plain text frames. `socketio` is Socket.IO 4 over its WebSocket transport, spoken directly on a
 * WebSocket (Engine.IO v4 packets) so that the client side costs the same for every target and only the
 * servers differ.
 */
export interface Dialect {
  readonly name: DialectName;
  /** The URL to open on a node whose viewer endpoint is `wsUrl`. */
  url(wsUrl: string): string;
  /**
   * Handles protocol frames (open, namespace connect, ping). Returns 'ready' when the connection may now
   * subscribe, 'handled' when the frame was protocol only, or 'data' for an application frame.
   */
  control(ws: TextSender, data: Buffer): 'ready' | 'handled' | 'data';
  /** True if the connection may subscribe as soon as the WebSocket is open. */
  readonly readyOnOpen: boolean;
  /** The frame that carries the seed protocol's text `text` (Socket.IO: a `message` event). */
  message(text: string): string;
  subscribe(video: number): string;
  unsubscribe(video: number): string;
  /** True for the `{"result":true}` answer to a (un)subscribe message. */
  isResult(data: Buffer): boolean;
  /** A publish request on the target's WebSocket API, `id` echoed in the answer. */
  apiPublish(channel: string, d: string, id: number): string;
  /** True if `data` is a successful answer to an API publish. */
  isApiOk(data: Buffer): boolean;
}

export type DialectName = 'seed' | 'socketio';

/** The seed's `{"op":"subscribe","channel":"<video>@video"}` (or unsubscribe). */
function subscribeText(op: 'subscribe' | 'unsubscribe', video: number): string {
  return `{"op":"${op}","channel":"${video}@video"}`;
}

const seed: Dialect = {
  name: 'seed',
  url: (wsUrl) => wsUrl,
  control: () => 'data',
  readyOnOpen: true,
  message: (text) => text,
  subscribe: (video) => subscribeText('subscribe', video),
  unsubscribe: (video) => subscribeText('unsubscribe', video),
  // {"result":true}: the only frame a viewer gets that starts with {"r
  isResult: (data) => data.length < 32 && data[0] === 0x7b && data[2] === 0x72,
  apiPublish: (channel, d, id) => JSON.stringify({ m: 'mesh.publish', p: { c: channel, d }, i: id }),
  isApiOk: (data) => data.includes('"E":null'),
};

const socketio: Dialect = {
  name: 'socketio',
  url: (wsUrl) => `${wsUrl.replace(/\/$/, '')}/socket.io/?EIO=4&transport=websocket`,
  control(ws, data) {
    const type = data[0];
    if (type === 0x30) {
      // Engine.IO open: connect to the default namespace.
      ws.send('40');
      return 'handled';
    }
    if (type === 0x32 && data.length === 1) {
      // Engine.IO ping: pong, or the server closes the connection after pingTimeout.
      ws.send('3');
      return 'handled';
    }
    if (type === 0x34 && data[1] === 0x30) return 'ready'; // Socket.IO CONNECT acknowledged
    return 'data';
  },
  readyOnOpen: false,
  message: (text) => `42${JSON.stringify(['message', text])}`,
  subscribe: (video) => socketio.message(subscribeText('subscribe', video)),
  unsubscribe: (video) => socketio.message(subscribeText('unsubscribe', video)),
  isResult: (data) => data.length < 48 && data[0] === 0x34 && data[1] === 0x32 && data.includes('result'),
  // Socket.IO's request/response is an event with an acknowledgement: 42<id>[...] answered by 43<id>[...].
  apiPublish: (channel, d, id) => `42${id}${JSON.stringify(['publish', { c: channel, d }])}`,
  isApiOk: (data) => data[0] === 0x34 && data[1] === 0x33,
};

export function dialect(name: DialectName): Dialect {
  return name === 'seed' ? seed : socketio;
}
