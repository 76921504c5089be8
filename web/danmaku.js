// @ts-check
/**
 * The danmaku layer over a <video>: scrolling comments in rows where they never overlap, top and bottom
 * fixed comments, history shown when playback reaches each comment's time, live comments shown at once.
 * Motion follows the video's own clock, so pausing freezes the comments and seeking clears the screen.
 *
 * @typedef {{ id: number, uid: number, video_id: number, msg: string, time: number,
 *   color: string, mode: 'scroll' | 'top' | 'bottom', ts: number }} Barrage
 * @typedef {{ item: Barrage, el: HTMLElement, mode: string, row: number, start: number,
 *   width: number, speed: number, x: number }} Active
 * @typedef {{ item: Barrage, since: number, width?: number }} Waiting
 */

/** Seconds a top or bottom comment stays on screen. */
const FIXED_SECONDS = 4;
/** Seconds a scrolling comment takes to cross the layer's width. */
const CROSS_SECONDS = 7;
/** A history comment this late (video seconds) is skipped instead of shown. */
const LATE_SECONDS = 1;
/** How long (ms) a comment may wait for a free row before it is dropped. */
const WAIT_MS = 3000;
/** Pixels kept between two comments in one row. */
const GAP = 24;

export class DanmakuLayer {
  /**
   * @param {HTMLElement} layer the element over the video that holds the comments
   * @param {HTMLVideoElement} video
   * @param {{ isOwn?: (item: Barrage) => boolean }} [options]
   */
  constructor(layer, video, options = {}) {
    this.layer = layer;
    this.video = video;
    this.isOwn = options.isOwn ?? (() => false);
    /** @type {Barrage[]} every comment of the video, by time */
    this.items = [];
    /** @type {Set<number>} ids in `items` */
    this.known = new Set();
    /** @type {Set<number>} ids shown since the last seek, so no comment shows twice in a pass */
    this.shown = new Set();
    /** index of the next comment in `items` to reach */
    this.cursor = 0;
    /** the video time the comments move by, in seconds */
    this.clock = video.currentTime;
    /** @type {Active[]} */
    this.active = [];
    /** @type {Waiting[]} */
    this.waiting = [];
    this.ruler = document.createElement('div');
    this.ruler.className = 'dm-ruler';
    layer.append(this.ruler);
    this.lastFrame = performance.now();
    this.measure();
    new ResizeObserver(() => this.measure()).observe(layer);
    video.addEventListener('seeking', () => this.rewind());
    const tick = (/** @type {number} */ now) => {
      this.frame(now);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  /** Forgets every comment: another video is coming, and it starts at 0. */
  reset() {
    this.items = [];
    this.known.clear();
    this.clearScreen();
    this.clock = 0;
    this.cursor = 0;
  }

  /** Adds history comments not known yet; those already behind the playhead wait for the next pass. */
  merge(/** @type {Barrage[]} */ list) {
    for (const item of list) this.insert(item);
  }

  /** Shows a comment that just arrived, at once, wherever the playhead is. */
  live(/** @type {Barrage} */ item) {
    if (this.known.has(item.id)) return;
    this.insert(item);
    this.shown.add(item.id);
    this.waiting.unshift({ item, since: performance.now() });
    this.place();
  }

  /** @param {boolean} visible */
  setVisible(visible) {
    this.layer.hidden = !visible;
  }

  /** @private */
  insert(/** @type {Barrage} */ item) {
    if (this.known.has(item.id)) return;
    this.known.add(item.id);
    let low = 0;
    let high = this.items.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.items[mid].time <= item.time) low = mid + 1;
      else high = mid;
    }
    this.items.splice(low, 0, item);
    // A comment that lands behind the playhead waits for the next pass (a seek or a loop).
    if (low < this.cursor) this.cursor++;
  }

  /** @private A seek (or a loop back to the start): clear the screen, resume from the new time. */
  rewind() {
    this.clearScreen();
    this.clock = this.video.currentTime;
    this.cursor = this.items.findIndex((item) => item.time >= this.clock);
    if (this.cursor < 0) this.cursor = this.items.length;
  }

  /** @private */
  clearScreen() {
    for (const { el } of this.active) el.remove();
    this.active = [];
    this.waiting = [];
    this.shown.clear();
  }

  /** @private Row sizes follow the player's size. */
  measure() {
    this.width = this.layer.clientWidth;
    this.height = this.layer.clientHeight;
    this.fontSize = Math.round(Math.min(28, Math.max(14, this.height / 20)));
    this.rowHeight = Math.round(this.fontSize * 1.4);
    // The bottom strip stays clear for the video's own controls.
    this.rows = Math.max(1, Math.floor((this.height - this.fontSize * 2) / this.rowHeight));
    this.layer.style.setProperty('--dm-size', `${this.fontSize}px`);
  }

  /** @private */
  frame(/** @type {number} */ now) {
    const elapsed = Math.min(0.25, (now - this.lastFrame) / 1000);
    this.lastFrame = now;
    const v = this.video;
    if (!v.paused && !v.seeking && v.readyState >= 3) {
      this.clock += elapsed * v.playbackRate;
      // currentTime moves in coarse steps; follow it only when the two drift apart.
      if (Math.abs(this.clock - v.currentTime) > 0.3) this.clock = v.currentTime;
    }
    while (this.cursor < this.items.length && this.items[this.cursor].time <= this.clock) {
      const item = this.items[this.cursor++];
      if (this.shown.has(item.id) || this.clock - item.time > LATE_SECONDS) continue;
      this.shown.add(item.id);
      this.waiting.push({ item, since: now });
    }
    if (this.waiting.length > 0) this.place();
    this.move();
  }

  /** @private Puts waiting comments into free rows; drops those that waited too long. */
  place() {
    const now = performance.now();
    this.waiting = this.waiting.filter((waiting) => {
      waiting.width ??= this.measureText(waiting.item.msg);
      const row = this.freeRow(waiting.item.mode, waiting.width);
      if (row >= 0) {
        this.show(waiting.item, row, waiting.width);
        return false;
      }
      return now - waiting.since < WAIT_MS;
    });
  }

  /** @private The text's width at the current size, measured off screen. */
  measureText(/** @type {string} */ text) {
    this.ruler.textContent = text;
    return this.ruler.offsetWidth;
  }

  /**
   * @private The first row a comment can take without touching another, or -1. Scrolling comments fill
   * rows from the top, top comments too, bottom comments from the bottom up.
   */
  freeRow(/** @type {string} */ mode, /** @type {number} */ width) {
    for (let k = 0; k < this.rows; k++) {
      const row = mode === 'bottom' ? this.rows - 1 - k : k;
      const others = this.active.filter((a) => a.row === row);
      if (others.every((other) => (mode === 'scroll' ? this.scrollFits(other) : this.fixedFits(other, width)))) return row;
    }
    return -1;
  }

  /** @private Can a scrolling comment enter from the right edge beside `other` without ever touching it? */
  scrollFits(/** @type {Active} */ other) {
    // Every scrolling comment moves at one speed, so one whose tail has entered is never caught up.
    if (other.mode === 'scroll') return other.x + other.width + GAP <= this.width;
    const speed = this.speed();
    const reachesAt = (this.width - (this.width + other.width) / 2 - GAP) / speed;
    return reachesAt > FIXED_SECONDS - (this.clock - other.start);
  }

  /** @private Can a centred comment `width` wide stay its time beside `other`? */
  fixedFits(/** @type {Active} */ other, /** @type {number} */ width) {
    if (other.mode !== 'scroll') return false;
    const left = (this.width - width) / 2 - GAP;
    const right = (this.width + width) / 2 + GAP;
    return other.x + other.width < left || other.x - FIXED_SECONDS * other.speed > right;
  }

  /** @private Pixels per second of scrolling comments at the current width. */
  speed() {
    return Math.max(90, this.width / CROSS_SECONDS);
  }

  /** @private */
  show(/** @type {Barrage} */ item, /** @type {number} */ row, /** @type {number} */ width) {
    const el = document.createElement('div');
    el.className = `dm dm-${item.mode}${this.isOwn(item) ? ' dm-own' : ''}`;
    el.textContent = item.msg;
    el.style.color = item.color;
    el.style.top = `${row * this.rowHeight + 6}px`;
    el.dataset.id = String(item.id);
    el.dataset.time = String(item.time);
    el.dataset.shownAt = this.clock.toFixed(2);
    this.layer.append(el);
    const active = { item, el, mode: item.mode, row, start: this.clock, width, speed: this.speed(), x: this.width };
    this.active.push(active);
    this.position(active);
  }

  /** @private */
  move() {
    this.active = this.active.filter((active) => {
      const age = this.clock - active.start;
      const gone = active.mode === 'scroll' ? this.width - age * active.speed + active.width < 0 : age > FIXED_SECONDS;
      if (gone) {
        active.el.remove();
        return false;
      }
      this.position(active);
      return true;
    });
  }

  /** @private */
  position(/** @type {Active} */ active) {
    if (active.mode !== 'scroll') return;
    active.x = this.width - (this.clock - active.start) * active.speed;
    active.el.style.transform = `translate3d(${active.x.toFixed(1)}px, 0, 0)`;
  }
}
