import * as fs from 'node:fs';
import * as path from 'node:path';
import { droppedLinesNote, type LogSink } from './log';

/** How long a log file that could not be written (a full disk) is left alone before it is tried again. */
export const LOG_FILE_RETRY_MS = 2000;

/**
 * `logging.filename` with daily rotation: lines go to the file; the first line of a new day renames
 * it to `<name>-YYYY-MM-DD<ext>` (the day it covered) and starts a fresh one, keeping the newest
 * `maxFiles` rotated files. Writes are appended synchronously in order; a file that cannot be written
 * (a full disk) is reported once on stderr, skipped, never crashing the node, and tried again every
 * `retryMs` until it can be written. Running out of descriptors (EMFILE) only pauses the file: it is
 * tried again every second, and notes how many lines it missed.
 */
export class RotatingLogFile implements LogSink {
  private day: string;
  private fd: number | null = null;
  private failed = false;
  /** Lines not written while the process was out of descriptors, and when to try the file again. */
  private dropped = 0;
  private retryAt = 0;
  /** Every line this file did not get, for the engine's metric. */
  private lost = 0;

  constructor(
    private readonly file: string,
    private readonly maxFiles: number,
    private readonly today: () => string = () => new Date().toISOString().slice(0, 10),
    private readonly retryMs = LOG_FILE_RETRY_MS,
  ) {
    this.day = this.today();
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const existing = fs.statSync(file, { throwIfNoEntry: false });
      // A file left by a run on an earlier day belongs to that day.
      if (existing && existing.mtime.toISOString().slice(0, 10) !== this.day) this.rotate(existing.mtime.toISOString().slice(0, 10));
    } catch (error) {
      this.fail(error as Error);
    }
  }

  get unreadLines(): number {
    return this.lost;
  }

  write(line: string): void {
    if (this.failed && Date.now() < this.retryAt) {
      this.lost++;
      return;
    }
    if (this.dropped > 0 && Date.now() < this.retryAt) {
      this.dropped++;
      this.lost++;
      return;
    }
    try {
      const day = this.today();
      if (day !== this.day) {
        this.rotate(this.day);
        this.day = day;
      }
      this.fd ??= fs.openSync(this.file, 'a');
      if (this.dropped > 0) {
        fs.writeSync(this.fd, droppedLinesNote('log lines were dropped while no file descriptor was free', this.dropped));
        this.dropped = 0;
      }
      fs.writeSync(this.fd, line);
      if (this.failed) {
        this.failed = false;
        process.stderr.write(`connmix: writing the log file ${this.file} again\n`);
      }
    } catch (error) {
      this.lost++;
      const code = (error as NodeJS.ErrnoException).code;
      // Out of descriptors is a spell, not a broken file: stdout keeps the lines, the file is tried again.
      if (code === 'EMFILE' || code === 'ENFILE') this.outOfDescriptors(error as Error);
      else this.fail(error as Error);
    }
  }

  private outOfDescriptors(error: Error): void {
    if (this.dropped === 0) {
      process.stderr.write(`connmix: cannot open the log file ${this.file} for now: ${error.message}; retrying every second\n`);
    }
    this.dropped++;
    this.retryAt = Date.now() + 1000;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** The rotated files of this log, newest first. */
  rotatedFiles(): string[] {
    const { dir, name, ext } = path.parse(this.file);
    const pattern = new RegExp(`^${escape(name)}-\\d{4}-\\d{2}-\\d{2}(?:\\.\\d+)?${escape(ext)}$`);
    return fs.readdirSync(dir).filter((entry) => pattern.test(entry)).sort().reverse().map((entry) => path.join(dir, entry));
  }

  private rotate(day: string): void {
    this.close();
    if (!fs.existsSync(this.file)) return;
    const { dir, name, ext } = path.parse(this.file);
    let target = path.join(dir, `${name}-${day}${ext}`);
    for (let n = 1; fs.existsSync(target); n++) target = path.join(dir, `${name}-${day}.${n}${ext}`);
    fs.renameSync(this.file, target);
    for (const old of this.rotatedFiles().slice(this.maxFiles)) fs.rmSync(old, { force: true });
  }

  private fail(error: Error): void {
    // A descriptor that hit ENOSPC may hold a partial line: the retry starts on a fresh one.
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) fs.close(fd, () => undefined);
    this.retryAt = Date.now() + this.retryMs;
    if (this.failed) return;
    this.failed = true;
    process.stderr.write(`connmix: cannot write the log file ${this.file}: ${error.message}; logging to stdout only, retrying every ${this.retryMs} ms\n`);
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
