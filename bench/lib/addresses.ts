/**
 * Source addresses for load connections. One source address gives about 28,000 ephemeral ports
 * (net.ipv4.ip_local_port_range 32768-60999), so more connections need several sources: all of
 * 127.0.0.0/8 is loopback. Few connections per address keep the kernel's free-port search short:
 * bind() to an address with 16,000 ports taken made connecting 50,000 clients take over a minute.
 * Each call hands out fresh addresses, so a phase never meets the TIME_WAIT ports of an earlier one.
 */
const CONNECTIONS_PER_ADDRESS = 2_000;

let next = 0;

export function sourceAddresses(connections: number): string[] {
  const count = Math.max(1, Math.ceil(connections / CONNECTIONS_PER_ADDRESS));
  const result: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = next++;
    // 127.1.0.1, 127.1.0.2, ... 127.1.0.250, 127.1.1.1, ... (never 127.0.0.1, which the servers use)
    result.push(`127.${1 + Math.floor(n / 62_500)}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`);
  }
  return result;
}
