import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, TestClient, freePort, post, waitFor } from './support/helpers';
import { AuthServer } from './support/two-nodes';
import { assertHealthy, residentBytes, seedEngineFolder, startListening, stopEngine, peakWhile, mib } from './support/engine-process';

// While a connection's hook waits, the node reads no more of that connection: what the client sends
// meanwhile waits in the client (bounded node memory), and is handled in order once the hook is done.
// An engine in a process of its own, so that its memory is its own.

test('message-center: a client queuing 1 MB messages behind its waiting auth hook is not read further; memory stays bounded, others are served, nothing is lost', async () => {
  // The business auth endpoint: the flooder's token is held until released, the other answers at once.
  const auth = await AuthServer.start();
  const { file, apiUrl } = await seedEngineFolder();
  const port = await freePort();
  fs.copyFileSync(path.join(ROOT, 'lua/examples/message-center.lua'), path.join(path.dirname(file), 'lua/message-center.lua'));
  // A second server beside the barrage one, running the example unchanged.
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8') + `    - port: ${port}
      bind: 127.0.0.1
      options: [{ name: path, value: /message-center }, { name: auth_url, value: "${auth.url}" }]
      entry: lua/message-center.lua
      byteCodeExpires: 0
      maxMessagesPerSecond: 0
`);
  const engine = await startListening(file);
  const url = `ws://127.0.0.1:${port}/message-center`;
  try {
    const pid = engine.child.pid as number;
    const other = await TestClient.open(url);
    other.send('{"op":"auth","token":"t1002"}');
    assert.equal(await other.request('{"op":"subscribe","channel":"@user"}'), '{"result":true}');
    const flooder = await TestClient.open(url);
    flooder.send('{"op":"auth","token":"held"}');
    await waitFor('the auth hook waits', () => auth.heldCount === 1);
    const before = residentBytes(pid);
    const padding = 'x'.repeat(1_000_000);
    const MESSAGES = 150;
    for (let i = 0; i < MESSAGES; i++) flooder.send(`{"op":"subscribe","channel":"@user","pad":"${padding}"}`);
    // Unbounded, the node reads all 150 MB at loopback speed; bounded, most of it waits in the flooder.
    const most = await peakWhile(pid, () => flooder.ws.bufferedAmount === 0, 8000);
    assert.ok(most - before < 64 * 1024 * 1024, `the node grew by ${mib(most - before)} while the hook waited`);
    await assertHealthy(engine, apiUrl);
    await post(`${apiUrl}/v1/mesh/publish`, { c: 'user:1002', d: 'still served' });
    assert.equal((await other.next(10_000)).data, 'still served');
    // The auth answers: every message waiting behind it is handled, none lost.
    auth.releaseHeld();
    await waitFor('every queued message is answered', () => flooder.received.length === MESSAGES, 120_000, 200);
    assert.ok(flooder.received.every((message) => message.data === '{"result":true}'));
    for (const client of [other, flooder]) client.ws.terminate();
  } finally {
    await auth.stop();
    await stopEngine(engine);
  }
});
