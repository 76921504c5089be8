import type { LogLevel } from './config/schema';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where log lines go: stdout, a rotating file, or a test's memory. */
export interface LogSink {
  write(line: string): unknown;
  /** Lines this sink dropped so far: a stdout nobody reads ({@link StreamSink}), a log file it cannot write. */
  readonly unreadLines?: number;
}

/**
 * The longest log line, in characters: a line built from what a client sent (the seed script logs a
 * whole channel name it refuses) is cut to this, and says so, rather than copied whole to every sink.
 */
export const MAX_LINE_LENGTH = 16384;

/** Bytes a {@link StreamSink} lets wait for a slow reader before it drops lines. */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;

/** The warn line a sink writes, once it can write again, about the `dropped` lines it could not. */
export function droppedLinesNote(message: string, dropped: number): string {
  return `${JSON.stringify({ time: new Date().toISOString(), level: 'warn', msg: message, dropped })}\n`;
}

/**
 * A stream (stdout) as a log sink that never holds more than `maxPending` bytes: a pipe nobody reads
 * would otherwise keep every line in memory. Lines past the bound are dropped and counted, and the
 * next line that fits is preceded by one that says how many were lost.
 */
export class StreamSink implements LogSink {
  private lost = 0;
  private unreported = 0;

  constructor(
    private readonly stream: NodeJS.WritableStream & { readonly writableLength: number },
    private readonly maxPending = MAX_PENDING_BYTES,
  ) {}

  get unreadLines(): number {
    return this.lost;
  }

  write(line: string): void {
    if (this.stream.writableLength + line.length > this.maxPending) {
      this.lost++;
      this.unreported++;
      return;
    }
    if (this.unreported > 0) {
      this.stream.write(droppedLinesNote('log lines dropped: the output was not read fast enough', this.unreported));
      this.unreported = 0;
    }
    this.stream.write(line);
  }
}

/**
 * A levelled logger writing one JSON object per line (`{"time","level","msg",...fields}`) to its sinks,
 * so that log shippers can parse every line. The level can change at run time (`logging.level` is hot).
 */
export class Logger {
  private threshold: number;
  private readonly sinks: LogSink[];

  constructor(
    level: LogLevel = 'info',
    sinks: LogSink | LogSink[] = process.stdout,
    private readonly fields: LogFields = {},
  ) {
    this.threshold = ORDER[level];
    this.sinks = Array.isArray(sinks) ? sinks : [sinks];
  }

  setLevel(level: LogLevel): void {
    this.threshold = ORDER[level];
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= this.threshold;
  }

  /** Lines the sinks dropped so far (a stdout nobody reads, a log file that cannot be written), per sink. */
  get dropped(): number {
    let total = 0;
    for (const sink of this.sinks) total += sink.unreadLines ?? 0;
    return total;
  }

  /** A logger that adds `fields` to every line and shares this one's sinks and level. */
  child(fields: LogFields): Logger {
    const child = new Logger('debug', this.sinks, { ...this.fields, ...fields });
    child.enabled = (level) => this.enabled(level);
    return child;
  }

  debug(message: string, fields?: LogFields): void {
    this.write('debug', message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.write('info', message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.write('warn', message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.write('error', message, fields);
  }

  write(level: LogLevel, message: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    const all = { ...this.fields, ...withoutUndefined(fields) };
    // A long message is cut before it is escaped: a client can make it megabytes long.
    let line = message.length > MAX_LINE_LENGTH ? '' : JSON.stringify({ time, level, msg: message, ...all });
    if (line === '' || line.length > MAX_LINE_LENGTH) line = shortened(time, level, message, all);
    for (const sink of this.sinks) sink.write(line + '\n');
  }
}

/**
 * A line within {@link MAX_LINE_LENGTH} that says it was cut (`"truncated": true`): long strings (the
 * message, string fields) keep their beginning, ending in `…`; if other fields still overflow, only
 * the message's beginning is kept.
 */
function shortened(time: string, level: LogLevel, message: string, fields: LogFields): string {
  const strings = 1 + Object.values(fields).filter((value) => typeof value === 'string').length;
  // JSON escapes can make a character up to 6 long: a share of a sixth always fits.
  const share = Math.floor(MAX_LINE_LENGTH / 6 / (strings + 1));
  const cut = (text: string): string => (text.length > share ? `${text.slice(0, share)}…` : text);
  const cutFields: LogFields = {};
  for (const [key, value] of Object.entries(fields)) cutFields[key] = typeof value === 'string' ? cut(value) : value;
  const line = JSON.stringify({ time, level, msg: cut(message), ...cutFields, truncated: true });
  if (line.length <= MAX_LINE_LENGTH) return line;
  return JSON.stringify({ time, level, msg: cut(message), truncated: true });
}

function withoutUndefined(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return fields;
  const kept: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key !== 'time' && key !== 'level' && key !== 'msg' && value !== undefined) kept[key] = value;
  }
  return kept;
}
