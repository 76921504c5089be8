import type { LogLevel } from './config/schema';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Fields attached to a log line, printed as `key=value` after the message. */
export type LogFields = Record<string, unknown>;

/**
 * A small levelled logger writing `time LEVEL message key=value ...` lines to a stream
 * (stdout by default). The level can change at run time, so `logging.level` is hot.
 */
export class Logger {
  private threshold: number;

  constructor(
    level: LogLevel = 'info',
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly fields: LogFields = {},
  ) {
    this.threshold = ORDER[level];
  }

  setLevel(level: LogLevel): void {
    this.threshold = ORDER[level];
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= this.threshold;
  }

  /** A logger that adds `fields` to every line and shares this one's level. */
  child(fields: LogFields): Logger {
    const child = new Logger('debug', this.out, { ...this.fields, ...fields });
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
    let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`;
    for (const [key, value] of Object.entries({ ...this.fields, ...fields })) {
      if (value === undefined) continue;
      line += ` ${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`;
    }
    this.out.write(line + '\n');
  }
}
