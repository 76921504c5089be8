import type { WebSocket } from 'ws';
import { dialect as dialectOf, type DialectName } from './dialects';
import { openGreeted, forEachLimit } from './connect';
import { Audience, type AudienceStats } from './audience';
import { nowMs, scan, scanned } from './payload';

/** Parameters of `viewers.open`: this worker's share of the viewers. */
export interface OpenViewers {
  /**
   * Viewer endpoints of the target's nodes. Viewer i uses urls[floor(i / videos) % urls.length]: each
   * video's viewers alternate between the nodes, so a publish has to cross the mesh for every video.
   */
  urls: string[];
  dialect: DialectName;
  /** Global index of this worker's first viewer, so videos and nodes spread the same over all workers. */
  firstIndex: number;
  count: number;
  /** Viewer i watches video `firstVideo + i % videos`. */
  videos: number;
  firstVideo: number;
  addresses: string[];
  concurrency: number;
  timeoutMs: number;
}

export interface OpenResult {
  opened: number;
  failed: number;
  errors: string[];
  /** Subscribed viewers per video. */
  perVideo: Record<number, number>;
  ms: number;
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

  async open(params: OpenViewers): Promise<OpenResult> {
    const dialect = dialectOf(params.dialect);
    const started = Date.now();
    const errors: string[] = [];
    const perVideo: Record<number, number> = {};
    let opened = 0;
    let failed = 0;
    await forEachLimit(params.count, params.concurrency, async (i) => {
      const index = params.firstIndex + i;
      const video = params.firstVideo + (index % params.videos);
      const viewer: Viewer = { ws: null as unknown as WebSocket, video, highest: -1, seen: null, subscribed: null };
      try {
        viewer.ws = await openGreeted({
          url: dialect.url(params.urls[Math.floor(index / params.videos) % params.urls.length]),
          dialect,
          localAddress: params.addresses[index % params.addresses.length],
          timeoutMs: params.timeoutMs,
          onData: (_ws, data) => this.receive(viewer, data),
        }, dialect.subscribe(video), 'subscribe', (answered) => (viewer.subscribed = answered));
        this.clients.push(viewer);
        perVideo[video] = (perVideo[video] ?? 0) + 1;
        opened++;
      } catch (error) {
        failed++;
        if (errors.length < 5) errors.push((error as Error).message);
      }
    });
    if (params.dialect === 'seed') this.startKeepalive();
    return { opened, failed, errors, perVideo, ms: Date.now() - started };
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
