/**
 * Soak test (not part of CI): `npm run soak -- [--seconds 600] [--viewers 2000] [--videos 50] [--rate 20]`.
 * Two engine nodes over a redis-server, all started here on 127.0.0.1 and stopped by pid at the end.
 * For the whole run viewers keep connecting and leaving (about 5 % of them a second), each subscribing to
 * a random video with the seed's message, while a backend publishes to random videos through either
 * node's API. Reported: node memory after warm-up and at the end, API and viewer errors, and losses
 * (for every publish, the subscribers it reported minus the copies that arrived).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { numberOption } from './lib/options';

const ROOT = path.resolve(__dirname, '..', '..');

const SECONDS = numberOption('seconds', 600);
const VIEWERS = numberOption('viewers', 2000);
const VIDEOS = numberOption('videos', 50);
const RATE = numberOption('rate', 20);
const CHURN_PER_SECOND = Math.max(1, Math.round(VIEWERS * 0.05));

const children: ChildProcess[] = [];
function stopAll(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function rssKb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Node {
  pid: number;
  ws: string;
  api: string;
}

async function startNodes(dir: string, redisPort: number): Promise<Node[]> {
  fs.mkdirSync(path.join(dir, 'lua'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), path.join(dir, 'lua/entry.websocket.lua'));
  const nodes: Node[] = [];
  for (let i = 0; i < 2; i++) {
    const [wsPort, apiPort] = [await freePort(), await freePort()];
    const file = path.join(dir, `node${i}.yaml`);
    fs.writeFileSync(file, `logging: { level: warn, filename: "" }
engine:
  apiServer: { port: ${apiPort}, bind: 127.0.0.1 }
  mesh: { broker: redis, redis: { addrs: ["127.0.0.1:${redisPort}"], prefix: "soak:" } }
  servers:
    - { port: ${wsPort}, bind: 127.0.0.1, entry: lua/entry.websocket.lua, options: [{ name: path, value: /barrage-videos }], maxConnections: 0 }
`);
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/connmix.js'), 'engine', '-f', file], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    nodes.push({ pid: child.pid as number, ws: `ws://127.0.0.1:${wsPort}/barrage-videos`, api: `http://127.0.0.1:${apiPort}` });
  }
  for (const node of nodes) await waitFor(`node ${node.api} ready`, async () => (await fetch(`${node.api}/readyz`)).ok);
  return nodes;
}

/** Copies received per publish sequence number, and what the API said it reached. */
const received = new Map<number, number>();
const reported = new Map<number, number>();
let viewerErrors = 0;
/** What went wrong for viewers, by kind (`close 1011`, `error ECONNRESET`, ...). */
const viewerProblems = new Map<string, number>();
function viewerProblem(kind: string): void {
  viewerErrors++;
  viewerProblems.set(kind, (viewerProblems.get(kind) ?? 0) + 1);
}
let apiErrors = 0;
let connected = 0;

class Viewer {
  private readonly ws: WebSocket;
  /** Set when the soak itself closes the viewer: errors after that are not the engine's. */
  private leaving = false;

  constructor(url: string, video: number) {
    this.ws = new WebSocket(url);
    this.ws.on('open', () => this.ws.send(JSON.stringify({ op: 'subscribe', channel: `${video}@video` })));
    this.ws.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text === '{"result":true}') {
        connected++;
        return;
      }
      const seq = (JSON.parse(text) as { data: { s: number } }).data.s;
      received.set(seq, (received.get(seq) ?? 0) + 1);
    });
    this.ws.on('error', (error: NodeJS.ErrnoException) => {
      if (!this.leaving) viewerProblem(`error ${error.code ?? error.message}`);
    });
    this.ws.on('close', (code, reason) => {
      if (!this.leaving && code !== 1000) viewerProblem(`close ${code} ${reason.toString()}`.trim());
    });
  }

  close(): void {
    this.leaving = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    else this.ws.terminate();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-soak-'));
  const redisPort = await freePort();
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  children.push(redis);
  const nodes = await startNodes(dir, redisPort);
  const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)];
  const viewers: Viewer[] = [];
  const spawnViewer = () => viewers.push(new Viewer(pick(nodes).ws, 1 + Math.floor(Math.random() * VIDEOS)));
  for (let i = 0; i < VIEWERS; i++) spawnViewer();
  await waitFor('viewers subscribed', async () => connected >= VIEWERS * 0.99, 60_000);
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const rssStart = nodes.map((node) => rssKb(node.pid));
  console.log(`soak: ${SECONDS} s, ${VIEWERS} viewers on ${VIDEOS} videos, ${CHURN_PER_SECOND} leave and join a second, ${RATE} publishes a second; RSS after warm-up ${rssStart.join(' / ')} kB`);

  let seq = 0;
  const publisher = setInterval(() => {
    const mine = ++seq;
    const node = pick(nodes);
    const d = JSON.stringify({ event: '@video', data: { s: mine, t: Date.now(), p: 'x'.repeat(100) } });
    fetch(`${node.api}/v1/mesh/publish`, { method: 'POST', body: JSON.stringify({ c: `video:${1 + (mine % VIDEOS)}`, d }) })
      .then((response) => response.json() as Promise<{ E: unknown; r: { s: number } }>)
      .then((answer) => (answer.E === null ? reported.set(mine, answer.r.s) : apiErrors++), () => apiErrors++);
  }, 1000 / RATE);
  const churn = setInterval(() => {
    for (let i = 0; i < CHURN_PER_SECOND; i++) {
      const index = Math.floor(Math.random() * viewers.length);
      viewers[index].close();
      viewers.splice(index, 1);
      spawnViewer();
    }
  }, 1000);
  const started = Date.now();
  while (Date.now() - started < SECONDS * 1000) {
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const kb = nodes.map((node) => rssKb(node.pid));
    console.log(`soak: ${Math.round((Date.now() - started) / 1000)} s, ${seq} published, RSS ${kb.join(' / ')} kB, api errors ${apiErrors}, viewer errors ${viewerErrors}`);
  }
  clearInterval(publisher);
  clearInterval(churn);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  // A viewer that joined or left while a comment was on its way may or may not get it: a publish's
  // reported count can be off by the churn, in either direction. Losses are what stays short after that.
  let expected = 0;
  let got = 0;
  let short = 0;
  for (const [s, count] of reported) {
    const copies = received.get(s) ?? 0;
    expected += count;
    got += copies;
    if (copies < count - CHURN_PER_SECOND) short++;
  }
  for (const viewer of viewers) viewer.close();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const rssEnd = nodes.map((node) => rssKb(node.pid));
  const summary = {
    date: new Date().toISOString(),
    command: `npm run soak -- --seconds ${SECONDS} --viewers ${VIEWERS} --videos ${VIDEOS} --rate ${RATE}`,
    published: seq,
    answered: reported.size,
    apiErrors,
    viewerErrors,
    viewerProblems: Object.fromEntries(viewerProblems),
    deliveriesReported: expected,
    deliveriesReceived: got,
    publishesShortBeyondChurn: short,
    rssStartKb: rssStart,
    rssEndKb: rssEnd,
  };
  console.log(JSON.stringify(summary, null, 2));
  fs.appendFileSync(path.join(ROOT, 'bench', 'SOAK.md'), `\n## ${summary.date}\n\n\`${summary.command}\`\n\n\`\`\`json\n${JSON.stringify(summary, null, 2)}\n\`\`\`\n`);
  stopAll();
  process.exit(apiErrors + viewerErrors + short === 0 ? 0 : 1);
}

main().catch((error) => {
  console.error(error);
  stopAll();
  process.exit(1);
});
