import { shares, type Fleet } from '../load/fleet';
import { mergeAudiences } from '../load/audience';
import type { ChatStats, SayRunResult } from '../load/chat';
import type { OpenedClients } from '../load/audience';
import { sourceAddresses } from '../lib/addresses';
import type { ChatRow } from '../report/types';
import { round, type Context } from './context';
import { FleetAudience, addCounts } from './fleet-audience';
import { measureStep, othersNote, stopReason, type StepStats } from './step';

/** What the members add up to after a step. */
type ChatStepStats = StepStats & { outOfOrder: number };

/**
 * The Lua entry connmix-ts targets serve for this scenario: CONNMIX's quick-start chat room, unchanged
 * (the peers' servers speak its protocol in JS).
 */
export const CHAT_ENTRY = 'lua/examples/chat-room.lua';

/**
 * chat-room: `members` connect and join one of `rooms` rooms each with {"op":"join","room_id":n} (a
 * room's members alternate between the target's nodes); then the members say things to their own room
 * with {"op":"send","msg":"..."}, at each rate of the ramp in turn, until p99 passes the limit or a say
 * is lost. Every say goes through the target's handler (connmix-ts: on_message of
 * lua/examples/chat-room.lua: json_decode, conn:client_id, conn:context_value, the
 * {"status":"success"} answer to the sender and mix.mesh.publish of the concatenated
 * {"client_id","msg"}) and reaches every member of its room, the sender included. The answers are not deliveries: only frames carrying a say's msg count.
 *
 * Open loop at fixed rates rather than as fast as answers come (the storm's way): every target gets
 * the same offered load at each step, so CPU per delivery and per say compare like for like, and the
 * highest step that holds is the capacity. A closed loop would let a slower server do less work per
 * second and hand the saved CPU to the load processes, which share the two cores.
 */
export async function chatRoom(ctx: Context): Promise<ChatRow[]> {
  const { members, rooms, rates, stepMs, drainMs, p99LimitMs } = ctx.config.chatRoom;
  const rows: ChatRow[] = [];
  const group = new ChatGroup(ctx.fleet);
  try {
    await group.open(ctx);
    const failure = group.failed ? ` (${group.failed} failed: ${group.errors[0]})` : '';
    ctx.log(`  ${group.opened}/${members} members joined ${rooms} rooms in ${group.openMs} ms${failure}`);
    if (group.opened === 0) throw new Error(`no member could join: ${group.errors[0] ?? 'unknown'}`);

    // Warm-up, not measured: the JIT and the first say's lazy paths.
    await group.say(Math.min(20, rates[0]), 300);
    await group.drain(Infinity, 300, 1000);
    for (const rate of rates) {
      const { row: measured, run, stats, serverCpu } = await measureStep(ctx, group, rate, { stepMs, drainMs }, () => group.say(rate, stepMs),
        (run) => group.expected(run.perRoom));
      const row: ChatRow = {
        ...measured,
        members,
        rooms,
        joined: group.opened,
        says: run.sent,
        saysPerSec: Math.round((run.sent / stepMs) * 1000),
        outOfOrder: stats.outOfOrder,
        cpuMsPerKSays: run.sent > 0 ? round((serverCpu * 1e6) / run.sent, 1) : 0,
        ...(group.failed > 0 ? { error: `${group.failed} members failed to join: ${group.errors[0]}` } : {}),
      };
      rows.push(row);
      ctx.log(
        `  ${rate} says/s: ${row.deliveriesPerSec} deliveries/s, p50 ${row.p50} p99 ${row.p99} max ${row.max} ms, lost ${row.losses}, ` +
          `out of order ${row.outOfOrder}, server CPU ${row.serverCpuS} s = ${row.cpuPerMillion} µs per delivery, ${row.cpuMsPerKSays} µs per say${othersNote(row)}`,
      );
      const stop = stopReason(row, p99LimitMs, row.outOfOrder > 0 ? `${row.outOfOrder} out of order` : null);
      if (stop) {
        row.stop = stop;
        break;
      }
    }
  } finally {
    await group.close();
  }
  return rows;
}

/** The target's chat members over every load process (perGroup: how many joined each room). */
class ChatGroup extends FleetAudience<ChatStepStats> {
  constructor(fleet: Fleet) {
    super(fleet, 'chat');
  }

  /** Opens the members on every load process (close() closes what opened, even if this fails). */
  async open(ctx: Context): Promise<void> {
    const { target, fleet, config } = ctx;
    const { members, rooms } = config.chatRoom;
    const split = shares(members, fleet.size);
    const urls = target.nodes.map((node) => node.wsUrl);
    const results = await fleet.all<OpenedClients>((i) => ({
      op: 'chat.open',
      params: { urls, dialect: target.dialect, firstIndex: split[i][0], count: split[i][1], rooms, addresses: sourceAddresses(split[i][1]), concurrency: config.connectConcurrency, timeoutMs: config.connectTimeoutMs },
    }));
    this.addOpened(results);
  }

  /** Every load process says its share of `rate` for `durationMs`; says sent per room, over all. */
  async say(rate: number, durationMs: number): Promise<{ sent: number; perRoom: Map<number, number> }> {
    const results = await this.fleet.all<SayRunResult>(() => ({ op: 'chat.say', params: { rate: rate / this.fleet.size, durationMs } }));
    const perRoom = new Map<number, number>();
    for (const result of results) addCounts(perRoom, result.perRoom);
    return { sent: results.reduce((sum, result) => sum + result.sent, 0), perRoom };
  }

  /** Deliveries says should produce: each reaches every member of its room, the sender included. */
  expected(saysPerRoom: Map<number, number>): number {
    let total = 0;
    for (const [room, count] of saysPerRoom) total += count * (this.perGroup.get(room) ?? 0);
    return total;
  }

  async stats(): Promise<ChatStepStats> {
    const all = await this.allStats<ChatStats>();
    return { ...mergeAudiences(all), outOfOrder: all.reduce((sum, stats) => sum + stats.outOfOrder, 0) };
  }
}
