import type { ApiRow, ChatRow, DeliveryStep, FanoutRow, IdleRow, ProfileSummary, RunRecord, StormRow } from './types';

/** Targets whose figures are divided by each peer's, and the peers they are compared with. */
const COMPARISONS: { subject: string; peers: string[] }[] = [
  { subject: 'connmix-ts', peers: ['raw-ws', 'socketio-redis', 'socketio-redis-2n'] },
  { subject: 'connmix-ts-redis-2n', peers: ['socketio-redis-2n', 'raw-ws'] },
];

export const HOW_TO_RUN = `## How to run

\`\`\`sh
apt-get install -y redis-server      # once: the Redis targets start their own redis-server
npm run bench -- --quick             # every target and scenario at small sizes, under 2 minutes
npm run bench                        # the full run (tens of minutes; nothing else should run meanwhile)
npm run bench -- --targets raw-ws,connmix-ts --scenarios hot-video --viewers 5000 --rates 10,50 --all-rates --name hot-video-5k --profile 50
npm run bench -- --targets connmix-ts,socketio-redis,raw-ws --scenarios chat-room --name chat-room
npm run bench:side-by-side           # fan-out CPU of connmix-ts and raw-ws at 10 comments/s, both at once
\`\`\`

\`npm run bench\` builds, then runs \`dist/bench/run.js\`. Options: \`--quick\`; \`--targets a,b\` (raw-ws,
socketio-redis, socketio-redis-2n, connmix-ts, connmix-ts-redis-2n, connmix-ts-engine: \`connmix engine -p N\`
over Redis, idle only, with as many workers as its connections need); \`--scenarios a,b\` (idle, hot-video,
many-videos, subscribe-storm, publish-api, chat-room); \`--viewers N,M\` and \`--rates r1,r2\` for hot-video;
\`--step-ms\`; \`--all-rates\` (no stop at the p99 limit or a loss); \`--name\` (the run's key in results.json, default \`quick\` or \`full\`); \`--profile RATE\`
(\`node --cpu-prof\` on the connmix-ts and raw-ws processes, summarised over the hot-video step at RATE msg/s, the
storm's connect and message phases, each publish-API phase and the chat-room step at RATE says/s; *busy* leaves out V8's
\`(idle)\`, which also holds libuv's socket reads: \`perf\` sees all of it, bench/notes.md's ninth session says how); \`--write-window MS\` (connmix-ts's
\`engine.servers[].writeWindow\` instead of the shipped value);
\`--deadline-s\` (the whole run is killed past it; default 300 quick, 4 h full); \`--wait-quiet S\` (first wait up
to S seconds for the machine to go quiet, under 1 CPU second used per 5 s: others' test suites skew
every figure; each fan-out step reports the CPU that processes outside the run used meanwhile). Environment:
\`BENCH_SERVER_FLAGS="--max-semi-space-size=64"\` passes node flags to the connmix-ts and raw-ws server processes;
\`BENCH_KEEP_PROFILES=1\` keeps the raw \`--profile\` files and prints their folder. Each run replaces the run of the same name in
\`bench/results.json\`; \`bench/RESULTS.md\` is rewritten from all stored runs, and \`bench/p99-vs-rate.svg\` from
the runs named \`full\` and \`quick\`; \`--out DIR\` keeps all three (and the notes RESULTS.md copies) in DIR instead
(test/bench.test.ts runs the quick storm and chat room that way).
Hand-written analysis lives in \`bench/notes.md\` and is copied into RESULTS.md
(\`npm run bench -- --report-only\` rewrites the reports from results.json without running anything).

How it works: the bench starts each target (its server processes, and a redis-server on a free
127.0.0.1 port for the Redis targets), drives it with load processes of its own (\`bench/load/worker.ts\`,
started fresh for each target; at least one per core, at most 18,000 connections each because a process
may open 20,000 files here), then stops everything it started, by pid. Viewers connect from 127.1.x.y
source addresses (a fresh block per phase; each address gives ~28,000 ports), subscribe with the seed's \`{"op":"subscribe","channel":"<id>@video"}\`
(Socket.IO: the same text as a \`message\` event) and count comments. Every comment is the seed's event
\`{"event":"@video","data":{"s":<seq>,"t":<send time>,"p":"xx…"}}\`, 160 bytes, posted to
\`POST /v1/mesh/publish\` at a fixed rate (open loop: \`t\` is when it was due, on CLOCK_MONOTONIC shared by
all processes). A viewer counts a sequence number once (a repeat is a duplicate); *lost* = comments
accepted by the API times the video's subscribers, minus deliveries that arrived before the step's drain
time ran out. Server CPU is utime+stime from \`/proc/<pid>/stat\` of every server process, redis-server
included, over the step; RSS is VmRSS. Server and load share the two cores, so the box caps throughput:
compare the servers' own costs (CPU per million deliveries, memory per connection) more than raw rates.
The large sizes are 19,500 connections per node, not 20,000: a process cannot hold more files here.

chat-room runs on a freshly started target of its own, connmix-ts serving CONNMIX's quick-start chat
room \`lua/examples/chat-room.lua\` unchanged instead of the seed; raw-ws and Socket.IO speak the same
protocol in JS (Socket.IO in the text of \`message\` events). 2,000 members (1,000 in quick mode) join 40
rooms, member i room i % 40 (a room's members alternate between the nodes of a two-node target), with
\`{"op":"join","room_id":7}\`, answered \`{"status":"success"}\`. Then the load processes send
\`{"op":"send","msg":"..."}\` from their members in turn at a fixed rate per step (open loop, as the
comments above, so every target gets the same offered load and CPU per say and per delivery compare like
for like). Each say is answered \`{"status":"success"}\` (not counted) and delivered as
\`{"client_id":"...","msg":"..."}\` to its room; the 64-byte msg carries the sender, its sequence number
and the due time, plain ASCII without quotes or backslashes (the script does not escape it). Every member
counts the says of its room (its own included), checks each sender's order (*out of order* must stay 0)
and records the latency; *lost* = says sent times the members of their room, minus deliveries.

subscribe-storm: 10,000 new connections (200 opening at a time) each subscribe as soon as they are open
(*connect+subscribe/s*); then 200 of them send unsubscribe and subscribe back to back, 4 in flight each,
for 10 s (*subscribe msgs/s*, one Lua \`on_message\` call each on connmix-ts). Before the measured storm,
each target gets a smaller one on other videos (2,000 connections, 2 s of messages), not measured, so
that the measured one meets warm load processes and a warm server. The measured storm starts once the
server has gone quiet after closing the warm-up's connections: \`perf\` found their closes in the first
200 ms of the measured connect phase, about 3% of its server CPU.

Every target gets load processes of its own, started fresh. With one set for the whole run, the first
target paid for compiling the load's code and growing its heaps: swapping raw-ws and connmix-ts between
two runs moved the load's CPU per connect from 208 to 329 µs for raw-ws and from 348 to 235 µs for
connmix-ts, whichever came first, and the connect rates with it (a warm-up alone left 80 µs of it). The
load's CPU is recorded beside the server's, per connect and per 1,000 messages: with fresh processes it
is the same whatever the order (263-266 µs per connect for both targets that speak the seed's protocol).

The storm's clients are bare TCP sockets that speak WebSocket themselves (\`bench/load/bare-socket.ts\`:
no HTTP client, one handshake key per process, frames masked with a zero key). With ws's client the load
cost 160-220 µs per connect, more than any server, and set every target's connect rate on two cores; on
bare sockets it costs about 110 µs for the seed's protocol and 134 µs for Socket.IO's (from the runs of
2026-12-04 on; earlier storm rows were measured with ws's client).
`;

function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map((h) => (/^(target|peer|api|note|function|where)$/.test(h) ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(2);
}

function ratio(subject: number, peer: number): string {
  if (!(peer > 0) || !(subject >= 0)) return '–';
  return `${(subject / peer).toFixed(2)}x`;
}

/** `done` alone when all of `total` made it, else "done/total". */
function ofTotal(done: number, total: number): number | string {
  return done === total ? total : `${done}/${total}`;
}

/** A delivery step's note: why the ramp stopped there, clients the server closed, the step's error. */
function stepNote(r: DeliveryStep, clients: 'viewers' | 'members'): string {
  return [r.stop ? `stop: ${r.stop}` : '', r.closed > 0 ? `${r.closed} ${clients} closed` : '', r.error ?? ''].filter(Boolean).join('; ');
}

function fanoutTable(rows: FanoutRow[]): string {
  return table(
    ['target', 'nodes', 'viewers', 'videos', 'rate msg/s', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'dup', 'server CPU s', 'CPU s / M deliveries', 'load CPU s', 'others CPU s', 'note'],
    rows.map((r) => [
      r.target,
      r.nodes,
      ofTotal(r.subscribed, r.viewers),
      r.videos,
      r.rate,
      r.deliveriesPerSec,
      r.p50,
      r.p99,
      r.max,
      r.losses,
      r.duplicates,
      r.serverCpuS,
      r.cpuPerMillion,
      r.loadCpuS,
      r.otherCpuS ?? '',
      stepNote(r, 'viewers'),
    ]),
  );
}

function fanoutRatios(rows: FanoutRow[]): string {
  const out: string[] = [];
  for (const { subject, peers } of COMPARISONS) {
    const lines: (string | number)[][] = [];
    for (const s of rows.filter((r) => r.target === subject)) {
      for (const peer of peers) {
        const p = rows.find((r) => r.target === peer && r.viewers === s.viewers && r.rate === s.rate);
        if (!p) continue;
        lines.push([peer, s.viewers, s.rate, ratio(s.cpuPerMillion, p.cpuPerMillion), ratio(s.p99, p.p99), ratio(s.p50, p.p50), ratio(s.deliveriesPerSec, p.deliveriesPerSec), `${s.losses} / ${p.losses}`]);
      }
    }
    if (lines.length === 0) continue;
    out.push(`${subject} ÷ peer (below 1.00x is better for ${subject}):\n\n` + table(['peer', 'viewers', 'rate msg/s', 'CPU / M deliveries', 'p99', 'p50', 'deliveries/s (higher is better)', `lost (${subject} / peer)`], lines));
  }
  return out.join('\n\n');
}

function idleTables(rows: IdleRow[]): string {
  const main = table(
    ['target', 'nodes', 'connections', 'RSS before MiB', 'RSS after MiB', 'RSS/conn KiB', 'connect CPU s / 1k', 'idle CPU ms/s / 1k', 'note'],
    rows.map((r) => [r.target, r.nodes, ofTotal(r.subscribed, r.connections), (r.rssBefore / 2 ** 20).toFixed(1), (r.rssAfter / 2 ** 20).toFixed(1), kib(r.bytesPerConn), r.connectCpuPerK, r.idleCpuMsPerK ?? '–', r.error ?? '']),
  );
  const lines: (string | number)[][] = [];
  for (const { subject, peers } of COMPARISONS) {
    for (const s of rows.filter((r) => r.target === subject)) {
      for (const peer of peers) {
        const p = rows.find((r) => r.target === peer && r.connections === s.connections);
        if (!p) continue;
        lines.push([`${subject} ÷ ${peer}`, s.connections, ratio(s.bytesPerConn, p.bytesPerConn), ratio(s.idleCpuMsPerK ?? NaN, p.idleCpuMsPerK ?? NaN)]);
      }
    }
  }
  return lines.length ? `${main}\n\n${table(['target', 'connections', 'RSS/conn ratio (lower is better)', 'idle CPU ratio (lower is better)'], lines)}` : main;
}

function stormTables(rows: StormRow[]): string {
  const main = table(
    ['target', 'nodes', 'new connections', 'connect+subscribe/s', 'failed', 'server CPU µs / connect', 'load CPU µs / connect',
      'subscribe msgs/s (on_message calls/s)', 'sending conns', 'server CPU ms / 1k msgs', 'load CPU ms / 1k msgs', 'note'],
    rows.map((r) => [r.target, r.nodes, r.connections, r.connectPerSec, r.connectFailed, r.cpuUsPerConnect ?? '–', r.loadCpuUsPerConnect ?? '–',
      r.messagesPerSec, r.messageConnections, r.cpuMsPerKMessages, r.loadCpuMsPerKMessages ?? '–', r.error ?? '']),
  );
  const lines: (string | number)[][] = [];
  for (const { subject, peers } of COMPARISONS) {
    const s = rows.find((r) => r.target === subject);
    if (!s) continue;
    for (const peer of peers) {
      const p = rows.find((r) => r.target === peer);
      if (p) {
        lines.push([`${subject} ÷ ${peer}`, ratio(s.connectPerSec, p.connectPerSec), ratio(s.cpuUsPerConnect ?? -1, p.cpuUsPerConnect ?? 0),
          ratio(s.messagesPerSec, p.messagesPerSec), ratio(s.cpuMsPerKMessages, p.cpuMsPerKMessages)]);
      }
    }
  }
  return lines.length
    ? `${main}\n\n${table(['target', 'connect/s (higher is better)', 'CPU / connect (lower is better)', 'msgs/s (higher is better)', 'CPU / msg (lower is better)'], lines)}`
    : main;
}

function apiTables(rows: ApiRow[]): string {
  const main = table(
    ['target', 'nodes', 'api', 'publishes', 'publishes/s', 'errors', 'deliveries', 'server CPU ms / 1k', 'note'],
    rows.map((r) => [r.target, r.nodes, r.api, r.requests, r.perSec, r.errors, r.deliveries, r.cpuMsPerKRequests, (r.error ?? r.firstError ?? '').replace(/[|\r\n]+/g, ' ').slice(0, 80)]),
  );
  const lines: (string | number)[][] = [];
  for (const { subject, peers } of COMPARISONS) {
    for (const s of rows.filter((r) => r.target === subject)) {
      for (const peer of peers) {
        const p = rows.find((r) => r.target === peer && r.api === s.api);
        if (p) lines.push([`${subject} ÷ ${peer}`, s.api, ratio(s.perSec, p.perSec), ratio(s.cpuMsPerKRequests, p.cpuMsPerKRequests)]);
      }
    }
  }
  return lines.length ? `${main}\n\n${table(['target', 'api', 'publishes/s (higher is better)', 'CPU / publish (lower is better)'], lines)}` : main;
}

function chatTables(rows: ChatRow[]): string {
  const main = table(
    ['target', 'nodes', 'members', 'rooms', 'rate says/s', 'says/s sent', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'out of order', 'server CPU s', 'CPU ms / 1k says', 'CPU s / M deliveries', 'load CPU s', 'others CPU s', 'note'],
    rows.map((r) => [
      r.target,
      r.nodes,
      ofTotal(r.joined, r.members),
      r.rooms,
      r.rate,
      r.saysPerSec,
      r.deliveriesPerSec,
      r.p50,
      r.p99,
      r.max,
      r.losses,
      r.outOfOrder,
      r.serverCpuS,
      r.cpuMsPerKSays,
      r.cpuPerMillion,
      r.loadCpuS,
      r.otherCpuS,
      stepNote(r, 'members'),
    ]),
  );
  // The capacity: the highest step a target held (p99 within the limit, nothing lost, in order); "≥"
  // when it held the ramp's last rate, which then says nothing of its limit.
  const targets = [...new Set(rows.map((r) => r.target))];
  const capacity = table(
    ['target', 'highest rate held, says/s', 'deliveries/s', 'p99 ms', 'CPU ms / 1k says', 'CPU s / M deliveries'],
    targets.map((target) => {
      const own = rows.filter((r) => r.target === target);
      const best = own.filter((r) => !r.stop).at(-1);
      if (!best) return [target, `none (${own[0]?.stop ?? 'no step'})`, '', '', '', ''];
      return [target, `${best === own.at(-1) ? '≥ ' : ''}${best.rate}`, best.deliveriesPerSec, best.p99, best.cpuMsPerKSays, best.cpuPerMillion];
    }),
  );
  const lines: (string | number)[][] = [];
  for (const { subject, peers } of COMPARISONS) {
    for (const s of rows.filter((r) => r.target === subject)) {
      for (const peer of peers) {
        const p = rows.find((r) => r.target === peer && r.rate === s.rate);
        if (p) lines.push([`${subject} ÷ ${peer}`, s.rate, ratio(s.cpuMsPerKSays, p.cpuMsPerKSays), ratio(s.cpuPerMillion, p.cpuPerMillion), ratio(s.p99, p.p99), `${s.losses} / ${p.losses}`]);
      }
    }
  }
  const ratios = table(['target', 'rate says/s', 'CPU / say (lower is better)', 'CPU / delivery', 'p99', 'lost (subject / peer)'], lines);
  return [main, capacity, ...(lines.length ? [ratios] : [])].join('\n\n');
}

function profileSection(profiles: ProfileSummary[]): string {
  return profiles
    .map((p) => {
      const head = `**${p.target}, ${p.scenario}** (${p.window}${p.note ? `; ${p.note}` : ''}); top self time:`;
      return `${head}\n\n${table(['#', 'function', 'where', 'self ms', '% of sampled'], p.top.map((e, i) => [i + 1, `\`${e.name}\``, e.where ? `\`${e.where}\`` : '', e.selfMs, e.percent]))}`;
    })
    .join('\n\n');
}

export function runSection(run: RunRecord): string {
  const m = run.machine;
  const parts = [
    `## Run \`${run.name}\`${run.quick ? ' (quick mode)' : ''}`,
    `- date: ${run.date}; took ${run.durationS} s; load average ${run.loadAverage?.[0] ?? '?'} at the start, ${run.loadAverage?.[1] ?? '?'} at the end (others' processes share the machine; see "others CPU s")\n- command: \`${run.command}\`\n- machine: ${m.cpus} CPUs (\`nproc\`), ${m.model}, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; open files ${m.fdLimit}`,
    `- targets: ${run.targets.map((t) => `\`${t.name}\`: ${t.description}`).join('; ')}`,
  ];
  if (run.hotVideo.length) parts.push(`### hot-video\n\nAll viewers on one video; the rate steps up until p99 passes 500 ms or a comment is lost.\n\n${fanoutTable(run.hotVideo)}\n\n${fanoutRatios(run.hotVideo)}`);
  if (run.manyVideos.length) parts.push(`### many-videos\n\nViewers spread over many videos; comments go to the videos in turn (rate = comments per second over all videos).\n\n${fanoutTable(run.manyVideos)}\n\n${fanoutRatios(run.manyVideos)}`);
  if (run.idle.length) parts.push(`### idle\n\nServer RSS (all its processes, redis-server included) after the subscribed viewers connected and settled, minus before, per connection; measured first, on a freshly started target (memory per connection is measured here only).\n\n${idleTables(run.idle)}`);
  if (run.storm.length) parts.push(`### subscribe-storm\n\n${stormTables(run.storm)}`);
  if (run.publishApi.length) parts.push(`### publish-api\n\nPublishes to 10 channels of 3 subscribers each, as fast as answered (HTTP pipelined on keep-alive connections; WebSocket API with 64 requests in flight per connection).\n\n${apiTables(run.publishApi)}`);
  if (run.chatRoom?.length) {
    const { members, rooms } = run.chatRoom[0];
    parts.push(
      `### chat-room\n\n${members} members in ${rooms} rooms; members say things to their own room at a fixed rate (open loop), stepping up until p99 passes 500 ms or a say is lost. ` +
        "Each say reaches every member of its room, the sender included. connmix-ts serves CONNMIX's quick-start `lua/examples/chat-room.lua` unchanged (on_message: json_decode, the answer to the sender, `mix.mesh.publish`); " +
        "Socket.IO: `socket.join(room)` and `io.to(room).emit` through its Redis adapter; raw-ws: a room map in Node. The second table is each target's highest step held (its capacity on this box, load included); the ratios compare steps of the same rate.\n\n" +
        chatTables(run.chatRoom),
    );
  }
  if (run.profiles.length) parts.push(`### CPU profile\n\n${profileSection(run.profiles)}`);
  if (run.failures.length) parts.push(`### Failures\n\n${run.failures.map((f) => `- ${f.replace(/\n/g, ' ').slice(0, 400)}`).join('\n')}`);
  return parts.join('\n\n');
}

export function resultsMarkdown(runs: RunRecord[], notes: string | null): string {
  return [
    '# connmix-ts benchmark results',
    'Generated by `bench/run.ts` from `bench/results.json`; the chart is `bench/p99-vs-rate.svg`.',
    HOW_TO_RUN.trim(),
    '![p99 latency against publish rate](p99-vs-rate.svg)',
    ...(notes ? [`## Notes\n\n${notes.trim()}`] : []),
    ...runs.map(runSection),
  ].join('\n\n') + '\n';
}
