import type { Config } from './config/schema';
import { watchConfig } from './config/watch';
import { Logger } from './log';
import type { NodeInfo } from './mesh/broker';
import { RegistryReader } from './mesh/registry-reader';
import { CenterServer } from './api/center-server';
import { formatAddress, type Listener } from './engine';

/** How often the yaml file is checked for changes to its hot keys. */
const CONFIG_POLL_MS = 1000;

/**
 * `connmix center`: CONNMIX's center API alone, with no business servers and no node of its own. On a
 * Redis mesh it lists the engines registered there (the same list as their `/v1/nodes`); with the
 * memory broker no engine can register anywhere it could read, so it lists none.
 */
export class Center {
  readonly log: Logger;
  private readonly reader: RegistryReader | null;
  private readonly server: CenterServer;
  private unwatchConfig: (() => void) | null = null;
  private config: Config;

  constructor(config: Config, options: { log?: Logger } = {}) {
    this.config = config;
    this.log = options.log ?? new Logger(config.logging.level);
    this.reader = config.engine.mesh.broker === 'redis' ? new RegistryReader(config.engine.mesh.redis, this.log) : null;
    const reader = this.reader;
    const listing = reader
      ? { nodes: (): Promise<NodeInfo[]> => reader.nodes(), ready: (): boolean => reader.ready() }
      : { nodes: (): NodeInfo[] => [], ready: (): boolean => true };
    this.server = new CenterServer(config.center.apiServer, listing, config.access.users, this.log);
  }

  async start(): Promise<Listener[]> {
    this.reader?.start();
    const address = await this.server.start();
    if (this.config.file) {
      this.unwatchConfig = watchConfig(this.config.file, CONFIG_POLL_MS, (next) => this.applyConfig(next), (error) =>
        this.log.error('config reload failed, the running config stays', { error: error.message }),
      );
    }
    return [{ name: 'center server', address: formatAddress(address) }];
  }

  async stop(): Promise<void> {
    this.unwatchConfig?.();
    await this.server.stop();
    this.reader?.stop();
  }

  /** The center's hot keys: `logging.level` and `access`; the rest needs a restart, as on an engine. */
  private applyConfig(next: Config): void {
    if (next.logging.level !== this.config.logging.level) this.log.setLevel(next.logging.level);
    if (JSON.stringify(next.access) !== JSON.stringify(this.config.access)) {
      this.server.updateUsers(next.access.users);
      this.log.info('access changed', { users: next.access.users.length });
    }
    this.config = { ...this.config, logging: { ...this.config.logging, level: next.logging.level }, access: next.access };
  }
}
