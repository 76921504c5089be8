import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { decode, encodePublish, encodeSend, Kind } from '../src/mesh/envelope';
import { startNode, post, get, metric, type TestNode, sleep, waitFor } from './support/helpers';
import { RedisServer } from './support/redis';
import { meshYaml, viewer } from './support/mesh';
import { startListening, seedEngineFolder } from './support/engine-process';

// What an answer means when part of the mesh stalls: a request that could not be carried out by its
// deadline is dropped by the node that gets it late, so an `E` or an `f` is not followed by a late
// delivery (and a backend that retries does not cause a duplicate); `/readyz` says when Redis stalls.

/** Past the default reply timeout (2 s): a request held this long is past its deadline. */
const LATE_MS = 3500;

test('envelopes: a deadline rides in the kind byte and the header; one without a deadline reads as none', () => {
  const payload = Buffer.from('{"msg":"hi"}');
  const timed = decode(encodePublish('node-a', 7, false, payload, 1_767_225_600_123));
  assert.deepEqual(timed, { kind: Kind.Publish, binary: false, request: 7, origin: 'node-a', clientId: '', payload, deadline: 1_767_225_600_123 });
  const plain = encodePublish('node-a', 8, true, payload);
  assert.equal(plain[0], Kind.Publish, 'no deadline: the format of nodes built before deadlines');
  assert.deepEqual(decode(plain), { kind: Kind.Publish, binary: true, request: 8, origin: 'node-a', clientId: '', payload, deadline: 0 });
  const send = decode(encodeSend('node-b', 9, '1234567890123456789', false, payload, 42));
  assert.deepEqual(send, { kind: Kind.Send, binary: false, request: 9, origin: 'node-b', clientId: '1234567890123456789', payload, deadline: 42 });
  // Cut inside the deadline: not ours.
  assert.equal(decode(encodePublish('node-a', 7, false, Buffer.alloc(0), 1_767_225_600_123).subarray(0, 10)), null);
});

test('Redis frozen: publishes answer E saying other nodes are unknown, /readyz turns 503, and the copies Redis hands over late are dropped', async () => {
  const redis = await RedisServer.start();
  const nodes: TestNode[] = [];
  try {
    nodes.push(await startNode({ engineYaml: meshYaml([redis.address], 'h1:') }), await startNode({ engineYaml: meshYaml([redis.address], 'h1:') }));
    const [a, b] = nodes;
    const viewers = [await viewer(a.wsUrl, 9), await viewer(b.wsUrl, 9)];
    assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:9', d: 'before' })).json, { E: null, r: { s: 2, f: 0 } });
    for (const client of viewers) assert.equal((await client.next(20_000)).data, 'before');

    redis.freeze();
    await waitFor('node A not ready while Redis does not answer', async () => (await get(`${a.apiUrl}/readyz`)).status === 503, 20_000, 200);
    await waitFor('node B not ready either', async () => (await get(`${b.apiUrl}/readyz`)).status === 503, 20_000, 200);
    for (let i = 0; i < 5; i++) {
      const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:9', d: `frozen ${i}` });
      assert.equal(answer.json.E?.c, 500, JSON.stringify(answer.json));
      assert.match(answer.json.E.m, /\(delivered on this node: s=1, f=0; on other nodes unknown: a node delivers it only if it gets it within 2000 ms, later copies are dropped\)$/);
      // Node A's own viewer got it: local delivery needs no Redis.
      assert.equal((await viewers[0].next(20_000)).data, `frozen ${i}`);
    }
    for (const node of nodes) assert.equal((await get(`${node.apiUrl}/healthz`)).status, 200);
    // Frozen past every deadline, then thawed: Redis hands node B the five publishes it held.
    await sleep(LATE_MS);
    redis.thaw();
    await waitFor('node B dropped the five late copies', async () => (await metric(b.apiUrl, /^connmix_mesh_expired_total\b/)) === 5, 20_000, 200);
    assert.ok(b.logs.some((line) => line.includes('mesh: dropped a request that arrived after its deadline')));
    for (const node of nodes) await waitFor('ready again', async () => (await get(`${node.apiUrl}/readyz`)).status === 200, 20_000, 200);

    // The next comment is the first one node B's viewer gets after "before": none of the late ones.
    await waitFor('both nodes count their viewer again', async () => {
      const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:9', d: 'probe' });
      return answer.json.E === null && answer.json.r.s === 2;
    }, 20_000, 200);
    assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:9', d: 'after' })).json, { E: null, r: { s: 2, f: 0 } });
    const got: string[] = [];
    while (got.at(-1) !== 'after') got.push((await viewers[1].next(20_000)).data);
    assert.deepEqual(got.filter((data) => data !== 'probe'), ['after']);
    for (const client of viewers) assert.equal(client.ws.readyState, WebSocket.OPEN);
    for (const client of viewers) client.close();
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis.stop();
  }
});

test('a frozen peer node: the publish counts it failed (f=1), and what it gets after its thaw, too late, it drops', async () => {
  const redis = await RedisServer.start();
  const a = await startNode({ engineYaml: meshYaml([redis.address], 'h2:') });
  const { file, wsUrl: peerWs, apiUrl: peerApi } = await seedEngineFolder({ engineYaml: meshYaml([redis.address], 'h2:') });
  const peer = await startListening(file);
  try {
    await waitFor('peer ready', async () => (await get(`${peerApi}/readyz`)).status === 200, 20_000, 200);
    const viewers = [await viewer(a.wsUrl, 10), await viewer(peerWs, 10)];
    await waitFor('both nodes count their viewer', async () => (await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:10', d: 'probe' })).json.r?.s === 2, 20_000, 200);

    process.kill(peer.child.pid as number, 'SIGSTOP');
    for (let i = 0; i < 3; i++) {
      // Redis hands the frozen peer its copy (it sits in the peer's socket); the peer never answers.
      const answer = await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:10', d: `while frozen ${i}` });
      assert.deepEqual(answer.json, { E: null, r: { s: 1, f: 1 } });
    }
    assert.equal((await get(`${a.apiUrl}/readyz`)).status, 200, 'Redis answers: node A is ready');
    await sleep(LATE_MS);
    process.kill(peer.child.pid as number, 'SIGCONT');

    await waitFor('the peer dropped the three late copies', async () => (await metric(peerApi, /^connmix_mesh_expired_total\b/)) === 3, 20_000, 200);
    assert.equal(peer.child.exitCode, null);
    assert.equal((await get(`${peerApi}/healthz`)).status, 200);
    await waitFor('both nodes count their viewer again', async () => (await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:10', d: 'probe' })).json.r?.s === 2, 20_000, 200);
    assert.deepEqual((await post(`${a.apiUrl}/v1/mesh/publish`, { c: 'video:10', d: 'after' })).json, { E: null, r: { s: 2, f: 0 } });
    const got: string[] = [];
    while (got.at(-1) !== 'after') got.push((await viewers[1].next(20_000)).data);
    assert.deepEqual(got.filter((data) => data !== 'probe'), ['after']);
    for (const client of viewers) client.close();
  } finally {
    peer.child.kill('SIGCONT');
    peer.child.kill('SIGKILL');
    await peer.exited;
    await a.stop();
    await redis.stop();
  }
});
