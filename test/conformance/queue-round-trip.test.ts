import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { TestClient, get, type Json } from '../support/helpers';
import { exampleEntry, startTwoNodes, type TwoNodes } from '../support/two-nodes';
import { PhpStyleConsumer, type ConsumerNode, type SdkMessage } from '../support/php-consumer';

// Reference 9.7: the queue round trip of the v1.0.1 quick start. lua/examples/queue-round-trip.lua pushes
// {frame = msg} to topic foo on the node that holds the client; a backend written like the PHP SDK's
// async client finds every node (GET /version, GET /v1/nodes), pops foo on each, and answers the
// client with mesh.send "received: <text>". Clients on both nodes of a two-node mesh.

let mesh: TwoNodes;
let consumer: PhpStyleConsumer | null = null;
/** How the backend answers an event; null: it does not (the test answers itself). */
let backend: ((node: ConsumerNode, event: Json) => void) | null = null;

/** The backend's requests still to be answered; `settled` checks that each one succeeded. */
let replies: Promise<SdkMessage>[] = [];

/** Waits for the backend's requests so far and checks that every one was answered {"s": true}. */
async function settled(): Promise<void> {
  const answers = await Promise.all(replies);
  replies = [];
  for (const answer of answers) assert.deepEqual(answer.frame.r, { s: true }, JSON.stringify(answer.frame));
}

/** The start-debug backend: `received: <frame data>`, sent on the connection of the node the event came from. */
const sameNode = (node: ConsumerNode, event: Json): void => {
  replies.push(node.meshSend(event.p.c, `received: ${event.p.d.frame.data}`));
};

before(async () => {
  mesh = await startTwoNodes(exampleEntry('queue-round-trip.lua', '/chat'));
});

after(async () => {
  consumer?.close();
  await mesh?.stop();
});

async function startConsumer(options: { numericClientIds?: boolean } = {}): Promise<PhpStyleConsumer> {
  consumer?.close();
  consumer = await PhpStyleConsumer.start({
    host: mesh.b.apiUrl,
    topics: ['foo'],
    numericClientIds: options.numericClientIds,
    onMessage: (node, message) => {
      if (message.type === 'event') backend?.(node, message.frame);
    },
  });
  return consumer;
}

test('9.7 queue round trip: discovery through one node finds both; "test" comes back as "received: test" on either node', async () => {
  const { a, b } = mesh;
  backend = sameNode;
  const sdk = await startConsumer();
  // The consumer was given node B only, and found both through /v1/nodes.
  assert.deepEqual(sdk.nodes.map((node) => node.id).sort(), [a.engine.broker.nodeId, b.engine.broker.nodeId].sort());
  assert.deepEqual((await get(`${b.apiUrl}/version`)).json, { apis: ['v1'] });

  for (const [node, text] of [[a, 'test'], [b, 'hello, world!']] as const) {
    const client = await TestClient.open(node.wsUrl);
    client.send(text);
    assert.equal((await client.next()).data, `received: ${text}`);
    // The event came from the node holding the client, on that node's connection, in the documented shape.
    const { node: from, frame } = await sdk.nextEvent();
    assert.equal(from.id, node.engine.broker.nodeId);
    assert.deepEqual(frame, {
      e: 'queue.pop',
      p: { n: node.engine.broker.nodeId, c: frame.p.c, t: 'foo', d: { frame: { type: 'text', data: text, finish: true } } },
      i: null,
    });
    assert.match(frame.p.c, /^\d{1,20}$/);
    client.close();
  }
  await settled();
});

test('9.7 queue round trip: a reply may go through any node (mesh.send is forwarded), and the client can be answered many times', async () => {
  const { a } = mesh;
  const sdk = await startConsumer();
  backend = (node, event) => {
    const other = sdk.nodes.find((candidate) => candidate !== node) as ConsumerNode;
    replies.push(other.meshSend(event.p.c, `via ${other.id}: ${event.p.d.frame.data}`));
    replies.push(node.meshSend(event.p.c, `via ${node.id}: ${event.p.d.frame.data}`));
  };
  const client = await TestClient.open(a.wsUrl);
  client.send('ping');
  const answers = [(await client.next()).data, (await client.next()).data].sort();
  assert.deepEqual(answers, sdk.nodes.map((node) => `via ${node.id}: ping`).sort());
  await settled();
  client.close();
});

test('9.7 queue round trip: items pushed while no backend consumes wait for it', async () => {
  consumer?.close();
  consumer = null;
  backend = sameNode;
  const client = await TestClient.open(mesh.b.wsUrl);
  client.send('early 1');
  client.send('early 2');
  assert.ok(await client.silentFor(150));
  await startConsumer();
  assert.equal((await client.next()).data, 'received: early 1');
  assert.equal((await client.next()).data, 'received: early 2');
  await settled();
  client.close();
});

test('10.5 queue events: n is the node id string that /v1/nodes lists, not a number', async () => {
  backend = sameNode;
  const sdk = await startConsumer();
  const { nodes } = (await get(`${mesh.a.apiUrl}/v1/nodes`)).json;
  const client = await TestClient.open(mesh.a.wsUrl);
  client.send('who');
  await client.next();
  const { frame } = await sdk.nextEvent();
  assert.equal(typeof frame.p.n, 'string');
  assert.equal(frame.p.n, mesh.a.engine.broker.nodeId);
  assert.ok(nodes.some((node: { id: string }) => node.id === frame.p.n));
  await settled();
  client.close();
});

test('PHP SDK wire format: client ids sent as JSON numbers (the SDK types them int) reach exactly that client', async () => {
  backend = null;
  const sdk = await startConsumer({ numericClientIds: true });
  // Connect a burst of clients so that some share a millisecond: their ids then differ only in the
  // low bits that a double cannot hold.
  for (let round = 0; round < 5; round++) {
    const clients = await Promise.all(Array.from({ length: 60 }, () => TestClient.open(mesh.a.wsUrl)));
    try {
      clients.forEach((client, k) => client.send(`k${k}`));
      const ids = new Map<string, number>();
      for (let k = 0; k < clients.length; k++) {
        const { frame } = await sdk.nextEvent();
        ids.set(frame.p.c, Number(frame.p.d.frame.data.slice(1)));
      }
      const target = [...ids.keys()].find((id) => BigInt(Number(id)).toString() !== id);
      if (target === undefined) continue;
      const answer = await sdk.node(mesh.a.engine.broker.nodeId).meshSend(target, 'only for you');
      assert.deepEqual(answer.frame.r, { s: true });
      const receiver = clients[ids.get(target) as number];
      assert.equal((await receiver.next(1000)).data, 'only for you');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(clients.filter((client) => client.received.length > 0).length, 0, 'nobody else got it');
      return;
    } finally {
      for (const client of clients) client.close();
    }
  }
  assert.fail('no two clients connected within one millisecond; cannot build an id a double cannot hold');
});

test('/ws/v1 errors have CONNMIX\'s documented shape {"E":{"c","m"},"i"} (no "r"), successes keep {"E":null,"r","i"}', async () => {
  backend = null;
  const sdk = await startConsumer();
  const node = sdk.node(mesh.a.engine.broker.nodeId);
  // The docs' example: this connection already consumes foo, so a second queue.pop is 202.
  const duplicate = await node.pop('foo');
  assert.equal(duplicate.type, 'error');
  assert.deepEqual(Object.keys(duplicate.frame).sort(), ['E', 'i']);
  assert.deepEqual(duplicate.frame, { E: { c: 202, m: duplicate.frame.E.m }, i: duplicate.frame.i });
  assert.equal(typeof duplicate.frame.E.m, 'string');
  assert.equal(typeof duplicate.frame.i, 'number');
  const unknown = await node.meshSend('1', 'nobody');
  assert.deepEqual(Object.keys(unknown.frame).sort(), ['E', 'i']);
  assert.equal(unknown.frame.E.c, 401);
  const published = await node.meshPublish('nobody', 'x');
  assert.equal(published.type, 'result');
  assert.deepEqual(published.frame, { E: null, r: { s: 0, f: 0 }, i: published.frame.i });
});
