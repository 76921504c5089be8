/**
 * The cost of one Lua `on_message` call on the seed's subscribe message, without sockets or a load
 * generator in the way: an engine in this process with the shipped Lua and yaml (as the bench's
 * connmix-ts target runs them), viewers connected to it, and their messages handed to the server as ws
 * hands them over (the server's 'message' listener), in batches timed on their own. What the subscribe-storm scenario measures end to end, minus the
 * network and the noise of sharing two cores with load processes.
 *
 *   node dist/bench/lua-calls.js [--seconds 10] [--viewers 200]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { Engine } from '../src/engine';
import { loadConfig } from '../src/config';
import { Logger } from '../src/log';
import type { Connection } from '../src/server/connection';
import { benchYaml, viewerPath } from './targets/connmix';
import { freePort } from './lib/proc';

const BATCH = 1000;
const WARM_UP_MS = 3000;

async function main(): Promise<void> {
  const option = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || fallback;
  const seconds = option('seconds', 10);
  const viewers = option('viewers', 200);
  const [wsPort, apiPort] = [await freePort(), await freePort()];
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-lua-calls-')), 'connmix.yaml');
  fs.writeFileSync(file, benchYaml(wsPort, apiPort, null));
  const engine = new Engine(loadConfig(file), { log: new Logger('warn') });
  await engine.start();
  // Many viewers, each on its own video, as in the subscribe storm: one viewer would keep every cache warm.
  const clients = await Promise.all(Array.from({ length: viewers }, () => open(`ws://127.0.0.1:${wsPort}${viewerPath()}`)));
  const messages = clients.map((_client, video) =>
    [`{"op":"unsubscribe","channel":"${video}@video"}`, `{"op":"subscribe","channel":"${video}@video"}`].map((m) => Buffer.from(m)),
  );
  const connections = [...(engine.hub as unknown as { byId: Map<string, Connection> }).byId.values()];
  // The first seconds are V8 warming up (optimising fengari's interpreter), not the steady state.
  await callsFor(WARM_UP_MS, connections, messages);
  const cpu0 = process.cpuUsage();
  const { calls, busyNs } = await callsFor(seconds * 1000, connections, messages);
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({
    calls,
    usPerCall: Number(busyNs / BigInt(calls)) / 1000,
    callsPerSecond: Math.round(calls / (Number(busyNs) / 1e9)),
    processCpuUsPerCall: Math.round(((cpu.user + cpu.system) / calls) * 100) / 100,
  }));
  for (const client of clients) client.terminate();
  await engine.stop();
}

/** Hands the viewers' messages to the server for `ms`, BATCH at a time; returns how many and the time they took. */
async function callsFor(ms: number, connections: Connection[], messages: Buffer[][]): Promise<{ calls: number; busyNs: bigint }> {
  let calls = 0;
  let busyNs = 0n;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) {
      const n = (calls + i) % connections.length;
      connections[n].ws.emit('message', messages[n][((calls + i) / connections.length) & 1], false);
    }
    busyNs += process.hrtime.bigint() - started;
    calls += BATCH;
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
