import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

/**
 * Every process the bench starts, so that an error, a signal or the run's deadline still ends them
 * all (by pid, never by name: other people's processes share this machine).
 */
const children = new Set<ChildProcess>();

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

export interface Started {
  child: ChildProcess;
  pid: number;
  /** stdout and stderr so far, for error messages when the process does not come up. */
  output(): string;
}

/**
 * Starts a process and resolves once a line of its output matches `ready`. Rejects if it exits first
 * or `timeoutMs` passes (and then kills it), with the output it printed, so a failing target says why.
 */
export function startProcess(command: string, args: string[], ready: RegExp, timeoutMs: number, options: SpawnOptions = {}): Promise<Started> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let text = '';
  const keep = (chunk: Buffer) => {
    // Keep the start of the output (where startup errors are) and stop growing after it.
    if (text.length < 64 * 1024) text += chunk.toString();
  };
  return new Promise<Started>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${command} ${args.join(' ')}: not ready after ${timeoutMs} ms\n${text}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      keep(chunk);
      if (ready.test(text)) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve({ child, pid: child.pid!, output: () => text });
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`${command} ${args.join(' ')}: exited (${signal ?? `code ${code}`}) before it was ready\n${text}`));
    };
    const fail = (error: Error) => {
      child.off('exit', onExit);
      void stopProcess(child);
      reject(error);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (error) => fail(error));
  });
}

/** Asks a process to stop (SIGTERM), kills it after `graceMs`, and resolves once it has exited. */
export function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Registers a child started elsewhere (the load workers) so that `killAll` ends it too. */
export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Last resort on errors, signals and the deadline: SIGKILL to every process this run started. */
export function killAll(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** User plus system CPU seconds a process has used so far (0 if it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/**
 * Waits until the processes use at most `maxShare` of a core over `windowMs`, or `timeoutMs` passed:
 * a phase measured right after closing thousands of connections would otherwise pay for their close.
 */
export async function quiet(pids: number[], { windowMs = 250, maxShare = 0.05, timeoutMs = 10_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let before = totalCpu(pids);
  while (Date.now() < deadline) {
    await sleep(windowMs);
    const now = totalCpu(pids);
    if (now - before <= (maxShare * windowMs) / 1000) return;
    before = now;
  }
}

/** Resident set size in bytes (0 if the process is gone). */
export function rssBytes(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function totalCpu(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

export function totalRss(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** CPU seconds the whole machine has been busy (all cores, from /proc/stat), to see others' load. */
export function machineBusySeconds(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'latin1').split('\n', 1)[0];
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    void idle;
    void iowait;
    return (user + nice + system + irq + softirq + (steal || 0)) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
