import type { BenchConfig } from '../config';
import type { Fleet } from '../load/fleet';
import type { RunningTarget, TargetSpec } from '../targets/target';
import { sleep } from '../lib/proc';

/** What a scenario runs against: one started target and the load processes. */
export interface Context {
  config: BenchConfig;
  fleet: Fleet;
  spec: TargetSpec;
  target: RunningTarget;
  log(line: string): void;
}

export function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * Waits until `expected` deliveries arrived (as `count` reports them), or nothing arrived for
 * `quietMs`, or `timeoutMs` passed. Returns the time (Date.now()) of the last progress seen: the end
 * of the step's delivery window.
 */
export async function waitForDeliveries(count: () => Promise<number>, expected: number, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = await count();
  let lastProgress = Date.now();
  while (last < expected && Date.now() < deadline && Date.now() - lastProgress < quietMs) {
    await sleep(50);
    const now = await count();
    if (now > last) {
      last = now;
      lastProgress = Date.now();
    }
  }
  return lastProgress;
}
