import type { Fleet } from '../load/fleet';
import type { AudienceStats, OpenedClients } from '../load/audience';
import type { AudienceName } from '../load/worker';
import { waitForDeliveries } from './context';
import type { StepAudience, StepStats } from './step';

/**
 * One audience (the viewers, the chat's members) over every load process, as the bench drives it: what
 * opened, and the step commands a ramp needs. Subclasses open the clients and merge their stats.
 */
export abstract class FleetAudience<S extends StepStats> implements StepAudience<S> {
  opened = 0;
  failed = 0;
  errors: string[] = [];
  openMs = 0;

  protected constructor(
    protected readonly fleet: Fleet,
    private readonly audience: AudienceName,
  ) {}

  /** Clients per group (video, room), over every load process. */
  readonly perGroup = new Map<number, number>();

  /** Adds up the load processes' answers to the open command. */
  protected addOpened(results: readonly OpenedClients[]): void {
    for (const result of results) {
      this.opened += result.opened;
      this.failed += result.failed;
      this.errors.push(...result.errors);
      this.openMs = Math.max(this.openMs, result.ms);
      addCounts(this.perGroup, result.perGroup);
    }
  }

  /** Starts a step: counters to zero; messages due before `minT` (monotonic ms) count as late. */
  async reset(minT: number): Promise<void> {
    await this.fleet.all(() => ({ op: 'audience.reset', audience: this.audience, minT }));
  }

  async delivered(): Promise<number> {
    const counts = await this.fleet.all<number>(() => ({ op: 'audience.count', audience: this.audience }));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Waits for this audience's deliveries (see waitForDeliveries). */
  drain(expected: number, quietMs: number, timeoutMs: number): Promise<number> {
    return waitForDeliveries(() => this.delivered(), expected, quietMs, timeoutMs);
  }

  abstract stats(): Promise<S>;

  /** Every load process's stats of this audience. */
  protected allStats<T extends AudienceStats>(): Promise<T[]> {
    return this.fleet.all<T>(() => ({ op: 'audience.stats', audience: this.audience }));
  }

  async close(): Promise<void> {
    await this.fleet.all(() => ({ op: 'audience.close', audience: this.audience }));
  }
}

/** Adds `counts` (a load process's per-video or per-room figures) into `into`. */
export function addCounts(into: Map<number, number>, counts: Record<number, number>): void {
  for (const [key, count] of Object.entries(counts)) into.set(Number(key), (into.get(Number(key)) ?? 0) + count);
}
