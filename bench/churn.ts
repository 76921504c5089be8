/**
 * What removing a key and adding it again costs where the node keeps keyed sets, in-process:
 * `npm run bench:churn -- [--seconds 2]`. Rows, each the mean over as many remove+add pairs as fit in the time:
 *
 * - `one viewer flapping in a channel of N`: the same viewer leaves and joins a channel held by N others
 *   (a viewer toggling a video page, or a client sending subscribe/unsubscribe in a loop).
 * - `viewers of N channels taking turns`: each of N viewers leaves and joins its own channel in turn (the
 *   subscribe storm's pattern), so every leave empties its channel.
 * - `one key flapping in a Lua table of N` / `keys of a Lua table of N taking turns`: a script's table
 *   (say, who is online) where `t[k] = nil` then `t[k] = true` runs on one key, or on each key in turn.
 *
 * No sockets: the Hub over a MemoryBroker, with subscribers that only count deliveries; a plain Lua state
 * timing its own loop with os.clock.
 */
import { lua, lauxlib, lualib, K } from '../src/lua/fengari/index';
import { MemoryBroker } from '../src/mesh/memory-broker';
import { Hub, type ChannelEntry, type Outgoing, type Subscriber } from '../src/mesh/hub';
import { Memberships } from '../src/mesh/memberships';
import { ConnectionContext } from '../src/session/context';

class CountingSubscriber implements Subscriber {
  readonly protocol = 'websocket' as const;
  readonly channels = new Memberships<ChannelEntry>();
  readonly context = new ConnectionContext();
  readonly maxChannels = 0;
  received = 0;

  constructor(readonly clientId: string) {}

  deliver(_message: Outgoing): boolean {
    this.received++;
    return true;
  }
}

/** Mean microseconds per call of `pair` over `ms`, after a warm-up of the same length. */
function timePairs(ms: number, pair: (i: number) => void): number {
  for (const measuring of [false, true]) {
    let pairs = 0;
    const started = process.hrtime.bigint();
    const until = started + BigInt(ms) * 1_000_000n;
    while (process.hrtime.bigint() < until) {
      for (let k = 0; k < 1000; k++) pair(pairs++);
    }
    if (measuring) return Number(process.hrtime.bigint() - started) / pairs / 1000;
  }
  return 0;
}

function flapping(members: number, ms: number): number {
  const hub = new Hub(new MemoryBroker('127.0.0.1:1'));
  for (let i = 0; i < members; i++) hub.subscribe(new CountingSubscriber(`m${i}`), ['hot']);
  const flapper = new CountingSubscriber('flapper');
  hub.subscribe(flapper, ['hot']);
  const us = timePairs(ms, () => {
    hub.unsubscribe(flapper, ['hot']);
    hub.subscribe(flapper, ['hot']);
  });
  hub.close();
  return us;
}

function takingTurns(channels: number, ms: number): number {
  const hub = new Hub(new MemoryBroker('127.0.0.1:1'));
  const viewers = Array.from({ length: channels }, (_, i) => new CountingSubscriber(`v${i}`));
  const names = viewers.map((_, i) => `video:${100_000 + i}`);
  viewers.forEach((viewer, i) => hub.subscribe(viewer, [names[i]]));
  const us = timePairs(ms, (i) => {
    const n = i % channels;
    // Fresh strings, as each Lua call makes them.
    const name = `video:${100_000 + n}`;
    hub.unsubscribe(viewers[n], [name]);
    hub.subscribe(viewers[n], [`video:${100_000 + n}`]);
  });
  hub.close();
  return us;
}

/** Mean microseconds per remove+add in a Lua table of `keys` string keys: one key flapping, or every key in turn. */
function luaTable(keys: number, oneKey: boolean, ms: number): number {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const key = oneKey ? '"user:7"' : `"user:" .. (k % ${keys} + 1)`;
  const chunk = `
    local t = {}
    for i = 1, ${keys} do t["user:" .. i] = true end
    local function timed(seconds)
      local n, started = 0, os.clock()
      repeat
        for k = 1, 1000 do local key = ${key} t[key] = nil t[key] = true end
        n = n + 1000
      until os.clock() - started >= seconds
      return (os.clock() - started) / n * 1e6
    end
    timed(${ms / 1000})
    return timed(${ms / 1000})`;
  if (lauxlib.luaL_loadbufferx(L, K(chunk), null, K('=churn'), K('t')) !== lua.LUA_OK) throw new Error('the churn chunk does not load');
  lua.lua_call(L, 0, 1);
  return lua.lua_tonumber(L, -1);
}

function main(): void {
  const at = process.argv.indexOf('--seconds');
  const ms = (at > 0 ? Number(process.argv[at + 1]) : 2) * 1000;
  for (const members of [1_000, 20_000, 200_000]) {
    console.log(JSON.stringify({ row: `one viewer flapping in a channel of ${members}`, usPerJoinAndLeave: round(flapping(members, ms)) }));
  }
  for (const channels of [200, 10_000]) {
    console.log(JSON.stringify({ row: `viewers of ${channels} channels taking turns`, usPerJoinAndLeave: round(takingTurns(channels, ms)) }));
  }
  for (const keys of [1_000, 20_000]) {
    console.log(JSON.stringify({ row: `one key flapping in a Lua table of ${keys}`, usPerRemoveAndAdd: round(luaTable(keys, true, ms)) }));
    console.log(JSON.stringify({ row: `keys of a Lua table of ${keys} taking turns`, usPerRemoveAndAdd: round(luaTable(keys, false, ms)) }));
  }
}

function round(us: number): number {
  return Math.round(us * 1000) / 1000;
}

main();
