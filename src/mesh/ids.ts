import { randomBytes } from 'node:crypto';

/** Milliseconds since this epoch fill the top bits of a client_id (2024-01-01T00:00:00Z). */
const EPOCH = 1_704_067_200_000n;
const NODE_BITS = 10n;
const SEQUENCE_BITS = 12n;
/** Node numbers fit in 10 bits. */
export const MAX_NODE_NUMBER = (1 << Number(NODE_BITS)) - 1;
const SEQUENCE_MASK = (1n << SEQUENCE_BITS) - 1n;

/**
 * Snowflake-style client_ids: `ms since 2024 | node number (10 bits) | sequence (12 bits)`, written in
 * decimal like CONNMIX's 19-digit ids. Unique across the mesh as long as live nodes have distinct node
 * numbers, and the owning node can be read back from the id (`nodeNumberOf`).
 */
export class ClientIdGenerator {
  private lastMs = 0n;
  private sequence = 0n;
  private readonly node: bigint;

  constructor(readonly nodeNumber: number) {
    if (!Number.isInteger(nodeNumber) || nodeNumber < 0 || nodeNumber > MAX_NODE_NUMBER) {
      throw new RangeError(`node number must be an integer from 0 to ${MAX_NODE_NUMBER}, got ${nodeNumber}`);
    }
    this.node = BigInt(nodeNumber);
  }

  next(): string {
    let ms = BigInt(Date.now()) - EPOCH;
    if (ms <= this.lastMs) {
      // Same millisecond (or the clock went back): continue the sequence, borrowing future ms if it overflows.
      ms = this.lastMs;
      this.sequence = (this.sequence + 1n) & SEQUENCE_MASK;
      if (this.sequence === 0n) ms += 1n;
    } else {
      this.sequence = 0n;
    }
    this.lastMs = ms;
    return ((ms << (NODE_BITS + SEQUENCE_BITS)) | (this.node << SEQUENCE_BITS) | this.sequence).toString();
  }
}

/** The node number encoded in a client_id, or -1 if the text is not a client_id. */
export function nodeNumberOf(clientId: string): number {
  if (!/^\d{1,20}$/.test(clientId)) return -1;
  return Number((BigInt(clientId) >> SEQUENCE_BITS) & BigInt(MAX_NODE_NUMBER));
}

/** A short random node id, like CONNMIX's `vsemvqedsc`. */
export function newNodeId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(10), (byte) => alphabet[byte % alphabet.length]).join('');
}
