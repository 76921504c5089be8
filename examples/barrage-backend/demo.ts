import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { ConnmixClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { Engine } from '../../src/engine';
import { Logger } from '../../src/log';
import { openStore } from './open-store';
import { sampleComments } from './sample-comments';
import { startBarrageServer } from './server';
import { TokenSigner } from './token';

// `npm run demo`: the engine with the shipped connmix.yaml (or the one CONNMIX_CONFIG names), the
// barrage backend and the page, in one process. Ctrl-C stops them all.

const ROOT = path.resolve(__dirname, '../../..');

async function main(): Promise<void> {
  const config = loadConfig(process.env.CONNMIX_CONFIG ?? path.join(ROOT, 'connmix.yaml'), { warn: (message) => console.warn(`connmix: warning: ${message}`) });
  // Warnings and errors only: the demo's terminal is for the URL.
  const engine = new Engine(config, { log: new Logger('warn') });
  for (const listener of await engine.start()) console.log(`connmix: ${listener.name} listening on ${listener.address}`);

  const api = config.engine.apiServer;
  const writer = config.access.users.find((user) => user.roles.includes('write'));
  const client = new ConnmixClient({
    url: `http://${api.bind === '0.0.0.0' ? '127.0.0.1' : api.bind}:${api.port}`,
    credentials: writer && { username: writer.username, password: writer.password },
  });
  const business = config.engine.servers.find((server) => server.protocol === 'websocket');
  if (!business) throw new Error('connmix.yaml has no websocket server for the page to connect to');

  const store = await openStore(process.env.BARRAGE_REDIS_URL);
  if (!process.env.BARRAGE_REDIS_URL) for (const comment of sampleComments()) await store.add(comment);
  const server = await startBarrageServer({
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? '0.0.0.0',
    publisher: client,
    store,
    tokens: new TokenSigner(process.env.BARRAGE_SECRET ?? randomBytes(24).toString('base64url')),
    websocket: {
      port: business.port,
      path: business.options.find((option) => option.name === 'path')?.value ?? '/',
    },
    onError: (message, error) => console.error(`barrage: ${message}: ${(error as Error).message ?? error}`),
  });
  console.log(`\nbarrage demo: open ${server.url}/ in a browser (two windows to see comments travel; ${server.url}/dplayer.html is DPlayer); Ctrl-C stops\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('\nbarrage demo: stopping');
    void Promise.all([server.close(), engine.stop(), store.close()]).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error) => {
  console.error(`barrage demo: cannot start: ${(error as Error).message}`);
  process.exit(1);
});
