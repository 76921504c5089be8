import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { EVAL, TestClient, post, withNode } from './support/helpers';
import { WriteBatch } from '../src/wire/write-batch';
import { LuaVM } from '../src/lua/vm';

// The publish path: a message is framed once for all its WebSocket subscribers and never enters Lua.
// The real write batch and VM run; their prototypes are wrapped only to watch what goes through them.

test('a publish is framed once for every subscriber and runs no Lua', async () => {
  await withNode({ lua: { 'lua/entry.websocket.lua': EVAL } }, async (node) => {
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(node.wsUrl)));
    for (const client of clients) assert.equal(await client.request('mix.websocket():subscribe("room") return 1'), '[1]');
    const chunks: Buffer[] = [];
    let luaCalls = 0;
    const write = WriteBatch.prototype.write;
    const call = LuaVM.prototype.call;
    WriteBatch.prototype.write = function (this: WriteBatch, ...args: Parameters<WriteBatch['write']>) {
      chunks.push(args[1]);
      return write.apply(this, args);
    };
    LuaVM.prototype.call = function (this: LuaVM, ...args: Parameters<LuaVM['call']>) {
      luaCalls++;
      return call.apply(this, args);
    };
    try {
      assert.deepEqual((await post(`${node.apiUrl}/v1/mesh/publish`, { c: 'room', d: 'once' })).json, { E: null, r: { s: 3, f: 0 } });
    } finally {
      WriteBatch.prototype.write = write;
      LuaVM.prototype.call = call;
    }
    for (const client of clients) assert.equal((await client.next()).data, 'once');
    assert.equal(chunks.length, 3);
    assert.ok(chunks.every((chunk) => chunk === chunks[0]), 'the three writes share one frame Buffer');
    assert.equal(luaCalls, 0);
    for (const client of clients) client.close();
  });
});
