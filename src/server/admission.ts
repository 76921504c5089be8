import type { BusinessServerConfig } from '../config/schema';

/** Why a new connection is refused: the server's limit, the node's limit, or its client IP's share. */
export type Refusal = 'max_connections' | 'node_max_connections' | 'max_connections_per_ip';

/**
 * The connection limits one business server applies when a client connects: `maxConnections` of the
 * server, `engine.maxConnections` of the node (asked of the node, which counts every server), and
 * `maxConnectionsPerIp`, for which it counts open connections per client IP.
 */
export class Admission {
  private readonly perIp = new CountsByKey();
  /** Sockets per client IP that have not finished their WebSocket handshake. */
  private readonly handshaking = new CountsByKey();

  constructor(
    private readonly config: Pick<BusinessServerConfig, 'maxConnections' | 'maxConnectionsPerIp'>,
    private readonly nodeFull: () => boolean,
  ) {}

  /** Why a connection from `ip` is refused while the server holds `held` connections, or null. */
  refusal(ip: string, held: number): Refusal | null {
    const { maxConnections, maxConnectionsPerIp } = this.config;
    if (maxConnections > 0 && held >= maxConnections) return 'max_connections';
    if (this.nodeFull()) return 'node_max_connections';
    if (maxConnectionsPerIp > 0 && this.perIp.get(ip) >= maxConnectionsPerIp) return 'max_connections_per_ip';
    return null;
  }

  /** Counts a connection from `ip` that was let in. */
  admitted(ip: string): void {
    this.perIp.add(ip);
  }

  /** Forgets a connection from `ip` that closed. */
  left(ip: string): void {
    this.perIp.remove(ip);
  }

  /**
   * Whether a new socket from `ip` is refused because the IP already has maxConnectionsPerIp sockets
   * that have not finished their handshake: idle sockets meet the per-IP limit before they could fill
   * the descriptor table. Otherwise the socket is counted until handshakeEnded.
   */
  handshakeRefused(ip: string): boolean {
    const { maxConnectionsPerIp } = this.config;
    if (maxConnectionsPerIp <= 0) return false;
    if (this.handshaking.get(ip) >= maxConnectionsPerIp) return true;
    this.handshaking.add(ip);
    return false;
  }

  /** A socket counted by handshakeRefused upgraded or closed. */
  handshakeEnded(ip: string): void {
    this.handshaking.remove(ip);
  }
}

/** Counts per client IP; an IP whose count falls back to zero is forgotten. */
class CountsByKey {
  private readonly counts = new Map<string, number>();

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.counts.set(key, this.get(key) + 1);
  }

  remove(key: string): void {
    const count = this.get(key) - 1;
    if (count > 0) this.counts.set(key, count);
    else this.counts.delete(key);
  }
}
