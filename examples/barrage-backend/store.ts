import { byVideoTime, type Barrage, type NewBarrage } from './barrage';

/** Where comments live between page loads. */
export interface BarrageStore {
  /** Stores a comment, giving it an id and a timestamp. */
  add(comment: NewBarrage): Promise<Barrage>;
  /** Every comment of a video, by video time. */
  list(videoId: number): Promise<Barrage[]>;
  close(): Promise<void>;
}

/** Comments in this process's memory: for one backend process and for the demo. */
export class MemoryStore implements BarrageStore {
  private lastId = 0;
  private readonly videos = new Map<number, Barrage[]>();

  async add(comment: NewBarrage): Promise<Barrage> {
    const barrage: Barrage = { ...comment, id: ++this.lastId, ts: Date.now() };
    const list = this.videos.get(comment.video_id) ?? [];
    list.push(barrage);
    this.videos.set(comment.video_id, list);
    return barrage;
  }

  async list(videoId: number): Promise<Barrage[]> {
    return [...(this.videos.get(videoId) ?? [])].sort(byVideoTime);
  }

  async close(): Promise<void> {}
}
