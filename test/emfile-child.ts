import * as fs from 'node:fs';
import * as path from 'node:path';
import { LuaVM } from '../src/lua/vm';
import { RotatingLogFile } from '../src/log-file';
import { watchConfig } from '../src/config/watch';
import { memoryLogger } from './lua/harness';

// Run by emfile.test.ts in a process of its own: fills this process's descriptor table to EMFILE, then
// uses the Lua reload check, the log file and the config watcher, frees the table and uses them again.
// Prints one JSON line of what it saw. Does nothing when run without its folder (as a plain test file).

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(dir: string): Promise<void> {
  const { log, lines } = memoryLogger();
  const vm = new LuaVM({ entry: path.join(dir, 'lua/entry.lua'), hooks: ['on_message'], callBudget: 100, log });
  vm.load();
  const logFile = new RotatingLogFile(path.join(dir, 'logs/connmix.log'), 7);
  const levels: string[] = [];
  const yaml = path.join(dir, 'connmix.yaml');
  const unwatch = watchConfig(yaml, 100, (next) => levels.push(next.logging.level), (error) => levels.push(`error: ${error.message}`));
  const held: number[] = [];
  const seen: Record<string, unknown> = {};
  // Edits, then the table filled in the same turn: neither check has seen them yet.
  fs.appendFileSync(path.join(dir, 'lua/entry.lua'), '-- edited\n');
  fs.writeFileSync(yaml, 'logging:\n  level: warn\n');
  try {
    for (;;) held.push(fs.openSync('/dev/null', 'r'));
  } catch (error) {
    seen.filled = (error as NodeJS.ErrnoException).code;
  }
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

const dir = process.env.CONNMIX_EMFILE_DIR;
if (dir) void main(dir);
