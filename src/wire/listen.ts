import type { Server } from 'node:net';

/** The one logger method listenLogged needs (wire/ sits below log, so it names the shape, not the class). */
export interface WarnLog {
  warn(message: string, fields: { error: string }): void;
}

/**
 * Listens on `port` and `bind`; rejects when that fails (address in use, no permission). Once listening,
 * a later 'error' is accept() failing (EMFILE while the descriptor table is full): it is logged as
 * "<name> server: accept failed" rather than left an unhandled 'error' event, which would end the process.
 */
export function listenLogged(server: Server, port: number, bind: string, log: WarnLog, name: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bind, () => {
      server.off('error', reject);
      server.on('error', (error) => log.warn(`${name} server: accept failed`, { error: error.message }));
      resolve();
    });
  });
}
