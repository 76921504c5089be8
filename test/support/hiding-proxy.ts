import * as net from 'node:net';

/**
 * A TCP proxy to 127.0.0.1:`target` that hides the target's restarts from its clients: when the
 * upstream connection of a client ends, the client's connection stays open and the proxy connects
 * upstream again (every 50 ms until it gets in), passing on what the client sent meanwhile. A client
 * keeps its socket while the server behind it is a new process that knows nothing of it (as a load
 * balancer or a sidecar proxy in front of Redis can do).
 */
export class HidingProxy {
  private readonly clients = new Set<net.Socket>();
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: number): Promise<HidingProxy> {
    let proxy: HidingProxy | null = null;
    const server = net.createServer((client) => proxy?.carry(client, target));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new HidingProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Closes the listener and every client connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const client of this.clients) client.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private carry(client: net.Socket, target: number): void {
    this.clients.add(client);
    /** Connected upstream (null while connecting); `latest` is the socket being connected or used. */
    let upstream: net.Socket | null = null;
    let latest: net.Socket | null = null;
    const waiting: Buffer[] = [];
    const connect = (): void => {
      if (client.destroyed || this.closed) return;
      const socket = net.connect(target, '127.0.0.1');
      latest = socket;
      socket.on('connect', () => {
        upstream = socket;
        for (const chunk of waiting.splice(0)) socket.write(chunk);
      });
      socket.on('data', (chunk) => client.write(chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (upstream === socket) upstream = null;
        setTimeout(connect, 50);
      });
    };
    client.on('data', (chunk) => (upstream ? upstream.write(chunk) : waiting.push(chunk)));
    client.on('error', () => undefined);
    client.on('close', () => {
      this.clients.delete(client);
      latest?.destroy();
    });
    connect();
  }
}
