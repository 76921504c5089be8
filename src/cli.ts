import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from './config';
import { WorkerSupervisor, READY_MESSAGE } from './workers';
import { Engine, EngineConfigError } from './engine';
import { Center } from './center';
import { LuaLoadError } from './lua/vm';
import { Logger, StreamSink, type LogSink } from './log';
import { RotatingLogFile } from './log-file';

const USAGE = `usage: connmix <dev|single|engine|center> -f <connmix.yaml> [-p <workers>]

  dev      one process, embedded broker unless the yaml says redis, Lua hot reload on;
           also serves the center API (center.apiServer: /version, /v1/nodes)
  single   one process for small production deployments (same as dev)
  engine   a production node; -p N runs N worker processes with engine.mesh.broker: redis
           (one process, with a warning, on the memory broker)
  center   the center API alone (/version, /v1/nodes of the Redis mesh); -p is accepted, one process serves
`;

const COMMANDS = ['dev', 'single', 'engine', 'center'] as const;
type Command = (typeof COMMANDS)[number];

/** Exit codes: 2 for a bad command line, config or Lua entry; 1 for any other startup failure. */
const EXIT_USAGE = 2;

interface Args {
  command: Command;
  file: string;
  workers: number;
}

function parseCommandLine(argv: string[]): Args {
  const [command, ...rest] = argv;
  if (!COMMANDS.includes(command as Command)) throw new UsageError(`unknown command "${command ?? ''}"`);
  // Not strict: each token is checked below, so every refusal names the argument as typed.
  const { tokens } = parseArgs({
    args: rest,
    options: { file: { type: 'string', short: 'f' }, procs: { type: 'string', short: 'p' } },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  let file = '';
  let workers = 1;
  for (const token of tokens) {
    if (token.kind === 'positional') throw new UsageError(`unexpected argument "${token.value}"`);
    if (token.kind !== 'option' || token.value === undefined) throw new UsageError(`unexpected argument "${token.kind === 'option' ? token.rawName : '--'}"`);
    if (token.name === 'file') {
      file = token.value;
    } else if (token.name === 'procs') {
      workers = Number(token.value);
      if (!Number.isInteger(workers) || workers < 1) throw new UsageError(`-p takes a whole number of at least 1, got "${token.value}"`);
    } else {
      throw new UsageError(`unexpected argument "${token.rawName}"`);
    }
  }
  if (!file) throw new UsageError('missing -f <connmix.yaml>');
  return { command: command as Command, file, workers };
}

class UsageError extends Error {}

/** Runs the CLI; resolves once the engine (or center) is serving. Exits the process on startup failure. */
export async function main(argv: string[]): Promise<void> {
  let args: Args;
  try {
    args = parseCommandLine(argv);
  } catch (error) {
    process.stderr.write(`connmix: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(EXIT_USAGE);
  }
  let running: Engine | Center;
  try {
    const warn = (message: string) => process.stderr.write(`connmix: warning: ${message}\n`);
    const config = loadConfig(args.file, { warn });
    let workers = args.workers;
    if (workers > 1 && args.command === 'center') {
      warn(`-p ${workers} runs one process: the center API only lists nodes, one process serves it`);
      workers = 1;
    } else if (workers > 1 && config.engine.mesh.broker === 'memory') {
      // In CONNMIX -p is a CPU count; here it is worker processes, which share nothing without Redis.
      warn(`-p ${workers} runs one process: with engine.mesh.broker: memory, workers would not share channels or clients; set engine.mesh.broker: redis to run ${workers} workers`);
      workers = 1;
    }
    if (args.command === 'center' && config.engine.mesh.broker === 'memory') {
      warn('the center lists no nodes: with engine.mesh.broker: memory no engine registers where it can read; set engine.mesh.broker: redis, or use dev/single (they serve the center API themselves)');
    }
    if (workers > 1 && cluster.isPrimary) {
      new WorkerSupervisor(workers, (line) => process.stdout.write(`connmix: ${line}\n`)).start();
      return;
    }
    const sinks: LogSink[] = [new StreamSink(process.stdout)];
    if (config.logging.filename) sinks.push(new RotatingLogFile(config.logging.filename, config.logging.maxFiles));
    const log = new Logger(config.logging.level, sinks);
    running = args.command === 'center'
      ? new Center(config, { log })
      : new Engine(config, { log, workers, centerApi: args.command !== 'engine' });
    const listeners = await running.start();
    const worker = cluster.isWorker ? `worker ${process.env.CONNMIX_WORKER_SLOT} (pid ${process.pid}): ` : '';
    for (const listener of listeners) process.stdout.write(`connmix: ${worker}${listener.name} listening on ${listener.address}\n`);
    process.send?.(READY_MESSAGE);
  } catch (error) {
    const known = error instanceof ConfigError || error instanceof EngineConfigError || error instanceof LuaLoadError;
    process.stderr.write(`connmix: ${known ? '' : 'cannot start: '}${(error as Error).message}\n`);
    process.exit(known ? EXIT_USAGE : 1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`connmix: ${signal}, shutting down\n`);
    running.stop().then(() => process.exit(0), () => process.exit(1));
    setTimeout(() => process.exit(1), 10_000).unref();
  };
  if (cluster.isWorker) {
    // A worker is restarted by its primary, never by a terminal hangup, and never outlives it.
    process.on('SIGHUP', () => undefined);
    process.once('disconnect', () => shutdown('primary gone'));
  }
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}
