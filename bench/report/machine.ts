import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Machine } from './types';

export function describeMachine(): Machine {
  let model = os.cpus()[0]?.model ?? 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) model = match[1].trim();
  } catch {
    // keep os.cpus()'s answer
  }
  let fdLimit = 'unknown';
  try {
    const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (match) fdLimit = `${match[1]} soft / ${match[2]} hard`;
  } catch {
    // not Linux
  }
  return {
    cpus: os.availableParallelism(),
    model,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    fdLimit,
  };
}
