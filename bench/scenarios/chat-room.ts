import { shares } from '../load/fleet';
import { mergeAudiences } from '../load/audience';
import type { ChatStats, OpenMembersResult, SayRunResult } from '../load/chat';
import { nowMs } from '../load/payload';
import { sourceAddresses } from '../lib/addresses';
import { machineBusySeconds, totalCpu } from '../lib/proc';
import type { ChatRow } from '../report/types';
import { round, waitForDeliveries, type Context } from './context';

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
    for (const rate of rates) {
      const t0 = nowMs();
      await fleet.all(() => ({ op: 'chat.reset', minT: t0 }));
      const cpu0 = totalCpu(target.pids);
      const load0 = totalCpu(fleet.pids);
      const busy0 = machineBusySeconds();
      const self0 = process.cpuUsage();
      const started = Date.now();
      const run = await say(ctx, rate, stepMs);
      let expected = 0;
      for (const [room, count] of run.perRoom) expected += count * (perRoom.get(room) ?? 0);
      const lastProgress = await drain(ctx, expected, Math.min(1000, drainMs), drainMs);
      const t1 = nowMs();
      const serverCpu = totalCpu(target.pids) - cpu0;
      const loadCpu = totalCpu(fleet.pids) - load0;
      const self = process.cpuUsage(self0);
      const otherCpu = machineBusySeconds() - busy0 - serverCpu - loadCpu - (self.user + self.system) / 1e6;
      const stats = await merged(ctx);
      const windowS = Math.max(stepMs, lastProgress - started) / 1000;
      const row: ChatRow = {
        target: target.name,
        nodes: target.nodes.length,
        members,
        rooms,
        joined,
        closed: joined - stats.open,
        rate,
        says: run.sent,
        saysPerSec: Math.round((run.sent / stepMs) * 1000),
        expected,
        delivered: stats.delivered,
        losses: Math.max(0, expected - stats.delivered),
        outOfOrder: stats.outOfOrder,
        late: stats.late,
        windowS: round(windowS),
        deliveriesPerSec: Math.round(stats.delivered / windowS),
        p50: round(stats.latency.quantile(0.5)),
        p99: round(stats.latency.quantile(0.99)),
        max: round(stats.latency.max),
        serverCpuS: round(serverCpu),
        cpuPerMillion: stats.delivered > 0 ? round(serverCpu / (stats.delivered / 1e6)) : 0,
        cpuMsPerKSays: run.sent > 0 ? round((serverCpu * 1e6) / run.sent, 1) : 0,
        loadCpuS: round(loadCpu),
        otherCpuS: round(Math.max(0, otherCpu)),
        t0,
        t1,
        ...(failed > 0 ? { error: `${failed} members failed to join: ${firstError}` } : {}),
      };
      rows.push(row);
      ctx.log(
        `  ${rate} says/s: ${row.deliveriesPerSec} deliveries/s, p50 ${row.p50} p99 ${row.p99} max ${row.max} ms, lost ${row.losses}, ` +
          `out of order ${row.outOfOrder}, server CPU ${row.serverCpuS} s = ${row.cpuPerMillion} µs per delivery, ${row.cpuMsPerKSays} µs per say` +
          `${row.otherCpuS > 0.1 * row.windowS ? ` (others used ${row.otherCpuS} CPU s meanwhile)` : ''}`,
      );
      const stop = row.losses > 0 ? `${row.losses} deliveries lost` : row.outOfOrder > 0 ? `${row.outOfOrder} out of order` : row.p99 > p99LimitMs ? `p99 ${row.p99} ms > ${p99LimitMs} ms` : null;
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

async function merged(ctx: Context): Promise<ReturnType<typeof mergeAudiences> & { outOfOrder: number }> {
  const all = await ctx.fleet.all<ChatStats>(() => ({ op: 'chat.stats' }));
  return { ...mergeAudiences(all), outOfOrder: all.reduce((sum, stats) => sum + stats.outOfOrder, 0) };
}
