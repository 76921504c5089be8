/**
 * The benchmark suite: every target, the same workload, one invocation. See bench/RESULTS.md ("How to
 * run") for the options; results go to bench/results.json, bench/RESULTS.md and bench/p99-vs-rate.svg
 * (or the folder `--out` names).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FULL, QUICK, MAX_CONNECTIONS_PER_NODE, type BenchConfig } from './config';
import { Fleet, workersFor } from './load/fleet';
import { killAll, machineBusySeconds } from './lib/proc';
import { TARGETS } from './targets';
import type { RunningTarget, TargetSpec } from './targets/target';
import type { Context } from './scenarios/context';
import { idle } from './scenarios/idle';
import { hotVideo } from './scenarios/hot-video';
import { manyVideos } from './scenarios/many-videos';
import { subscribeStorm } from './scenarios/subscribe-storm';
import { publishApi } from './scenarios/publish-api';
import { chatRoom, CHAT_ENTRY } from './scenarios/chat-room';
import { probeMesh } from './scenarios/probe';
import { describeMachine } from './report/machine';
import { resultsMarkdown } from './report/markdown';
import { p99Chart, type Panel } from './report/svg';
import { profileFiles, summarizeProfile } from './report/profile';
import type { RunRecord } from './report/types';

const SCENARIOS = ['idle', 'hot-video', 'many-videos', 'subscribe-storm', 'publish-api', 'chat-room'] as const;
type Scenario = (typeof SCENARIOS)[number];

/** Where results live unless `--out` says otherwise: bench/ of the repository (this file runs from dist/bench). */
const ROOT = path.resolve(__dirname, '..', '..');
const BENCH_DIR = path.join(ROOT, 'bench');

interface Args {
  quick: boolean;
  /** Only rewrite RESULTS.md and the chart from results.json (after editing bench/notes.md). */
  reportOnly: boolean;
  targets: TargetSpec[];
  scenarios: Scenario[];
  name: string;
  profileRate: number | null;
  deadlineS: number;
  /** Seconds to wait at most for the machine to go quiet (under 1 CPU s used per 5 s) first. */
  waitQuietS: number;
  /** connmix-ts's write window in ms, when `--write-window` overrides the shipped yaml. */
  writeWindow?: number;
  /** The folder of results.json, RESULTS.md, the chart and the notes RESULTS.md copies. */
  out: string;
  config: BenchConfig;
}

function parseArgs(argv: string[]): Args {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const [key, inline] = arg.slice(2).split('=', 2);
    if (key === 'quick' || key === 'all-rates' || key === 'report-only') flags.set(key, 'true');
    else flags.set(key, inline ?? argv[++i] ?? '');
  }
  const known = ['report-only', 'quick', 'targets', 'scenarios', 'name', 'profile', 'deadline-s', 'viewers', 'rates', 'step-ms', 'wait-quiet', 'all-rates', 'write-window', 'out'];
  for (const key of flags.keys()) if (!known.includes(key)) throw new Error(`unknown option --${key} (known: ${known.map((k) => `--${k}`).join(' ')})`);
  const quick = flags.has('quick');
  const config: BenchConfig = structuredClone(quick ? QUICK : FULL);
  const list = (key: string) => flags.get(key)?.split(',').map((s) => s.trim()).filter(Boolean);
  const numbers = (key: string) => list(key)?.map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${key}: "${s}" is not a positive number`);
    return n;
  });
  const viewers = numbers('viewers');
  if (viewers) config.hotVideo.viewers = viewers;
  const rates = numbers('rates');
  if (rates) config.hotVideo.rates = rates;
  // Every rate asked for, even past the p99 limit or a loss (for records at fixed rates).
  if (flags.has('all-rates')) config.hotVideo.p99LimitMs = config.manyVideos.p99LimitMs = config.chatRoom.p99LimitMs = Infinity;
  const stepMs = numbers('step-ms');
  if (stepMs) config.hotVideo.stepMs = config.manyVideos.stepMs = config.chatRoom.stepMs = stepMs[0];
  const targetNames = list('targets');
  const targets = targetNames ? targetNames.map((name) => TARGETS.find((t) => t.name === name) ?? fail(`unknown target "${name}" (known: ${TARGETS.map((t) => t.name).join(', ')})`)) : TARGETS;
  const scenarioNames = list('scenarios');
  const scenarios = scenarioNames
    ? scenarioNames.map((name) => (SCENARIOS as readonly string[]).includes(name) ? (name as Scenario) : fail(`unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`))
    : [...SCENARIOS];
  const profile = flags.get('profile');
  return {
    quick,
    reportOnly: flags.has('report-only'),
    targets,
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    name: flags.get('name') || (quick ? 'quick' : 'full'),
    profileRate: profile ? Number(profile) : null,
    deadlineS: Number(flags.get('deadline-s') ?? (quick ? 300 : 4 * 3600)),
    waitQuietS: Number(flags.get('wait-quiet') ?? 0),
    writeWindow: flags.has('write-window') ? Number(flags.get('write-window')) : undefined,
    out: flags.has('out') ? path.resolve(flags.get('out') || fail('--out: a folder is needed')) : BENCH_DIR,
    config,
  };
}

function fail(message: string): never {
  throw new Error(message);
}

const startedAt = Date.now();
function log(line: string): void {
  process.stdout.write(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
}

/** The most connections any one phase opens, which sizes the load fleet. */
function peakConnections(args: Args): number {
  const c = args.config;
  const sizes = [c.storm.connections, c.publishApi.channels * c.publishApi.subscribersPerChannel];
  if (args.scenarios.includes('idle')) sizes.push(...c.idle.connections, ...(args.targets.some((t) => t.scalesOut) ? c.idle.scaleOut : []));
  if (args.scenarios.includes('hot-video')) sizes.push(...c.hotVideo.viewers);
  if (args.scenarios.includes('many-videos')) sizes.push(c.manyVideos.viewers);
  if (args.scenarios.includes('chat-room')) sizes.push(c.chatRoom.members);
  return Math.max(...sizes);
}

/** A profile window: a measured phase, summarised over the node processes it ran on. */
interface ProfileWindow {
  label: string;
  t0: number;
  t1: number;
  pids: number[];
}

type Attempt = (scenario: string, body: () => Promise<void>) => Promise<void>;

/**
 * Runs the chosen scenarios on one target kind: the seed's scenarios on one started target, then the
 * chat room on a target of its own (connmix-ts serves the chat example instead of the seed's entry),
 * started once the first has stopped so that neither shares the cores with the other.
 */
async function runTarget(spec: TargetSpec, args: Args, fleet: Fleet, record: RunRecord): Promise<void> {
  const profileDir = args.profileRate !== null && (spec.name.startsWith('connmix-ts') || spec.name === 'raw-ws') ? fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-prof-')) : undefined;
  log(`== ${spec.name}: ${spec.description}`);
  const windows: ProfileWindow[] = [];
  const attempt: Attempt = async (scenario, body) => {
    log(`-- ${spec.name} ${scenario}`);
    try {
      await body();
    } catch (error) {
      const message = `${spec.name} ${scenario}: ${(error as Error).message}`;
      log(`  FAILED ${message}`);
      record.failures.push(message);
    }
  };
  const allPids: number[] = [];
  if (args.scenarios.some((scenario) => scenario !== 'chat-room')) {
    allPids.push(...(await runSeedScenarios(spec, args, fleet, record, profileDir, windows, attempt)));
  }
  if (args.scenarios.includes('chat-room') && !spec.scalesOut) {
    await attempt(`chat-room ${args.config.chatRoom.members} members`, async () => {
      const own = await spec.start({ nodes: spec.nodes, profileDir, writeWindow: args.writeWindow, entry: CHAT_ENTRY });
      try {
        const rows = await chatRoom({ config: args.config, fleet, spec, target: own, log });
        record.chatRoom!.push(...rows);
        const step = rows.find((row) => row.rate === args.profileRate);
        const [t0, t1] = step ? [step.t0, step.t1] : [rows[0]?.t0 ?? 0, rows[rows.length - 1]?.t1 ?? 0];
        const pids = own.nodes.map((node) => node.pid);
        allPids.push(...pids);
        windows.push({ label: `chat-room, ${step ? `${step.rate} says/s step` : 'every step'}`, t0, t1, pids });
      } finally {
        await own.stop();
      }
    });
  }
  if (profileDir) {
    if (windows.length === 0) windows.push({ label: 'whole run', t0: -Infinity, t1: Infinity, pids: allPids });
    for (const file of profileFiles(profileDir)) {
      const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file)?.[1]);
      for (const window of windows.filter((w) => w.pids.includes(pid))) {
        record.profiles.push({
          target: `${spec.name}${window.pids.length > 1 ? ` node ${window.pids.indexOf(pid)}` : ''}`,
          scenario: window.label,
          ...summarizeProfile(file, window.t0, window.t1, ROOT),
        });
      }
    }
    if (process.env.BENCH_KEEP_PROFILES) console.log(`profiles kept in ${profileDir}`);
    else fs.rmSync(profileDir, { recursive: true, force: true });
  }
}

/**
 * The seed's scenarios (idle, hot-video, many-videos, subscribe-storm, publish-api) on one started
 * target; adds their profile windows (the hot-video step at the profile rate, the storm's message
 * phase, each publish API phase) and returns the target's node pids.
 */
async function runSeedScenarios(spec: TargetSpec, args: Args, fleet: Fleet, record: RunRecord, profileDir: string | undefined,
  windows: ProfileWindow[], attempt: Attempt): Promise<number[]> {
  let target: RunningTarget;
  try {
    target = await spec.start({ nodes: spec.nodes, profileDir, writeWindow: args.writeWindow });
    await probeMesh(target).catch(async (error) => {
      await target.stop();
      throw error;
    });
  } catch (error) {
    const message = `${spec.name}: could not start: ${(error as Error).message}`;
    log(message);
    record.failures.push(message);
    return [];
  }
  const ctx: Context = { config: args.config, fleet, spec, target, log };
  try {
    if (args.scenarios.includes('idle')) {
      // First, on the fresh target, so that no earlier scenario's heap is in the baseline.
      for (const connections of spec.scalesOut ? args.config.idle.scaleOut : args.config.idle.connections) {
        const nodes = Math.max(spec.nodes, Math.ceil(connections / MAX_CONNECTIONS_PER_NODE));
        await attempt(`idle ${connections}${nodes !== spec.nodes ? ` (${nodes} nodes)` : ''}`, async () => {
          if (nodes === target.nodes.length) {
            record.idle.push(await idle(ctx, connections));
            return;
          }
          const own = await spec.start({ nodes, writeWindow: args.writeWindow });
          try {
            record.idle.push(await idle({ ...ctx, target: own }, connections));
          } finally {
            await own.stop();
          }
        });
      }
    }
    if (spec.scalesOut) return target.nodes.map((node) => node.pid);
    if (args.scenarios.includes('hot-video')) {
      for (const viewers of args.config.hotVideo.viewers) {
        await attempt(`hot-video ${viewers} viewers`, async () => {
          record.hotVideo.push(...(await hotVideo(ctx, viewers)));
        });
      }
    }
    if (args.scenarios.includes('many-videos')) {
      await attempt(`many-videos ${args.config.manyVideos.viewers} viewers`, async () => {
        record.manyVideos.push(...(await manyVideos(ctx)));
      });
    }
    if (args.scenarios.includes('subscribe-storm')) {
      await attempt('subscribe-storm', async () => {
        record.storm.push(await subscribeStorm(ctx));
      });
    }
    if (args.scenarios.includes('publish-api')) {
      await attempt('publish-api', async () => {
        record.publishApi.push(...(await publishApi(ctx)));
      });
    }
  } finally {
    await target.stop();
  }
  const pids = target.nodes.map((node) => node.pid);
  const step = record.hotVideo.find((row) => row.target === spec.name && row.rate === args.profileRate);
  if (step) windows.push({ label: `hot-video, ${step.viewers} viewers, ${step.rate} msg/s step`, t0: step.t0, t1: step.t1, pids });
  const storm = record.storm.find((row) => row.target === spec.name);
  if (storm?.connectT0 !== undefined && storm.connectT1 !== undefined) {
    windows.push({ label: `subscribe-storm, connect+subscribe (${storm.connectPerSec}/s)`, t0: storm.connectT0, t1: storm.connectT1, pids });
  }
  if (storm) windows.push({ label: `subscribe-storm, subscribe/unsubscribe messages (${storm.messagesPerSec}/s)`, t0: storm.t0, t1: storm.t1, pids });
  for (const api of record.publishApi.filter((row) => row.target === spec.name)) {
    windows.push({ label: `publish-api, ${api.api} (${api.perSec} publishes/s)`, t0: api.t0, t1: api.t1, pids });
  }
  return pids;
}

function readRuns(out: string): RunRecord[] {
  try {
    return (JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { runs: RunRecord[] }).runs ?? [];
  } catch {
    return []; // first run, or an unreadable file: start again
  }
}

/** Stores the run in results.json (replacing the run of the same name), then rewrites the reports. */
function writeResults(out: string, record: RunRecord): void {
  const runs = readRuns(out);
  const at = runs.findIndex((run) => run.name === record.name);
  if (at >= 0) runs[at] = record;
  else runs.push(record);
  // A fresh --out folder is made here, at the end, rather than losing the run it was given for.
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results.json'), `${JSON.stringify({ runs }, null, 1)}\n`);
  writeReports(out, runs);
}

function writeReports(out: string, runs: RunRecord[]): void {
  const notesFile = path.join(out, 'notes.md');
  const notes = fs.existsSync(notesFile) ? fs.readFileSync(notesFile, 'utf8') : null;
  fs.writeFileSync(path.join(out, 'RESULTS.md'), resultsMarkdown(runs, notes));
  const panels: Panel[] = [];
  // The reference runs only: experiments with other names (and profiled runs, which pay the
  // profiler's overhead) would crowd the chart.
  for (const run of runs.filter((r) => (r.name === 'full' || r.name === 'quick') && r.profiles.length === 0)) {
    for (const viewers of [...new Set(run.hotVideo.map((row) => row.viewers))]) {
      panels.push({ title: `run "${run.name}": hot-video, ${viewers} viewers of one video`, rows: run.hotVideo.filter((row) => row.viewers === viewers) });
    }
  }
  fs.writeFileSync(path.join(out, 'p99-vs-rate.svg'), p99Chart(panels, FULL.hotVideo.p99LimitMs));
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
  if (args.reportOnly) {
    writeReports(args.out, readRuns(args.out));
    log(`rewrote RESULTS.md and p99-vs-rate.svg from results.json in ${args.out}`);
    return;
  }
  if (args.waitQuietS > 0) {
    // Others run test suites on this machine; a measurement next to them measures them too.
    // Quiet: under 1 CPU second used over the last 5 s, both cores together (load averages lag minutes).
    const until = Date.now() + args.waitQuietS * 1000;
    let busy = Infinity;
    while (busy > 1 && Date.now() < until) {
      const before = machineBusySeconds();
      await new Promise((r) => setTimeout(r, 5000));
      busy = machineBusySeconds() - before;
    }
    log(`${busy <= 1 ? 'quiet' : 'still busy'}: the machine used ${busy.toFixed(1)} CPU s in the last 5 s`);
  }
  const runStartedAt = Date.now();
  // Every run is bounded: past the deadline, everything this run started is killed.
  setTimeout(() => {
    log(`deadline of ${args.deadlineS} s passed: killing every process of this run`);
    killAll();
    process.exit(3);
  }, args.deadlineS * 1000).unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  const argv = process.argv.slice(2).join(' ');
  const record: RunRecord = {
    name: args.name,
    date: new Date().toISOString(),
    command: process.env.npm_lifecycle_event === 'bench' ? `npm run bench${argv ? ` -- ${argv}` : ''}` : `node dist/bench/run.js ${argv}`.trim(),
    quick: args.quick,
    durationS: 0,
    machine: describeMachine(),
    loadAverage: [Math.round(os.loadavg()[0] * 100) / 100, 0],
    targets: args.targets.map((t) => ({ name: t.name, description: t.description })),
    hotVideo: [],
    manyVideos: [],
    idle: [],
    storm: [],
    publishApi: [],
    chatRoom: [],
    profiles: [],
    failures: [],
  };
  const loadProcesses = workersFor(peakConnections(args), os.availableParallelism());
  log(`bench "${args.name}": ${args.targets.map((t) => t.name).join(', ')} × ${args.scenarios.join(', ')}; ${loadProcesses} load processes`);
  for (const spec of args.targets) {
    // Load processes of its own for each target: one that ran before would leave them compiled and
    // their heaps grown, which made the first target of a run pay for both.
    const fleet = await Fleet.start(loadProcesses);
    try {
      await runTarget(spec, args, fleet, record);
    } finally {
      await fleet.stop();
    }
  }
  record.durationS = Math.round((Date.now() - runStartedAt) / 1000);
  record.loadAverage[1] = Math.round(os.loadavg()[0] * 100) / 100;
  writeResults(args.out, record);
  log(`done in ${record.durationS} s: RESULTS.md, results.json, p99-vs-rate.svg in ${args.out}${record.failures.length ? `; ${record.failures.length} failures` : ''}`);
  for (const failure of record.failures) log(`  failure: ${failure.split('\n')[0]}`);
}

main().catch((error) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`);
  killAll();
  process.exit(1);
});
