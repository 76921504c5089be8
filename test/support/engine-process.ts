import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, freePort, get, sleep, waitFor } from './helpers';

/** An engine started as `bin/connmix.js engine` in a process of its own. */
export interface EngineProcess {
  child: ChildProcess;
  output: () => string;
  /** What it wrote to stderr alone. */
  errors: () => string;
  exited: Promise<number | null>;
}

/** Starts `connmix engine -f <yamlFile> [-p workers]`; the process never outlives this test process. */
export function startEngine(yamlFile: string, workers = 1): EngineProcess {
  return startConnmix('engine', yamlFile, workers);
}

/** Starts `connmix <command> -f <yamlFile> [-p workers]`; the process never outlives this test process. */
export function startConnmix(command: 'dev' | 'single' | 'engine' | 'center', yamlFile: string, workers = 1): EngineProcess {
  const args = [path.join(ROOT, 'bin/connmix.js'), command, '-f', yamlFile, ...(workers > 1 ? ['-p', String(workers)] : [])];
  return watchProcess(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Collects a spawned connmix's output; the process never outlives this test process. */
export function watchProcess(child: ChildProcess): EngineProcess {
  let output = '';
  let errors = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => {
    output += chunk;
    errors += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // If this test process ends first (a timeout, a crash), the engine must not outlive it.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  void exited.then(() => process.off('exit', kill));
  return { child, output: () => output, errors: () => errors, exited };
}

/** Starts `connmix engine -f <yamlFile>` and waits until its API listens (see untilListening). */
export async function startListening(yamlFile: string, workers = 1): Promise<EngineProcess> {
  return untilListening(startEngine(yamlFile, workers));
}

/**
 * Waits until a started `engine` says its API listens. An engine that exits first, or does not listen in
 * time, is killed and the error carries its output.
 */
export async function untilListening(engine: EngineProcess): Promise<EngineProcess> {
  const listening = () => /api server listening/.test(engine.output());
  try {
    await waitFor('engine listening', () => listening() || engine.child.exitCode !== null, 20_000);
    if (!listening()) throw new Error('the engine exited before listening');
  } catch (error) {
    engine.child.kill('SIGKILL');
    await engine.exited;
    throw new Error(`${(error as Error).message}: ${engine.output().slice(-2000)}${engine.errors().slice(-2000)}`, { cause: error });
  }
  return engine;
}

/** Stops `engine` with SIGTERM and waits until it has exited. */
export async function stopEngine(engine: EngineProcess): Promise<void> {
  engine.child.kill('SIGTERM');
  await engine.exited;
}

/** `engine` is alive and its API at `apiUrl` answers /healthz. */
export async function assertHealthy(engine: EngineProcess, apiUrl: string): Promise<void> {
  assert.equal(engine.child.exitCode, null, `the node died: ${engine.output().slice(-2000)}`);
  assert.equal((await get(`${apiUrl}/healthz`)).status, 200);
}

/** Resident memory of a process in bytes, from /proc. */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Samples the resident memory of `pid` until `done()` or `ms` passed; returns the most it saw. */
export async function peakWhile(pid: number, done: () => boolean, ms: number): Promise<number> {
  let most = residentBytes(pid);
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) {
    most = Math.max(most, residentBytes(pid));
    await sleep(50);
  }
  return Math.max(most, residentBytes(pid));
}

/** `bytes` in MiB, for messages. */
export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** A folder for an engine process, its yaml and the free ports it names. */
export interface EngineFolder {
  file: string;
  wsPort: number;
  apiPort: number;
  /** Where viewers connect: `ws://127.0.0.1:<wsPort>/barrage-videos`. */
  wsUrl: string;
  apiUrl: string;
}

/** What a seeded engine folder runs: by default the shipped barrage entry, logging at info to stdout only. */
export interface SeedOptions {
  /** Keys added under `engine:`. */
  engineYaml?: string;
  /** The websocket entry to copy, a path in the repository. */
  entry?: string;
  level?: string;
  logFile?: string;
  /** The server's byteCodeExpires (seconds between hot-reload checks); left at the default unless given. */
  byteCodeExpires?: number;
}

/**
 * A fresh folder with an entry (the shipped barrage one unless told) and a yaml serving it on free
 * loopback ports (viewers at `ws://127.0.0.1:<wsPort>/barrage-videos`).
 */
export async function seedEngineFolder(options: SeedOptions = {}): Promise<EngineFolder> {
  const { engineYaml = '', entry = 'lua/entry.websocket.lua', level = 'info', logFile = '', byteCodeExpires } = options;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-engine-'));
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  fs.mkdirSync(path.join(dir, 'lua'));
  fs.copyFileSync(path.join(ROOT, entry), path.join(dir, 'lua/entry.websocket.lua'));
  const file = path.join(dir, 'connmix.yaml');
  fs.writeFileSync(file, `
logging:
  level: ${level}
  filename: "${logFile}"
engine:
  apiServer: { port: ${apiPort}, bind: 127.0.0.1 }
${engineYaml}
  servers:
    - port: ${wsPort}
      bind: 127.0.0.1
      options: [{ name: path, value: /barrage-videos }]
      entry: lua/entry.websocket.lua
${byteCodeExpires === undefined ? '' : `      byteCodeExpires: ${byteCodeExpires}\n`}`);
  return { file, wsPort, apiPort, wsUrl: `ws://127.0.0.1:${wsPort}/barrage-videos`, apiUrl: `http://127.0.0.1:${apiPort}` };
}
