import type { RedisMeshConfig } from '../config/schema';
import type { Logger } from '../log';
import type { NodeInfo } from './broker';
import { listNodes } from './node-registry';
import { bounded, connectMeshRedis, type MeshRedis } from './redis-connections';

/** How long one node-list read may take before it answers an error. */
const COMMAND_TIMEOUT_MS = 1000;

/**
 * Reads the mesh's node list from Redis without being a node: what a `connmix center` process lists.
 * It registers nothing and subscribes nothing; it connects in the background and keeps reconnecting,
 * so a read while Redis is away fails at once instead of stalling.
 */
export class RegistryReader {
  private link: MeshRedis | null = null;

  constructor(
    private readonly config: RedisMeshConfig,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.link) return;
    this.log.info(`mesh: reading the node list from redis (${this.config.cluster ? 'cluster' : 'standalone'})`, {
      addrs: this.config.addrs.join(','),
    });
    const ignore = (): void => undefined;
    this.link = connectMeshRedis(this.config, { message: ignore, up: ignore, down: ignore }, this.log, COMMAND_TIMEOUT_MS);
  }

  /** The live nodes; rejects when Redis cannot answer. */
  nodes(): Promise<NodeInfo[]> {
    if (!this.link) return Promise.reject(new Error('registry reader not started'));
    return bounded(listNodes(this.link.commands, this.config.prefix), COMMAND_TIMEOUT_MS, 'node list');
  }

  ready(): boolean {
    return this.link?.commands.status === 'ready';
  }

  stop(): void {
    this.link?.close();
    this.link = null;
  }
}
