import { machineBusySeconds, totalCpu } from '../lib/proc';
import type { Histogram } from '../load/histogram';
import { nowMs } from '../load/payload';
import type { DeliveryStep } from '../report/types';
import { round, type Context } from './context';

/** What the load processes' clients add up to after a step (mergeAudiences, plus what a scenario counts). */
export interface StepStats {
  delivered: number;
  late: number;
  open: number;
  latency: Histogram;
}

/** The clients a delivery scenario measures (ViewerGroup, the chat's members), as one step sees them. */
export interface StepAudience<S extends StepStats> {
  /** How many connected: those no longer open after a step count as closed. */
  readonly opened: number;
  /** Starts a step: counters to zero; messages due before `t0` (monotonic ms) count as late. */
  reset(t0: number): Promise<void>;
  /** Waits for `expected` deliveries (see waitForDeliveries); returns the time of the last progress. */
  drain(expected: number, quietMs: number, timeoutMs: number): Promise<number>;
  stats(): Promise<S>;
}

/**
 * One step of a ramp: resets the audience, runs `load` (publishes or says, for `stepMs`), waits for the
 * deliveries `expectedOf` its result, and measures them with the CPU of the target, of the load processes
 * and of everything else on the machine over the step's window (`serverCpu`: the target's, unrounded).
 */
export async function measureStep<R, S extends StepStats>(
  ctx: Context,
  audience: StepAudience<S>,
  rate: number,
  timing: { stepMs: number; drainMs: number },
  load: () => Promise<R>,
  expectedOf: (run: R) => number,
): Promise<{ row: DeliveryStep; run: R; stats: S; serverCpu: number }> {
  const { target, fleet } = ctx;
  const t0 = nowMs();
  await audience.reset(t0);
  const cpu0 = totalCpu(target.pids);
  const load0 = totalCpu(fleet.pids);
  const busy0 = machineBusySeconds();
  const self0 = process.cpuUsage();
  const started = Date.now();
  const run = await load();
  const expected = expectedOf(run);
  const lastProgress = await audience.drain(expected, Math.min(1000, timing.drainMs), timing.drainMs);
  const t1 = nowMs();
  const serverCpu = totalCpu(target.pids) - cpu0;
  const loadCpu = totalCpu(fleet.pids) - load0;
  const self = process.cpuUsage(self0);
  const otherCpu = machineBusySeconds() - busy0 - serverCpu - loadCpu - (self.user + self.system) / 1e6;
  const stats = await audience.stats();
  const windowS = Math.max(timing.stepMs, lastProgress - started) / 1000;
  const row: DeliveryStep = {
    target: target.name,
    nodes: target.nodes.length,
    closed: audience.opened - stats.open,
    rate,
    expected,
    delivered: stats.delivered,
    losses: Math.max(0, expected - stats.delivered),
    late: stats.late,
    windowS: round(windowS),
    deliveriesPerSec: Math.round(stats.delivered / windowS),
    p50: round(stats.latency.quantile(0.5)),
    p99: round(stats.latency.quantile(0.99)),
    max: round(stats.latency.max),
    serverCpuS: round(serverCpu),
    cpuPerMillion: stats.delivered > 0 ? round(serverCpu / (stats.delivered / 1e6)) : 0,
    loadCpuS: round(loadCpu),
    otherCpuS: round(Math.max(0, otherCpu)),
    t0,
    t1,
  };
  return { row, run, stats, serverCpu };
}

/**
 * Why a ramp ends at `row`, or null: `failed` (the scenario's own failure: publishes that failed, says
 * out of order), then lost deliveries, then p99 past `p99LimitMs`. An infinite limit (--all-rates) never stops.
 */
export function stopReason(row: DeliveryStep, p99LimitMs: number, failed: string | null): string | null {
  if (!Number.isFinite(p99LimitMs)) return null;
  if (failed) return failed;
  if (row.losses > 0) return `${row.losses} deliveries lost`;
  if (row.p99 > p99LimitMs) return `p99 ${row.p99} ms > ${p99LimitMs} ms`;
  return null;
}

/** The log line's note when processes outside the run used a tenth of the window's CPU or more. */
export function othersNote(row: DeliveryStep): string {
  return row.otherCpuS > 0.1 * row.windowS ? ` (others used ${row.otherCpuS} CPU s meanwhile)` : '';
}
