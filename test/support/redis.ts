import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canListen, waitFor } from './helpers';

// Real redis-server processes on 127.0.0.1 for the mesh tests. Every wait is bounded; every process is
// ended by its pid (and, should a test crash, when this process exits).

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});


/** Runs redis-cli against 127.0.0.1:`port` and returns its output (bounded to 10 s). */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis-cli ${args.join(' ')}: ${stderr || error.message}`));
      else resolve(stdout.trim());
    });
  });
}

/** A port free on 127.0.0.1 whose cluster bus port (+10000) is free too, both below the ephemeral range. */
export async function freeRedisPort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 2_700);
    if ((await canListen(port)) && (await canListen(port + 10_000))) return port;
  }
  throw new Error('no free port pair for redis-server');
}

/** One redis-server process (no persistence) in its own folder. */
export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
  ) {}

  /** Starts redis-server on `port` (a free one by default) and waits until it answers PING. */
  static async start(options: { port?: number; args?: string[] } = {}): Promise<RedisServer> {
    const port = options.port ?? (await freeRedisPort());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-redis-'));
    const server = new RedisServer(port, dir, options.args ?? []);
    await server.restart();
    return server;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** (Re)starts the process on the same port and folder, waiting for PING. */
  async restart(): Promise<void> {
    if (this.child) throw new Error(`redis-server on ${this.port} is still running`);
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir,
        '--logfile', path.join(this.dir, 'redis.log'), ...this.args],
      { stdio: 'ignore' },
    );
    this.child = child;
    running.add(child);
    child.once('exit', () => {
      running.delete(child);
      if (this.child === child) this.child = null;
    });
    await waitFor(`redis-server on ${this.port} answers PING`, async () => (await redisCli(this.port, 'ping')) === 'PONG', 10_000);
  }

  /** SIGKILLs the process (a crash) and waits for it to exit. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGSTOPs the process: connections stay open, nothing is answered (a frozen or overloaded Redis). */
  freeze(): void {
    process.kill(this.pid as number, 'SIGSTOP');
  }

  /** SIGCONTs a frozen process: it answers, late, what it was sent meanwhile. */
  thaw(): void {
    process.kill(this.pid as number, 'SIGCONT');
  }

  /** Ends the process and removes its folder. */
  async stop(): Promise<void> {
    await this.signal('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** redis-cli against this server. */
  cli(...args: string[]): Promise<string> {
    return redisCli(this.port, ...args);
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    let timer: NodeJS.Timeout | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      timer = setTimeout(resolve, 5000);
    });
    process.kill(child.pid as number, signal);
    await exited;
    clearTimeout(timer);
  }
}

/** A Redis Cluster of `masters` masters, each with `replicas` replicas, on 127.0.0.1. */
export class RedisCluster {
  private constructor(readonly servers: RedisServer[]) {}

  /** Starts the processes, joins them with `redis-cli --cluster create`, waits until the cluster is ok. */
  static async start(options: { masters?: number; replicas?: number } = {}): Promise<RedisCluster> {
    const masters = options.masters ?? 3;
    const replicas = options.replicas ?? 0;
    const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000'];
    const servers: RedisServer[] = [];
    const cluster = new RedisCluster(servers);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) servers.push(await RedisServer.start({ args }));
      await new Promise<void>((resolve, reject) => {
        const addresses = servers.map((server) => server.address);
        execFile('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'],
          { timeout: 30_000 }, (error, _stdout, stderr) => (error ? reject(new Error(`cluster create: ${stderr || error.message}`)) : resolve()));
      });
      await cluster.waitHealthy();
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** Seed addresses for `engine.mesh.redis.addrs`. */
  get addrs(): string[] {
    return this.servers.map((server) => server.address);
  }

  /** The servers still running. */
  get alive(): RedisServer[] {
    return this.servers.filter((server) => server.pid !== undefined);
  }

  /** Waits until every running node says cluster_state:ok, knows the others, and replicas are in sync. */
  async waitHealthy(ms = 20_000): Promise<void> {
    await waitFor('redis cluster healthy', async () => {
      for (const server of this.alive) {
        const info = await server.cli('cluster', 'info');
        if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false;
        const replication = await server.cli('info', 'replication');
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false;
      }
      return true;
    }, ms, 100);
  }

  /** The running master that serves `key`'s slot, as one of the live nodes sees it. */
  async masterOf(key: string): Promise<RedisServer> {
    const probe = this.alive[0];
    const slot = Number(await probe.cli('cluster', 'keyslot', key));
    for (const line of (await probe.cli('cluster', 'nodes')).split('\n')) {
      const [, address, flags, , , , , , ...ranges] = line.split(' ');
      if (!flags.includes('master') || flags.includes('fail')) continue;
      const owns = ranges.some((range) => {
        const [from, to] = range.split('-').map(Number);
        return slot >= from && slot <= (to ?? from);
      });
      const port = Number(address.split('@')[0].split(':')[1]);
      const server = this.servers.find((candidate) => candidate.port === port);
      if (owns && server) return server;
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
  }
}

/** Runs `commands`, one per line, through one redis-cli connection to `server` (bounded to 10 s). */
function pipe(server: RedisServer, commands: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port)], { stdio: ['pipe', 'ignore', 'inherit'], timeout: 10_000 });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli exited with ${code}`))));
    child.stdin.end(`${commands.join('\n')}\n`);
  });
}

/** The slots `server` serves, as it says itself. */
export async function slotsOf(server: RedisServer): Promise<Set<number>> {
  const line = (await server.cli('cluster', 'nodes')).split('\n').find((candidate) => candidate.includes('myself')) ?? '';
  const slots = new Set<number>();
  for (const range of line.split(' ').slice(8)) {
    const [from, to] = range.split('-').map(Number);
    for (let slot = from; slot <= (to ?? from); slot++) slots.add(slot);
  }
  return slots;
}

/** Moves empty `slots` from master `from` to master `to` as a reshard does, telling every master in `all`. */
export async function moveSlots(slots: number[], from: RedisServer, to: RedisServer, all: RedisServer[]): Promise<void> {
  const [fromId, toId] = await Promise.all([from.cli('cluster', 'myid'), to.cli('cluster', 'myid')]);
  await pipe(to, slots.map((slot) => `cluster setslot ${slot} importing ${fromId}`));
  await pipe(from, slots.map((slot) => `cluster setslot ${slot} migrating ${toId}`));
  for (const server of [to, from, ...all.filter((other) => other !== from && other !== to)]) {
    await pipe(server, slots.map((slot) => `cluster setslot ${slot} node ${toId}`));
  }
}
