import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { post, withTimeout } from './support/helpers';
import { ApiClient, type ApiFrame } from './support/api-client';
import { assertHealthy, seedEngineFolder, startListening, stopEngine } from './support/engine-process';

// Hostile clients against an engine in a process of its own, so that a request that kills or freezes
// the node shows as the node's death (not this test process's): what each sends is answered with a
// documented code or closes only its own connection, and the node serves on.

/** JSON arrays nested `levels` deep, as text (JSON.stringify of such a value would overflow the stack). */
function nestedArrays(levels: number): string {
  return '['.repeat(levels) + ']'.repeat(levels);
}

/** Sends `text` on `api` and resolves with the answer whose `i` is `id`; fails naming `label` (not the frame, which may be huge). */
function answerTo(api: ApiClient, text: string, id: unknown, label: string): Promise<ApiFrame> {
  return withTimeout(new Promise<ApiFrame>((resolve) => {
    const listener = (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as ApiFrame;
      if (frame.i !== id) return;
      api.ws.off('message', listener);
      resolve(frame);
    };
    api.ws.on('message', listener);
    api.ws.send(text);
  }), 10_000, `no answer to ${label}`);
}

test('a /ws/v1 request whose id or method nests 100,000 levels answers 101 and the node serves on', async () => {
  const { file, apiUrl } = await seedEngineFolder();
  const engine = await startListening(file);
  try {
    const api = await ApiClient.open(apiUrl);
    api.ws.on('error', () => undefined);
    // The answer echoes the id: written back as it came, it would overflow the stack of JSON.stringify.
    const deepId = await answerTo(api, `{"m":"mesh.publish","p":{"c":"video:1","d":"x"},"i":${nestedArrays(100_000)}}`, null, 'the deep id');
    assert.equal(deepId.E?.c, 101, JSON.stringify(deepId));
    const deepMethod = await answerTo(api, `{"m":${nestedArrays(100_000)},"p":{},"i":"m"}`, 'm', 'the deep method');
    assert.equal(deepMethod.E?.c, 101, JSON.stringify(deepMethod));
    assert.deepEqual((await api.call('mesh.publish', { c: 'video:1', d: 'after' })).r, { s: 0, f: 0 });
    await assertHealthy(engine, apiUrl);
    assert.deepEqual((await post(`${apiUrl}/v1/mesh/publish`, { c: 'video:1', d: 'x' })).json, { E: null, r: { s: 0, f: 0 } });
    api.close();
  } finally {
    await stopEngine(engine);
  }
});
