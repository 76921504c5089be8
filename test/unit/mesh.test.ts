import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ClientIdGenerator, nodeNumberOf } from '../../src/mesh/ids';
import { judge } from '../../src/mesh/subscription-audit';
import { meshNode, TestSubscriber, busyFor, sample } from '../support/mesh-node';

// Mesh over a MemoryBroker and a Hub in this process: no servers, no sockets.

test('Mesh.publish fans out to the local subscribers and answers at once with s and f', async () => {
  const { mesh } = await meshNode();
  const [a, b, c] = [new TestSubscriber(mesh.nextClientId()), new TestSubscriber(mesh.nextClientId(), 'socket'), new TestSubscriber(mesh.nextClientId())];
  for (const conn of [a, b, c]) mesh.attach(conn);
  assert.equal(mesh.subscribe(a, ['room']), null);
  assert.equal(mesh.subscribe(b, ['room']), null);
  c.accepts = false;
  assert.equal(mesh.subscribe(c, ['room', 'other']), null);
  const answer = mesh.publish('room', Buffer.from('hello'), false);
  assert.deepEqual(answer, { s: 2, f: 1 }, 'the memory broker answers synchronously');
  assert.deepEqual([a.received, b.received, c.received], [['hello'], ['hello'], []]);
  assert.deepEqual(mesh.publish('nobody', Buffer.from('x'), false), { s: 0, f: 0 });
});

test('Mesh publish and send time the whole local delivery, clock started before the broker runs', async () => {
  const { mesh, metrics } = await meshNode();
  const SLOW_MS = 30;
  const slow = new TestSubscriber(mesh.nextClientId(), 'websocket', 0, () => busyFor(SLOW_MS));
  mesh.attach(slow);
  mesh.subscribe(slow, ['slow']);
  assert.deepEqual(mesh.publish('slow', Buffer.from('p'), false), { s: 1, f: 0 });
  assert.equal(mesh.send(slow.clientId, Buffer.from('s'), false), true);
  for (const op of ['publish', 'send']) {
    assert.equal(await sample(metrics, new RegExp(`^connmix_broker_duration_seconds_count\\{op="${op}"`)), 1, op);
    const sum = await sample(metrics, new RegExp(`^connmix_broker_duration_seconds_sum\\{op="${op}"`));
    assert.ok(sum >= SLOW_MS / 1000, `${op} recorded ${sum} s for a delivery of at least ${SLOW_MS} ms`);
  }
  assert.equal(await sample(metrics, /^connmix_engine_servers_send_duration_seconds_count\{protocol="websocket",scenario="local"/), 2);
});

test('Mesh.send: true for a local connection, false for one not here; a client_id of another node counts as forwarded', async () => {
  const { mesh, metrics } = await meshNode();
  const conn = new TestSubscriber(mesh.nextClientId());
  mesh.attach(conn);
  assert.equal(mesh.send(conn.clientId, Buffer.from('hi'), false), true);
  assert.deepEqual(conn.received, ['hi']);
  const elsewhere = new ClientIdGenerator(7).next();
  assert.equal(nodeNumberOf(elsewhere), 7);
  assert.equal(mesh.send(elsewhere, Buffer.from('x'), false), false);
  assert.equal(await sample(metrics, /^connmix_engine_servers_send_duration_seconds_count\{protocol="websocket",scenario="local"/), 1);
  assert.equal(await sample(metrics, /^connmix_engine_servers_send_duration_seconds_count\{protocol="websocket",scenario="forward"/), 1);
  mesh.detach(conn);
  assert.equal(mesh.send(conn.clientId, Buffer.from('gone'), false), false);
  assert.deepEqual(conn.received, ['hi']);
});

test('Mesh.call runs conn.call functions on the local connection, and names a client that is not here', async () => {
  const { mesh } = await meshNode();
  const conn = new TestSubscriber(mesh.nextClientId());
  mesh.attach(conn);
  assert.equal(mesh.call(conn.clientId, 'set_context_value', ['room', 'r1']), null);
  assert.equal(conn.context.get('room'), 'r1');
  assert.equal(mesh.call(conn.clientId, 'subscribe', ['a', 'b']), null);
  assert.deepEqual([...conn.channels.keys()].sort(), ['a', 'b']);
  assert.deepEqual(mesh.count('a'), { n: 1, f: 0 });
  assert.equal(mesh.call(conn.clientId, 'unsubscribe', ['a']), null);
  assert.deepEqual(mesh.count('a'), { n: 0, f: 0 });
  assert.equal(mesh.call('123', 'set_context', [{}]), 'client 123 not found or gone');
});

test('Mesh.count is exact on one node; detach forgets the connection and its subscriptions', async () => {
  const { mesh, hub } = await meshNode();
  const conns = Array.from({ length: 3 }, () => new TestSubscriber(mesh.nextClientId()));
  for (const conn of conns) {
    mesh.attach(conn);
    mesh.subscribe(conn, ['v']);
  }
  assert.deepEqual(mesh.count('v'), { n: 3, f: 0 });
  mesh.detach(conns[0]);
  assert.deepEqual(mesh.count('v'), { n: 2, f: 0 });
  assert.equal(hub.connection(conns[0].clientId), undefined);
  mesh.unsubscribe(conns[1], ['v']);
  assert.deepEqual(mesh.count('v'), { n: 1, f: 0 });
  assert.equal(mesh.subscribe(conns[2], ['bad channel']), 'invalid channel "bad channel": channels cannot contain spaces');
});

test('Mesh.ready follows the node serving and its broker; nodes lists this node; client ids carry its number', async () => {
  const { mesh, broker } = await meshNode();
  assert.equal(mesh.ready(), false, 'not ready before the node serves');
  mesh.setServing(true);
  assert.equal(mesh.ready(), true);
  assert.deepEqual(mesh.nodes(), [{ id: broker.nodeId, api_server: '127.0.0.1:1' }]);
  const ids = Array.from({ length: 100 }, () => mesh.nextClientId());
  assert.equal(new Set(ids).size, 100);
  assert.ok(ids.every((id) => nodeNumberOf(id) === broker.nodeNumber));
  mesh.setServing(false);
  assert.equal(mesh.ready(), false, 'a stopping node is not ready');
  mesh.setServing(true);
  await broker.stop();
  assert.equal(mesh.ready(), false, 'nor one whose broker is gone');
});

test('the subscription audit reads a CLIENT LIST line: the connection by id and name, then its count', () => {
  // As Redis 7.0.15 writes it, and as a Redis before 7.0.3 did (no ssub=).
  const line = 'id=7 addr=127.0.0.1:4711 laddr=127.0.0.1:6379 fd=9 name=connmix-sub-x age=3 idle=0 flags=P db=0 sub=3 psub=0 ssub=0 multi=-1 cmd=subscribe user=default redir=-1 resp=2\n';
  const older = 'id=7 addr=127.0.0.1:4711 fd=9 name=connmix-sub-x age=3 idle=0 flags=P db=0 sub=0 psub=0 multi=-1 cmd=ssubscribe\n';
  assert.deepEqual(judge(line, 'connmix-sub-x', 'sub', 3), { verdict: 'ok', held: 3 });
  assert.deepEqual(judge(line, 'connmix-sub-x', 'sub', 4), { verdict: 'missing', held: 3 });
  assert.deepEqual(judge(line, 'connmix-sub-x', 'sub', 2), { verdict: 'extra', held: 3 });
  assert.deepEqual(judge(line, 'connmix-sub-x', 'ssub', 1), { verdict: 'missing', held: 0 });
  // No such client (a Redis restarted unseen), or the id is another client's now.
  assert.deepEqual(judge('', 'connmix-sub-x', 'sub', 3), { verdict: 'gone', held: null });
  assert.deepEqual(judge(line, 'connmix-sub-y', 'sub', 3), { verdict: 'gone', held: null });
  assert.deepEqual(judge(line.replace('name=connmix-sub-x', 'name='), 'connmix-sub-x', 'sub', 3), { verdict: 'gone', held: null });
  // A server that does not count shard channels: only the connection itself is checked.
  assert.deepEqual(judge(older, 'connmix-sub-x', 'ssub', 5), { verdict: 'ok', held: null });
  // SETNAME was refused: the id alone identifies it.
  assert.deepEqual(judge(line.replace('name=connmix-sub-x', 'name='), '', 'sub', 3), { verdict: 'ok', held: 3 });
});
