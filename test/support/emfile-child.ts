import * as fs from 'node:fs';
import * as path from 'node:path';
import { LuaVM } from '../../src/lua/vm';
import { RotatingLogFile } from '../../src/log-file';
import { watchConfig } from '../../src/config/watch';
import { connectMeshRedis } from '../../src/mesh/redis-connections';
import { memoryLogger } from './lua-harness';

// Run by emfile.test.ts in a process of its own: fills this process's descriptor table to EMFILE, then
// uses the Lua reload check, the log file and the config watcher (or, given a Redis port, makes the
// node's Redis connections reconnect), frees the table and uses them again.
// Prints one JSON line of what it saw. Does nothing without its environment variables.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(dir: string): Promise<void> {
  const { log, lines } = memoryLogger();
  const vm = new LuaVM({ entry: path.join(dir, 'lua/entry.lua'), hooks: ['on_message'], callBudget: 100, log });
  vm.load();
  const logFile = new RotatingLogFile(path.join(dir, 'logs/connmix.log'), 7);
  const levels: string[] = [];
  const yaml = path.join(dir, 'connmix.yaml');
  const unwatch = watchConfig(yaml, 100, (next) => levels.push(next.logging.level), (error) => levels.push(`error: ${error.message}`));
  const seen: Record<string, unknown> = {};
  // Edits, then the table filled in the same turn: neither check has seen them yet.
  fs.appendFileSync(path.join(dir, 'lua/entry.lua'), '-- edited\n');
  fs.writeFileSync(yaml, 'logging:\n  level: warn\n');
  const held = fillTable(seen);
  try {
    seen.reloadWhileFull = vm.reloadIfChanged();
    logFile.write('{"msg":"while full"}\n');
    await sleep(500);
    seen.levelsWhileFull = [...levels];
  } catch (error) {
    seen.threw = (error as Error).message;
  }
  for (const fd of held) fs.closeSync(fd);
  await sleep(1100);
  seen.reloadAfter = vm.reloadIfChanged();
  logFile.write('{"msg":"after"}\n');
  await sleep(500);
  unwatch();
  logFile.close();
  seen.levelsAfter = levels;
  seen.logs = lines.filter((line) => /reload/i.test(line));
  seen.file = fs.readFileSync(path.join(dir, 'logs/connmix.log'), 'utf8');
  process.stdout.write(`${JSON.stringify(seen)}\n`);
}

/** Fills the descriptor table; returns what was opened, to be closed again. */
function fillTable(seen: Record<string, unknown>): number[] {
  const held: number[] = [];
  try {
    for (;;) held.push(fs.openSync('/dev/null', 'r'));
  } catch (error) {
    seen.filled = (error as NodeJS.ErrnoException).code;
  }
  return held;
}

/** The node's Redis link loses both connections while the table is full, then gets them back. */
async function redisReconnects(port: number): Promise<void> {
  const { log, lines } = memoryLogger();
  const received: string[] = [];
  const seen: Record<string, unknown> = {};
  // While `held` is set, a connection that goes down gives its descriptor back to the table at once,
  // before its reconnect (which then meets EMFILE).
  let held: number[] | null = null;
  const redis = connectMeshRedis(
    { addrs: [`127.0.0.1:${port}`], cluster: false, password: '', db: 0, prefix: 'emfile:', auditInterval: 30 },
    {
      message: (_channel, message) => received.push(message.toString()),
      up: () => undefined,
      down: () => held?.push(...fillTable(seen)),
    },
    log,
    1000,
  );
  const until = async (check: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !check() && Date.now() < end; ) await sleep(50);
    return check();
  };
  await until(() => redis.ready(), 20_000);
  await redis.subscribe('emfile');
  await redis.commands.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await redis.commands.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'no');
  held = fillTable(seen);
  try {
    await sleep(2000);
    seen.readyWhileFull = redis.ready();
    seen.failedWhileFull = lines.filter((line) => /EMFILE/.test(line)).length;
  } catch (error) {
    seen.threw = (error as Error).message;
  }
  for (const fd of held) fs.closeSync(fd);
  held = null;
  seen.readyAfter = await until(() => redis.ready(), 30_000);
  // The subscriber resubscribes by itself once reconnected; publish until it hears.
  seen.delivered = await until(() => {
    void redis.publish('emfile', Buffer.from('after')).catch(() => undefined);
    return received.includes('after');
  }, 20_000);
  seen.logs = lines.filter((line) => /EMFILE|redis/i.test(line)).slice(0, 5);
  redis.close();
  process.stdout.write(`${JSON.stringify(seen)}\n`);
}

const dir = process.env.CONNMIX_EMFILE_DIR;
if (dir) void main(dir);
const redisPort = process.env.CONNMIX_EMFILE_REDIS_PORT;
if (redisPort) void redisReconnects(Number(redisPort));
