import type { LogLevel } from './config/schema';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where log lines go: stdout, a rotating file, or a test's memory. */
export interface LogSink {
  write(line: string): unknown;
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
    const line = JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...this.fields, ...withoutUndefined(fields) }) + '\n';
    for (const sink of this.sinks) sink.write(line);
  }
}

function withoutUndefined(fields: LogFields | undefined): LogFields | undefined {
  if (!fields) return fields;
  const kept: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key !== 'time' && key !== 'level' && key !== 'msg' && value !== undefined) kept[key] = value;
  }
  return kept;
}
