/**
 * The cost of one Lua `on_message` call, without sockets or a load generator in the way: an engine in
 * this process with the shipped yaml (as the bench's connmix-ts target runs it), viewers connected to it,
 * and their messages handed over in batches timed on their own. Three rows:
 *
 * - `seed, via the server`: the seed's subscribe/unsubscribe messages handed to the server as ws hands
 *   them over (its 'message' listener): hook queue, Lua call, the answer queued. What the subscribe storm
 *   measures end to end, minus the network and the noise of sharing two cores with load processes.
 * - `seed, hook call`: the same messages straight to the hook call (argument table, coroutine, script).
 * - `empty on_message, hook call`: the hook call around `function on_message(msg) end`, which the
 *   server itself would skip: what a hook call costs before the script does anything.
 * - `seed answer, round trip`: one viewer sends the seed's subscribe/unsubscribe over its socket and
 *   waits for `{"result":true}` before the next: the latency of an answer, write window included.
 *
 * Each row gives the mean over the batches and the median (p50) of single calls, each timed on its own,
 * and the bytes the process allocates per call, garbage included (V8's sampling heap profiler over two
 * more seconds; the viewers reading the answers are in this process and count too).
 *
 *   node dist/bench/lua-calls.js [--seconds 10] [--viewers 200] [--warm-up 3] [--against-interpreter]
 *
 * `--against-interpreter` adds a line comparing the seed's hook call compiled (src/lua/fengari/compile.ts)
 * and interpreted in this one process: half-second windows of each, alternated `--seconds` times, the
 * median process CPU per call of each (the machine's drift hits both alike).
 *
 * `--warm-up` is the seconds each row runs before it is timed; the allocation sample runs 2 s, or
 * `--seconds` when shorter (test/bench.test.ts runs every row briefly).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Session } from 'node:inspector';
import { WebSocket } from 'ws';
import { Engine } from '../src/engine';
import { loadConfig } from '../src/config';
import { Logger } from '../src/log';
import type { Connection } from '../src/server/connection';
import type { WebSocketHooks } from '../src/lua/hooks';
import { installFrameCompiler, uninstallFrameCompiler } from '../src/lua/fengari/compile';
import { benchYaml, viewerPath } from './targets/connmix';
import { freePort } from './lib/proc';
import { dialect } from './load/dialects';

const BATCH = 1000;
const ALLOC_SAMPLE_MS = 2000;
const EMPTY_ENTRY = 'function on_handshake(client_id, headers, server) end\nfunction on_message(msg) end\nfunction on_close(client_id, err) end\n';

/** How long each row runs: warming up, then timed, then sampled for allocations. */
interface Timing {
  warmUpMs: number;
  timedMs: number;
  allocSampleMs: number;
}

/** Hands one message to a connection's hook; the answer (if any) is queued for the socket. */
type Deliver = (connection: Connection, message: Buffer) => void;

interface Row {
  row: string;
  calls: number;
  usPerCall: number;
  p50Us: number;
  callsPerSecond: number;
  processCpuUsPerCall: number;
  /** Not measured for round trips. */
  allocatedBytesPerCall: number | null;
}

async function main(): Promise<void> {
  const option = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || fallback;
  const seconds = option('seconds', 10);
  const viewers = option('viewers', 200);
  const timing: Timing = { warmUpMs: option('warm-up', 3) * 1000, timedMs: seconds * 1000, allocSampleMs: Math.min(ALLOC_SAMPLE_MS, seconds * 1000) };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-lua-calls-'));
  const emptyEntry = path.join(dir, 'empty.lua');
  fs.writeFileSync(emptyEntry, EMPTY_ENTRY);
  const rows: Row[] = [];
  let comparison: Comparison | null = null;
  const viaServer: Deliver = (connection, message) => connection.ws.emit('message', message, false);
  const hookCall = (hooks: WebSocketHooks): Deliver => (connection, message) => hooks.onMessage(connection, message, false, failOnError);
  await withEngine(dir, viewers, undefined, async (connections, hooks, clients) => {
    rows.push(await measure('seed, via the server', timing, connections, viaServer));
    rows.push(await measure('seed, hook call', timing, connections, hookCall(hooks)));
    rows.push(await roundTrips('seed answer, round trip', timing, clients[0]));
    if (process.argv.includes('--against-interpreter')) comparison = await againstInterpreter(seconds, connections, hookCall(hooks));
  });
  await withEngine(dir, viewers, emptyEntry, async (connections, hooks) => {
    rows.push(await measure('empty on_message, hook call', timing, connections, hookCall(hooks)));
  });
  for (const row of rows) console.log(JSON.stringify(row));
  if (comparison) console.log(JSON.stringify(comparison));
  fs.rmSync(dir, { recursive: true, force: true });
}

function failOnError(error: Error | null): void {
  if (error) throw error;
}

/** Starts an engine with the shipped yaml (its entry replaced by `entry` if given) and `viewers` connected viewers. */
async function withEngine(dir: string, viewers: number, entry: string | undefined,
  work: (connections: Connection[], hooks: WebSocketHooks, clients: WebSocket[]) => Promise<void>): Promise<void> {
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  const file = path.join(dir, 'connmix.yaml');
  fs.writeFileSync(file, benchYaml(wsPort, apiPort, null, { entry }));
  const engine = new Engine(loadConfig(file), { log: new Logger('warn') });
  await engine.start();
  // Many viewers, each on its own video, as in the subscribe storm: one viewer would keep every cache warm.
  const clients = await Promise.all(Array.from({ length: viewers }, () => open(`ws://127.0.0.1:${wsPort}${viewerPath()}`)));
  const connections = [...(engine.hub as unknown as { byId: Map<string, Connection> }).byId.values()];
  const hooks = (engine.servers[0] as unknown as { hooks: WebSocketHooks }).hooks;
  try {
    await work(connections, hooks, clients);
  } finally {
    for (const client of clients) client.terminate();
    await engine.stop();
  }
}

/** Each viewer's seed unsubscribe and subscribe, on a video of its own (as in the subscribe storm). */
function seedMessages(connections: Connection[]): Buffer[][] {
  const seed = dialect('seed');
  return connections.map((_connection, video) => [seed.unsubscribe(video), seed.subscribe(video)].map((m) => Buffer.from(m)));
}

/** Warms up, then times `deliver`: batches for the mean, single calls for the median. */
async function measure(row: string, timing: Timing, connections: Connection[], deliver: Deliver): Promise<Row> {
  const messages = seedMessages(connections);
  // The first seconds are V8 warming up (optimising fengari's interpreter), not the steady state.
  await callsFor(timing.warmUpMs, connections, messages, deliver, null);
  const singles: number[] = [];
  const cpu0 = process.cpuUsage();
  const { calls, busyNs } = await callsFor(timing.timedMs, connections, messages, deliver, singles);
  const cpu = process.cpuUsage(cpu0);
  const allCalls = calls + singles.length;
  singles.sort((a, b) => a - b);
  const allocatedBytesPerCall = await bytesPerCall(timing.allocSampleMs, connections, messages, deliver);
  return {
    row,
    calls,
    usPerCall: Number(busyNs / BigInt(calls)) / 1000,
    p50Us: Math.round(singles[Math.floor(singles.length / 2)] / 10) / 100,
    callsPerSecond: Math.round(calls / (Number(busyNs) / 1e9)),
    processCpuUsPerCall: Math.round(((cpu.user + cpu.system) / allCalls) * 100) / 100,
    allocatedBytesPerCall,
  };
}

interface Comparison {
  row: string;
  windows: number;
  interpretedCpuUsPerCall: number;
  compiledCpuUsPerCall: number;
  /** Interpreted over compiled CPU per call. */
  ratio: number;
}

const COMPARISON_WINDOW_MS = 500;

/** The seed's hook call interpreted and compiled, alternated `pairs` times (see the file's comment). */
async function againstInterpreter(pairs: number, connections: Connection[], deliver: Deliver): Promise<Comparison> {
  const messages = seedMessages(connections);
  const cpuPerCall = { interpreted: [] as number[], compiled: [] as number[] };
  try {
    for (let pair = 0; pair < pairs; pair++) {
      // Each goes first every other pair.
      for (const mode of pair % 2 === 0 ? ['interpreted', 'compiled'] as const : ['compiled', 'interpreted'] as const) {
        if (mode === 'compiled') installFrameCompiler();
        else uninstallFrameCompiler();
        const cpu0 = process.cpuUsage();
        const { calls } = await callsFor(COMPARISON_WINDOW_MS, connections, messages, deliver, null);
        const cpu = process.cpuUsage(cpu0);
        cpuPerCall[mode].push((cpu.user + cpu.system) / calls);
      }
    }
  } finally {
    installFrameCompiler();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const [interpreted, compiled] = [median(cpuPerCall.interpreted), median(cpuPerCall.compiled)];
  return {
    row: 'seed, hook call: interpreted against compiled',
    windows: pairs,
    interpretedCpuUsPerCall: Math.round(interpreted * 100) / 100,
    compiledCpuUsPerCall: Math.round(compiled * 100) / 100,
    ratio: Math.round((interpreted / compiled) * 1000) / 1000,
  };
}

/** Bytes allocated per call while `deliver` runs for `ms`, objects already collected included. */
async function bytesPerCall(ms: number, connections: Connection[], messages: Buffer[][], deliver: Deliver): Promise<number> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) =>
    session.post(method, params as never, (error: Error | null, result: unknown) => (error ? reject(error) : resolve(result))));
  try {
    await post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
    const { calls } = await callsFor(ms, connections, messages, deliver, null);
    const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: { head: SamplingNode } };
    const total = (node: SamplingNode): number => node.selfSize + node.children.reduce((sum, child) => sum + total(child), 0);
    return Math.round(total(profile.head) / calls);
  } finally {
    session.disconnect();
  }
}

/**
 * Times round trips of one viewer for the timed span after the warm-up: each its subscribe or unsubscribe
 * sent, then its answer read. The mean, p50 and CPU are per round trip, client included.
 */
async function roundTrips(row: string, timing: Timing, client: WebSocket): Promise<Row> {
  const seed = dialect('seed');
  const messages = [seed.unsubscribe(0), seed.subscribe(0)];
  const trip = (i: number) => new Promise<number>((resolve) => {
    const started = process.hrtime.bigint();
    client.once('message', () => resolve(Number(process.hrtime.bigint() - started)));
    client.send(messages[i & 1]);
  });
  for (let i = 0, until = Date.now() + timing.warmUpMs; Date.now() < until; i++) await trip(i);
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0, until = Date.now() + timing.timedMs; Date.now() < until; i++) times.push(await trip(i));
  const cpu = process.cpuUsage(cpu0);
  const busyNs = times.reduce((sum, ns) => sum + ns, 0);
  times.sort((a, b) => a - b);
  return {
    row,
    calls: times.length,
    usPerCall: Math.round(busyNs / times.length / 10) / 100,
    p50Us: Math.round(times[Math.floor(times.length / 2)] / 10) / 100,
    callsPerSecond: Math.round(times.length / (busyNs / 1e9)),
    processCpuUsPerCall: Math.round(((cpu.user + cpu.system) / times.length) * 100) / 100,
    allocatedBytesPerCall: null,
  };
}

interface SamplingNode {
  selfSize: number;
  children: SamplingNode[];
}

/**
 * Hands the viewers' messages over for `ms`, BATCH at a time; returns how many and the time they took.
 * Every other batch is timed call by call into `singles` (nanoseconds), when given.
 */
async function callsFor(ms: number, connections: Connection[], messages: Buffer[][], deliver: Deliver,
  singles: number[] | null): Promise<{ calls: number; busyNs: bigint }> {
  let calls = 0;
  let busyNs = 0n;
  let batches = 0;
  let sent = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const single = singles !== null && batches++ % 2 === 1;
    const started = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) {
      const n = (sent + i) % connections.length;
      const message = messages[n][((sent + i) / connections.length) & 1];
      if (single) {
        const t0 = process.hrtime.bigint();
        deliver(connections[n], message);
        singles!.push(Number(process.hrtime.bigint() - t0));
      } else {
        deliver(connections[n], message);
      }
    }
    sent += BATCH;
    if (!single) {
      busyNs += process.hrtime.bigint() - started;
      calls += BATCH;
    }
    // Let the answers leave and the viewers read them, as between socket reads.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { calls, busyNs };
}

/** A viewer that has subscribed to nothing yet and counts nothing: its answers are only read. */
async function open(url: string): Promise<WebSocket> {
  const client = new WebSocket(url);
  await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject));
  return client;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
