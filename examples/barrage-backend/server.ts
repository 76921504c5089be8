import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { createBarrageApp, type BarrageAppOptions } from './app';

/** The page's folder in this repository (`web/`), from either the sources or `dist/`. */
export const WEB_DIR = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../../web' : '../../web');

export interface BarrageServer {
  /** `http://host:port` */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Listens with the barrage app on `host:port` (port 0 picks a free one). */
export async function startBarrageServer(options: BarrageAppOptions & { port: number; host?: string }): Promise<BarrageServer> {
  const app = createBarrageApp({ staticDir: WEB_DIR, ...options });
  const server = http.createServer(app.handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  const host = !options.host || options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        app.close();
        server.close(() => resolve());
        // Keep-alive connections from browsers would hold close() open.
        server.closeAllConnections();
      }),
  };
}
