// @ts-check
/**
 * The page's WebSocket to the engine, speaking the seed's protocol: `{"op":"subscribe","channel":"<id>@video"}`
 * in, `{"event":"@video","data":{...}}` (a comment) and `{"event":"@watching","data":{"video_id","watching"}}`
 * (the backend's viewer count) out. It reconnects with backoff and subscribes again.
 */

/** The engine closes connections silent this long (readTimeout, 60 s by default); stay well under it. */
const KEEPALIVE_MS = 25_000;
const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

export class LiveChannel {
  /**
   * @param {string} url `ws://host:6790/barrage-videos`
   * @param {{ onEvent: (data: any) => void, onStatus: (status: 'connecting' | 'live' | 'offline', retryMs?: number) => void,
   *   onWatching?: (count: number) => void, onReconnect?: () => void }} handlers onReconnect runs after a
   *   reconnection, to fetch what was missed
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    /** @type {number | null} */
    this.videoId = null;
    this.attempt = 0;
    this.everOpened = false;
    this.closed = false;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.keepalive = undefined;
    this.connect();
  }

  /** Follows video `id`: unsubscribes the previous one, then subscribes, as the seed describes. */
  watch(/** @type {number} */ id) {
    if (id === this.videoId) return;
    if (this.videoId !== null) this.send('unsubscribe', this.videoId);
    this.videoId = id;
    this.send('subscribe', id);
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }

  /** @private */
  connect() {
    this.handlers.onStatus('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.handlers.onStatus('live');
      if (this.videoId !== null) this.send('subscribe', this.videoId);
      // The seed's protocol has no ping; subscribing again is harmless and keeps the engine hearing from us.
      this.keepalive = setInterval(() => this.videoId !== null && this.send('subscribe', this.videoId), KEEPALIVE_MS);
      if (this.everOpened) this.handlers.onReconnect?.();
      this.everOpened = true;
    };
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!frame || !frame.data || frame.data.video_id !== this.videoId) return;
      if (frame.event === '@video') this.handlers.onEvent(frame.data);
      else if (frame.event === '@watching' && Number.isInteger(frame.data.watching)) this.handlers.onWatching?.(frame.data.watching);
    };
    ws.onclose = () => {
      clearInterval(this.keepalive);
      if (this.closed) return;
      const delay = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt++) * (1 + Math.random() * 0.2);
      this.handlers.onStatus('offline', delay);
      setTimeout(() => this.connect(), delay);
    };
  }

  /** @private */
  send(/** @type {'subscribe' | 'unsubscribe'} */ op, /** @type {number} */ id) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ op, channel: `${id}@video` }));
  }
}
