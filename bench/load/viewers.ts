import type { WebSocket } from 'ws';
import { dialect as dialectOf } from './dialects';
import { openGreeted } from './connect';
import { Audience, type AudienceStats, type OpenClients, type OpenedClients } from './audience';
import { nowMs, scan, scanned } from './payload';

/** Parameters of `viewers.open`: this worker's share of the viewers (grouped by video). */
export interface OpenViewers extends OpenClients {
  /** Viewer i watches video `firstVideo + i % videos`. */
  videos: number;
  firstVideo: number;
}

/** A step's figures; `delivered` counts each comment's sequence number once per viewer. */
export interface ViewerStats extends AudienceStats {
  duplicates: number;
}

interface Viewer {
  ws: WebSocket;
  video: number;
  /** Highest sequence number seen, and which of the WINDOW numbers up to it were seen. */
  highest: number;
  seen: Uint32Array | null;
  subscribed: (() => void) | null;
}

/**
 * Sequence numbers tracked per viewer. Comments may reach the server out of order (the backend posts
 * on several connections at once), so a viewer remembers which of its channel's last WINDOW numbers
 * it got: a number seen twice is a duplicate, whatever the order.
 */
const WINDOW = 1024;

/** Records `seq` for the viewer: true if new, false if a duplicate. */
function mark(viewer: Viewer, seq: number): boolean {
  const seen = (viewer.seen ??= new Uint32Array(WINDOW / 32));
  if (seq > viewer.highest) {
    if (seq - viewer.highest >= WINDOW) seen.fill(0);
    else for (let k = viewer.highest + 1; k < seq; k++) seen[(k % WINDOW) >>> 5] &= ~(1 << (k & 31));
    viewer.highest = seq;
  } else if (seq <= viewer.highest - WINDOW) {
    return true; // older than the window: cannot tell, counted as new
  } else if (seen[(seq % WINDOW) >>> 5] & (1 << (seq & 31))) {
    return false;
  }
  seen[(seq % WINDOW) >>> 5] |= 1 << (seq & 31);
  return true;
}

/**
 * The viewers of one worker process: they subscribe with the seed's message, then count every comment
 * they get (once per sequence number: a repeat is a duplicate) and record its latency.
 */
export class Viewers extends Audience<Viewer> {
  private duplicates = 0;

  async open(params: OpenViewers): Promise<OpenedClients> {
    const dialect = dialectOf(params.dialect);
    return this.openAll(params, params.videos, async (index, url, localAddress) => {
      const video = params.firstVideo + (index % params.videos);
      const viewer: Viewer = { ws: null as unknown as WebSocket, video, highest: -1, seen: null, subscribed: null };
      viewer.ws = await openGreeted({
        url: dialect.url(url),
        dialect,
        localAddress,
        timeoutMs: params.timeoutMs,
        onData: (_ws, data) => this.receive(viewer, data),
      }, dialect.subscribe(video), 'subscribe', (answered) => (viewer.subscribed = answered));
      return { client: viewer, group: video };
    });
  }

  private receive(viewer: Viewer, data: Buffer): void {
    const now = nowMs();
    if (!scan(data)) {
      // Not a comment: the answer to the subscribe message.
      if (viewer.subscribed) {
        viewer.subscribed();
        viewer.subscribed = null;
      }
      return;
    }
    if (scanned.t < this.minT) {
      this.late++;
      return;
    }
    if (!mark(viewer, scanned.seq)) {
      this.duplicates++;
      return;
    }
    this.delivered++;
    this.latency.record(now - scanned.t);
  }

  /** Starts a step: counters to zero; comments due before `minT` are late from now on. */
  override reset(minT: number): void {
    super.reset(minT);
    this.duplicates = 0;
  }

  stats(): ViewerStats {
    return { ...this.commonStats(), duplicates: this.duplicates };
  }
}
