import * as fs from 'node:fs';

/**
 * The CPU time of the thread that first asks (the main thread, where Lua runs), in milliseconds, from
 * Linux's scheduler statistics (/proc/thread-self/schedstat: nanoseconds on the CPU); NaN where there
 * are none. The file stays open: a read is one pread of a few microseconds. The kernel brings the
 * figure up to date at each scheduler tick, so it may lag the wall clock by a few milliseconds.
 */
export function threadCpuMs(): number {
  if (schedstat === undefined) schedstat = openSchedstat();
  if (schedstat === null) return NaN;
  try {
    const length = fs.readSync(schedstat, scratch, 0, scratch.length, 0);
    // The first field; parseInt stops at the space after it.
    return parseInt(scratch.toString('latin1', 0, length), 10) / 1e6;
  } catch {
    return NaN;
  }
}

let schedstat: number | null | undefined;
const scratch = Buffer.alloc(64);

function openSchedstat(): number | null {
  try {
    return fs.openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return null;
  }
}
