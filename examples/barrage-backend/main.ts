import { randomBytes } from 'node:crypto';
import { ConnmixClient } from '../../src/client';
import { openStore } from './open-store';
import { startBarrageServer } from './server';
import { TokenSigner } from './token';

// The barrage backend on its own, configured by environment variables (see README.md beside this file).
// Outside this repository, import the SDK as `connmix-ts/client`.

async function main(): Promise<void> {
  const env = process.env;
  const secret = env.BARRAGE_SECRET ?? randomBytes(24).toString('base64url');
  if (!env.BARRAGE_SECRET) console.warn('barrage: BARRAGE_SECRET is not set; tokens are signed with a random secret and die with this process');
  const client = new ConnmixClient({
    url: env.CONNMIX_API ?? 'http://127.0.0.1:6789',
    credentials: env.CONNMIX_USERNAME ? { username: env.CONNMIX_USERNAME, password: env.CONNMIX_PASSWORD ?? '' } : undefined,
  });
  const store = await openStore(env.BARRAGE_REDIS_URL);
  const server = await startBarrageServer({
    port: Number(env.PORT ?? 8080),
    host: env.HOST ?? '0.0.0.0',
    publisher: client,
    store,
    tokens: new TokenSigner(secret),
    websocket: { port: Number(env.CONNMIX_WS_PORT ?? 6790), path: env.CONNMIX_WS_PATH ?? '/barrage-videos', url: env.CONNMIX_WS_URL },
    onError: (message, error) => console.error(`barrage: ${message}: ${(error as Error).message ?? error}`),
  });
  console.log(`barrage: backend listening on ${server.url} (store: ${env.BARRAGE_REDIS_URL ? 'redis' : 'memory'})`);
  const stop = () => {
    void Promise.all([server.close(), store.close()]).then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error) => {
  console.error(`barrage: cannot start: ${(error as Error).message}`);
  process.exit(1);
});
