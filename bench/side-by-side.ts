/**
 * Fan-out CPU of connmix-ts and raw-ws measured at the same time, on the same machine state:
 * `npm run bench:side-by-side -- [--viewers 5000] [--rate 10] [--rounds 8] [--step-ms 10000]`.
 *
 * Both targets run at once, each with its own viewers (one video) in its own load process. Each round
 * publishes `rate` comments/s to both for `step-ms`, waits until every viewer has every comment, and
 * takes each server's CPU over the same window. The hot-video scenario runs the targets one after the
 * other, and on a noisy machine its 10 comments/s step moved by a third between runs, for both targets
 * and for the load alike (bench/notes.md, fifteenth session): one run's ratio said little. Here a round's
 * ratio sees both servers under the same conditions. Which target starts first still shows (about 3%
 * on the ratio), so half the rounds run with each first, the targets restarted in between. Keep the
 * rate low enough for both to fit the machine beside their load (10 or 20 comments/s at 5,000 viewers
 * on two cores).
 */
import { Fleet } from './load/fleet';
import { Publisher } from './load/publisher';
import { totalCpu } from './lib/proc';
import { median } from './lib/stats';
import { numberOption } from './lib/options';
import { nowMs } from './load/payload';
import { FULL } from './config';
import { ViewerGroup, FIRST_VIDEO } from './scenarios/viewer-group';
import { rawWs } from './targets/raw-ws';
import { connmixMemory } from './targets/connmix';
import type { RunningTarget, TargetSpec } from './targets/target';

interface Side {
  target: RunningTarget;
  fleet: Fleet;
  group: ViewerGroup;
  publisher: Publisher;
}

function flag(name: string, fallback: number): number {
  const value = numberOption(name, fallback);
  if (!(value > 0)) throw new Error(`--${name} needs a positive number`);
  return value;
}

async function open(spec: TargetSpec, viewers: number): Promise<Side> {
  const target = await spec.start({ nodes: 1 });
  const fleet = await Fleet.start(1);
  let group: ViewerGroup | undefined;
  try {
    group = await ViewerGroup.open(fleet, target, {
      viewers,
      videos: 1,
      concurrency: FULL.connectConcurrency,
      timeoutMs: FULL.connectTimeoutMs,
    });
    if (group.opened < viewers) throw new Error(`${target.name}: ${group.opened}/${viewers} viewers subscribed (${group.failed} failed)`);
  } catch (error) {
    await group?.close();
    await fleet.stop();
    await target.stop();
    throw error;
  }
  return { target, fleet, group, publisher: new Publisher(target.nodes[0].httpHost, target.nodes[0].httpPort) };
}

async function close(side: Side): Promise<void> {
  side.publisher.close();
  await side.group.close();
  await side.fleet.stop();
  await side.target.stop();
}

/** One round on every side at once: the CPU seconds each server used per million deliveries. */
async function round(sides: Side[], rate: number, stepMs: number): Promise<number[]> {
  const t0 = nowMs();
  await Promise.all(sides.map((side) => side.group.reset(t0)));
  const cpu0 = sides.map((side) => totalCpu(side.target.pids));
  const runs = await Promise.all(sides.map((side) => side.publisher.run(rate, stepMs, () => `video:${FIRST_VIDEO}`)));
  const expected = runs.map((run, i) => sides[i].group.expected(run.perChannel));
  await Promise.all(sides.map((side, i) => side.group.drain(expected[i], 1000, 10_000)));
  const cpu = sides.map((side, i) => totalCpu(side.target.pids) - cpu0[i]);
  const stats = await Promise.all(sides.map((side) => side.group.stats()));
  stats.forEach((stat, i) => {
    if (stat.delivered < expected[i]) throw new Error(`${sides[i].target.name}: ${stat.delivered} of ${expected[i]} deliveries`);
  });
  return cpu.map((seconds, i) => (seconds / stats[i].delivered) * 1e6);
}

/**
 * `rounds` rounds with connmix-ts and raw-ws started in `order`; each round's CPU per million
 * deliveries of connmix-ts over raw-ws's.
 */
async function phase(order: TargetSpec[], viewers: number, rate: number, rounds: number, stepMs: number): Promise<number[]> {
  const sides: Side[] = [];
  try {
    for (const spec of order) sides.push(await open(spec, viewers));
    // Warm-up, not measured: the JIT and the first publish's lazy paths.
    await round(sides, rate, 1000);
    const ours = order.indexOf(connmixMemory);
    const ratios: number[] = [];
    for (let i = 1; i <= rounds; i++) {
      const cost = await round(sides, rate, stepMs);
      const [connmix, raw] = [cost[ours], cost[1 - ours]];
      ratios.push(connmix / raw);
      console.log(`${String(i).padStart(5)}  ${order[0].name.padEnd(13)}  ${connmix.toFixed(2).padStart(10)}  ${raw.toFixed(2).padStart(6)}  ${(connmix / raw).toFixed(3)}`);
    }
    return ratios;
  } finally {
    for (const side of sides) await close(side);
  }
}

async function main(): Promise<void> {
  const viewers = flag('viewers', 5000);
  const rate = flag('rate', 10);
  const rounds = flag('rounds', 8);
  const stepMs = flag('step-ms', 10_000);
  console.log(`${viewers} viewers each, ${rate} comments/s, ${stepMs} ms rounds; server CPU s per million deliveries`);
  console.log('round  started first  connmix-ts  raw-ws  ratio');
  // Which target starts first moved the ratio by 3% (bench/notes.md): half the rounds in each order.
  const first = await phase([connmixMemory, rawWs], viewers, rate, Math.ceil(rounds / 2), stepMs);
  const second = await phase([rawWs, connmixMemory], viewers, rate, Math.floor(rounds / 2), stepMs);
  const all = [...first, ...second];
  const range = (ratios: number[]) => `${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}`;
  console.log(`median ratio ${median(all).toFixed(3)}: ${median(first).toFixed(3)} (${range(first)}) with connmix-ts started first, ` +
    `${second.length > 0 ? `${median(second).toFixed(3)} (${range(second)})` : 'none'} with raw-ws first`);
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exitCode = 1;
});
