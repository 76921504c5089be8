import * as fs from 'node:fs';
import * as path from 'node:path';
import * as assert from 'node:assert/strict';
import { ROOT, TestClient, post } from './helpers';

// Shared pieces of the multi-node tests: the mesh yaml, and the seed script with a few test-only ops.

/** `engine.mesh` yaml for `startNode({ engineYaml })`; the subscription audit as by default unless `auditInterval` (seconds) is given. */
export function meshYaml(addrs: string[], prefix: string, cluster = false, auditInterval?: number): string {
  return `  mesh:
    broker: redis
    redis:
      addrs: [${addrs.join(', ')}]
      cluster: ${cluster}
      prefix: "${prefix}"
${auditInterval === undefined ? '' : `      auditInterval: ${auditInterval}\n`}`;
}

/**
 * The shipped barrage script plus test ops on frames starting with "!": `!id` answers the client_id,
 * `!pub <channel> <text>` publishes through Lua's `mix.mesh.publish` and answers `s,f` (or `err:...`).
 */
export const SEED_WITH_TEST_OPS = {
  'lua/entry.websocket.lua': `${fs.readFileSync(path.join(ROOT, 'lua/entry.websocket.lua'), 'utf8')}
local seed_on_message = on_message
function on_message(msg)
    local data = msg["data"]
    if msg["type"] ~= "text" or string.sub(data, 1, 1) ~= "!" then
        return seed_on_message(msg)
    end
    local conn = mix.websocket()
    if data == "!id" then
        conn:send(conn:client_id())
        return
    end
    local channel, text = string.match(data, "^!pub (%S+) (.*)$")
    local s, f, err = mix.mesh.publish(channel, text)
    if err then conn:send("err:" .. err) else conn:send(string.format("%d,%d", s, f)) end
end
`,
};

/** Opens a viewer and subscribes it to video `id` as the seed describes. */
export async function viewer(wsUrl: string, id: number | string): Promise<TestClient> {
  const client = await TestClient.open(wsUrl);
  const answer = await client.request(`{"op":"subscribe","channel":"${id}@video"}`);
  if (answer !== '{"result":true}') throw new Error(`subscribe answered ${answer}`);
  return client;
}

/**
 * The seed barrage through every node of a mesh: one viewer per node subscribes with the seed's
 * message, then each node's API publishes a comment that every viewer receives, counted exactly.
 */
export async function barrageThroughEveryNode(nodes: Array<{ wsUrl: string; apiUrl: string }>, video: number): Promise<void> {
  const viewers = await Promise.all(nodes.map((node) => viewer(node.wsUrl, video)));
  for (const [index, node] of nodes.entries()) {
    const d = `{"event":"@video","data":{"uid":1001,"video_id":${video},"msg":"through node ${index}"}}`;
    const answer = await post(`${node.apiUrl}/v1/mesh/publish`, { c: `video:${video}`, d });
    assert.deepEqual(answer.json, { E: null, r: { s: nodes.length, f: 0 } });
    for (const client of viewers) assert.equal((await client.next()).data, d);
  }
  for (const client of viewers) client.close();
}
