import type { BenchConfig } from '../config';
import type { Fleet } from '../load/fleet';
import type { RunningTarget, TargetSpec } from '../targets/target';

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
