import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, get, post, withTimeout, type Json, waitFor } from './support/helpers';
import { RedisServer } from './support/redis';
import { viewer, meshYaml } from './support/mesh';
import { startEngine, seedEngineFolder, type EngineFolder } from './support/engine-process';

// `connmix engine -p 2`: two worker processes on the same ports, each a node of the mesh over Redis.
let redis: RedisServer;
before(async () => {
  redis = await RedisServer.start();
});
after(async () => {
  await redis?.stop();
});

/** A folder with the shipped barrage entry and a yaml for a mesh over the suite's Redis under `prefix`. */
function workerSetup(prefix: string, engineYaml = ''): Promise<EngineFolder> {
  return seedEngineFolder({ engineYaml: meshYaml([redis.address], prefix) + engineYaml });
}

test('engine -p 2 serves one port from two mesh nodes, replaces a dead worker, and stops on SIGTERM', async () => {
  const { file, wsPort, apiPort } = await workerSetup('w1:');
  const engine = startEngine(file, 2);
  try {
    const pids = await waitFor('both workers listening', () => {
      const found = [...engine.output().matchAll(/worker \d \(pid (\d+)\): api server listening/g)].map((m) => Number(m[1]));
      return found.length === 2 ? found : null;
    }, 20_000);
    const api = `http://127.0.0.1:${apiPort}`;
    await waitFor('two nodes registered', async () => (await get(`${api}/v1/nodes`)).json.nodes?.length === 2);
    const viewers = await Promise.all(Array.from({ length: 8 }, () => viewer(`ws://127.0.0.1:${wsPort}/barrage-videos`, 100001)));
    const d = '{"event":"@video","data":{"msg":"both workers"}}';
    assert.deepEqual((await post(`${api}/v1/mesh/publish`, { c: 'video:100001', d })).json, { E: null, r: { s: 8, f: 0 } });
    for (const v of viewers) assert.equal((await v.next()).data, d);
    const nodes = (await get(`${api}/v1/nodes`)).json.nodes as Array<{ id: string }>;
    assert.equal(new Set(nodes.map((n) => n.id)).size, 2);
    // A killed worker is replaced; its viewers are gone, the other worker's keep receiving (so the
    // primary had handed connections to both workers).
    process.kill((pids as number[])[0], 'SIGKILL');
    const killed = (pids as number[])[0];
    await waitFor('worker replaced', () => new RegExp(`worker \\d \\(pid ${killed}\\) exited \\(SIGKILL\\), restarting`).test(engine.output()), 10_000);
    await waitFor('replacement listening', () => [...engine.output().matchAll(/api server listening/g)].length === 3, 20_000);
    const after = await waitFor('publish after the replacement', async () => {
      const r = (await post(`${api}/v1/mesh/publish`, { c: 'video:100001', d: 'still' })).json.r;
      return r && r.s > 0 && r.s < 8 ? r : null;
    });
    assert.equal(after.f, 0);
    for (const v of viewers) v.close();

    engine.child.kill('SIGTERM');
    assert.equal(await engine.exited, 0);
  } finally {
    engine.child.kill('SIGKILL');
  }
});

test('engine -p 2 with a Lua entry that does not compile stops with code 2 instead of restarting forever', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'connmix-workers-'));
  fs.mkdirSync(path.join(dir, 'lua'));
  fs.writeFileSync(path.join(dir, 'lua/entry.websocket.lua'), 'function on_message(\n');
  fs.writeFileSync(path.join(dir, 'connmix.yaml'), `
logging: { filename: "" }
engine:
  apiServer: { port: ${await freePort()}, bind: 127.0.0.1 }
  mesh: { broker: redis, redis: { addrs: ["${redis.address}"], prefix: "w2:" } }
  servers:
    - { port: ${await freePort()}, bind: 127.0.0.1, entry: lua/entry.websocket.lua }
`);
  const engine = startEngine(path.join(dir, 'connmix.yaml'), 2);
  try {
    const code = await withTimeout(engine.exited, 15_000, 'the engine did not stop');
    assert.equal(code, 2, engine.output());
    assert.match(engine.output(), /cannot start \(exit code 2\)/);
  } finally {
    engine.child.kill('SIGKILL');
  }
});

test('SIGHUP replaces the workers one at a time while the others keep serving', async () => {
  const { file, wsPort, apiPort } = await workerSetup('w3:');
  const engine = startEngine(file, 2);
  const api = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor('both workers ready', async () => (await get(`${api}/v1/nodes`).catch(() => ({ json: {} as Json }))).json.nodes?.length === 2, 20_000);
    const before = new Set(((await get(`${api}/v1/nodes`)).json.nodes as Array<{ id: string }>).map((n) => n.id));
    let publishes = 0;
    const failures: string[] = [];
    let rolling = true;
    const trafficDeadline = Date.now() + 60_000;
    const traffic = (async () => {
      while (rolling && Date.now() < trafficDeadline) {
        try {
          // A kept-alive connection to the worker being replaced can be closed just as a request goes out
          // on it (the request was never read); clients retry that on a new connection, as this does.
          const publish = () => post(`${api}/v1/mesh/publish`, { c: 'video:1', d: 'x' });
          const answer = await publish().catch((error: Error & { cause?: { code?: string } }) => {
            if (error.cause?.code === 'UND_ERR_SOCKET') return publish();
            throw error;
          });
          if (answer.json.E !== null) failures.push(JSON.stringify(answer.json));
          // A viewer that lands on the worker being replaced is closed with 1001 and reconnects, as
          // real clients do; it must get in on that second try.
          const url = `ws://127.0.0.1:${wsPort}/barrage-videos`;
          const viewerDuringRoll = await viewer(url, 1).catch(() => viewer(url, 1));
          viewerDuringRoll.close();
        } catch (error) {
          failures.push(`${(error as Error).message} ${(error as { cause?: { code?: string } }).cause?.code ?? ''}`);
        }
        publishes++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    engine.child.kill('SIGHUP');
    try {
      await waitFor('rolling restart done', () => /rolling restart done/.test(engine.output()), 45_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${engine.output().slice(-4000)}`, { cause: error });
    } finally {
      rolling = false;
      await traffic;
    }
    // How many rounds fit in the roll depends on how fast the machine replaces a worker (18 to hundreds
    // were seen): what matters is that traffic ran across it, at least a round per worker replaced.
    assert.ok(publishes >= 2, `only ${publishes} publishes during the roll`);
    assert.deepEqual(failures, [], `${failures.length} of ${publishes} rounds failed during the roll`);
    const after = await waitFor('two new nodes', async () => {
      const ids = ((await get(`${api}/v1/nodes`)).json.nodes as Array<{ id: string }>).map((n) => n.id);
      return ids.length === 2 && ids.every((id) => !before.has(id)) ? ids : null;
    }, 10_000);
    assert.equal(after?.length, 2);
    engine.child.kill('SIGTERM');
    assert.equal(await engine.exited, 0);
  } finally {
    engine.child.kill('SIGKILL');
  }
});

test('workers never outlive their primary, even when it is killed hard', async () => {
  const { file } = await workerSetup('w4:');
  const engine = startEngine(file, 2);
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  let workers: number[] = [];
  try {
    workers = (await waitFor('both workers listening', () => {
      const found = [...engine.output().matchAll(/worker \d \(pid (\d+)\): api server listening/g)].map((m) => Number(m[1]));
      return found.length === 2 ? found : null;
    }, 20_000)) as number[];
    engine.child.kill('SIGKILL');
    await waitFor('workers gone', () => workers.every((pid) => !alive(pid)), 10_000);
  } finally {
    engine.child.kill('SIGKILL');
    for (const pid of workers) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
});

test('engine.maxConnections with -p 2: each worker holds its half, so the engine holds the whole', async () => {
  const { file, wsPort, apiPort } = await workerSetup('w5:', '  maxConnections: 4\n');
  const engine = startEngine(file, 2);
  try {
    await waitFor('both workers listening', () => [...engine.output().matchAll(/api server listening/g)].length === 2, 20_000);
    await waitFor('two nodes registered', async () => (await get(`http://127.0.0.1:${apiPort}/v1/nodes`)).json.nodes?.length === 2);
    const url = `ws://127.0.0.1:${wsPort}/barrage-videos`;
    // One at a time, so that the primary hands them to the workers in turn.
    const viewers = [];
    for (let i = 0; i < 4; i++) viewers.push(await viewer(url, 7));
    await assert.rejects(viewer(url, 7), /HTTP 503/);
    assert.deepEqual((await post(`http://127.0.0.1:${apiPort}/v1/mesh/publish`, { c: 'video:7', d: 'x' })).json.r, { s: 4, f: 0 });
    for (const v of viewers) v.close();
    engine.child.kill('SIGTERM');
    assert.equal(await engine.exited, 0);
  } finally {
    engine.child.kill('SIGKILL');
  }
});
