import { shares } from '../load/fleet';
import { mergeAudiences } from '../load/audience';
import type { ChatStats, OpenMembersResult, SayRunResult } from '../load/chat';
import { sourceAddresses } from '../lib/addresses';
import type { ChatRow } from '../report/types';
import { round, waitForDeliveries, type Context } from './context';
import { measureStep, othersNote, stopReason, type StepAudience, type StepStats } from './step';

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
  const { target, fleet, config } = ctx;
  const { members, rooms, rates, stepMs, drainMs, p99LimitMs } = config.chatRoom;
  const split = shares(members, fleet.size);
  const urls = target.nodes.map((node) => node.wsUrl);
  const rows: ChatRow[] = [];
  try {
    const opened = await fleet.all<OpenMembersResult>((i) => ({
      op: 'chat.open',
      params: { urls, dialect: target.dialect, firstIndex: split[i][0], count: split[i][1], rooms, addresses: sourceAddresses(split[i][1]), concurrency: config.connectConcurrency, timeoutMs: config.connectTimeoutMs },
    }));
    const perRoom = new Map<number, number>();
    for (const result of opened) for (const [room, count] of Object.entries(result.perRoom)) perRoom.set(Number(room), (perRoom.get(Number(room)) ?? 0) + count);
    const joined = opened.reduce((sum, r) => sum + r.joined, 0);
    const failed = opened.reduce((sum, r) => sum + r.failed, 0);
    const firstError = opened.find((r) => r.errors.length)?.errors[0];
    ctx.log(`  ${joined}/${members} members joined ${rooms} rooms in ${Math.max(...opened.map((r) => r.ms))} ms${failed ? ` (${failed} failed: ${firstError})` : ''}`);
    if (joined === 0) throw new Error(`no member could join: ${firstError ?? 'unknown'}`);

    // Warm-up, not measured: the JIT and the first say's lazy paths.
    await say(ctx, Math.min(20, rates[0]), 300);
    await drain(ctx, Infinity, 300, 1000);
    const audience: StepAudience<ChatStepStats> = {
      opened: joined,
      reset: async (t0) => void (await fleet.all(() => ({ op: 'chat.reset', minT: t0 }))),
      drain: (expected, quietMs, timeoutMs) => drain(ctx, expected, quietMs, timeoutMs),
      stats: () => merged(ctx),
    };
    // Each say reaches every member of its room, the sender included.
    const expectedOf = (run: { perRoom: Map<number, number> }) => {
      let expected = 0;
      for (const [room, count] of run.perRoom) expected += count * (perRoom.get(room) ?? 0);
      return expected;
    };
    for (const rate of rates) {
      const { row: measured, run, stats, serverCpu } = await measureStep(ctx, audience, rate, { stepMs, drainMs }, () => say(ctx, rate, stepMs), expectedOf);
      const row: ChatRow = {
        ...measured,
        members,
        rooms,
        joined,
        says: run.sent,
        saysPerSec: Math.round((run.sent / stepMs) * 1000),
        outOfOrder: stats.outOfOrder,
        cpuMsPerKSays: run.sent > 0 ? round((serverCpu * 1e6) / run.sent, 1) : 0,
        ...(failed > 0 ? { error: `${failed} members failed to join: ${firstError}` } : {}),
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
    await fleet.all(() => ({ op: 'chat.close' }));
  }
  return rows;
}

/** Every load process says its share of `rate` for `durationMs`; says sent per room, over all. */
async function say(ctx: Context, rate: number, durationMs: number): Promise<{ sent: number; perRoom: Map<number, number> }> {
  const results = await ctx.fleet.all<SayRunResult>(() => ({ op: 'chat.say', params: { rate: rate / ctx.fleet.size, durationMs } }));
  const perRoom = new Map<number, number>();
  let sent = 0;
  for (const result of results) {
    sent += result.sent;
    for (const [room, count] of Object.entries(result.perRoom)) perRoom.set(Number(room), (perRoom.get(Number(room)) ?? 0) + count);
  }
  return { sent, perRoom };
}

/** Waits for the chat deliveries (see waitForDeliveries). */
function drain(ctx: Context, expected: number, quietMs: number, timeoutMs: number): Promise<number> {
  const count = async () => (await ctx.fleet.all<number>(() => ({ op: 'chat.count' }))).reduce((a, b) => a + b, 0);
  return waitForDeliveries(count, expected, quietMs, timeoutMs);
}

async function merged(ctx: Context): Promise<ChatStepStats> {
  const all = await ctx.fleet.all<ChatStats>(() => ({ op: 'chat.stats' }));
  return { ...mergeAudiences(all), outOfOrder: all.reduce((sum, stats) => sum + stats.outOfOrder, 0) };
}
