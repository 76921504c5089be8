import type Redis from 'ioredis';
import type { Logger } from '../log';

/** How a subscriber connection is audited; see SubscriptionAudit. */
export interface AuditOptions {
  /** Milliseconds between audits (0: no audit). */
  every: number;
  /** The name the connection gives itself (CLIENT SETNAME), so that its id cannot be mistaken for another client's. */
  name: string;
  /**
   * A command connection to the same Redis server, or null if there is none now. It must fail rather
   * than queue while disconnected and have a command timeout (the node's command connections do).
   */
  commands(): Redis | null;
  /** Counts one repair (connmix_mesh_subscription_repairs_total). */
  repaired(): void;
}

/** What the audit needs of the link it checks (SubscriberLink). */
export interface Audited {
  readonly redis: Redis;
  /**
   * How many channels Redis should hold for the connection, and a mark that changes whenever that
   * may change; null while that is not settled (commands unanswered, changes unsent, disconnected).
   */
  auditPoint(): { expected: number; mark: number } | null;
  /** Subscribes every wanted channel again on the same connection. */
  resubscribe(): void;
}

/** What CLIENT LIST says of the connection, against what the link expects. */
export type Verdict = 'ok' | 'gone' | 'missing' | 'extra';

/**
 * Judges one `CLIENT LIST ID <id>` answer. `gone`: Redis has no client with that id and name (it
 * restarted unseen, behind a proxy; or the id is someone else's now). `missing` / `extra`: it holds
 * fewer / more channels (`field`: `sub`, or `ssub` for shard channels) than expected. A server that
 * does not report the field can only be checked for the connection itself.
 */
export function judge(line: string, name: string, field: 'sub' | 'ssub', expected: number): { verdict: Verdict; held: number | null } {
  const fields = new Map<string, string>();
  for (const pair of line.trim().split(' ')) {
    const at = pair.indexOf('=');
    if (at > 0) fields.set(pair.slice(0, at), pair.slice(at + 1));
  }
  if (!fields.has('id') || fields.get('name') !== name) return { verdict: 'gone', held: null };
  const text = fields.get(field);
  if (text === undefined) return { verdict: 'ok', held: null };
  const held = Number(text);
  return { verdict: held < expected ? 'missing' : held > expected ? 'extra' : 'ok', held };
}

/**
 * Checks now and then that Redis holds, for one subscriber connection, as many subscriptions as the
 * commands its link sent say, and repairs the connection when it does not: Redis can lose them
 * without the connection dropping (a proxy that hides a Redis restart; on a cluster, a slot that moves
 * away and back faster than the slot-map refresh its unasked SUNSUBSCRIBE starts), and
 * a bookkeeping bug could do the same.
 *
 * A subscribed connection cannot ask about itself (RESP2 allows it only (un)subscribe and PING), so
 * the connection's id is asked when it connects, before it subscribes anything, and the audit asks
 * `CLIENT LIST ID <id>` on a command connection to the same server. It counts, it does not list:
 * one extra channel and one missing at once look right (only a bug could do both; see docs). It runs
 * only while the link has nothing unanswered nor unsent, and its answer counts only if the link sent
 * nothing meanwhile. Repairs: fewer channels than sent, every wanted channel is subscribed again in
 * place (Redis ignores those it holds); an unknown connection or more channels than sent (which
 * cannot be named without listing every channel of the server), the connection is dropped and the
 * link resubscribes on the reconnect. One audit at a time; none while Redis is away.
 */
export class SubscriptionAudit {
  /** The current connection's id and the name it set ('' if SETNAME failed: the id alone is checked). */
  private identity: { id: string; name: string } | null = null;
  private generation = 0;
  private running = false;
  /** The last CLIENT LIST failed: logged once until one succeeds. */
  private failing = false;
  private timer: NodeJS.Timeout | null;

  constructor(
    private readonly link: Audited,
    private readonly options: AuditOptions,
    private readonly field: 'sub' | 'ssub',
    private readonly log: Logger,
    /** The server, for log lines (cluster links). */
    private readonly node?: string,
  ) {
    this.timer = setInterval(() => void this.run(), options.every);
    this.timer.unref();
  }

  /** The link's connection is ready and has subscribed nothing yet: learn its id (call before subscribing). */
  connected(): void {
    const generation = ++this.generation;
    this.identity = null;
    const redis = this.link.redis;
    const name = this.options.name;
    Promise.all([redis.client('SETNAME', name).then(() => name, () => ''), redis.client('ID')]).then(
      ([named, id]) => {
        if (generation === this.generation) this.identity = { id: String(id), name: named };
      },
      (error: Error) => {
        if (generation !== this.generation || redis.status !== 'ready') return;
        this.log.warn('redis subscription audit off for this connection: CLIENT ID failed', { redis: this.node, error: error.message });
      },
    );
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.identity = null;
  }

  /** One audit, if none is running and the link is settled; resolves when done (tests call it). */
  async run(): Promise<Verdict | null> {
    const identity = this.identity;
    const point = this.link.auditPoint();
    const commands = this.options.commands();
    // 'wait': a cluster node's connection not opened yet; the command opens it.
    if (this.running || !identity || !point || !commands || (commands.status !== 'ready' && commands.status !== 'wait')) return null;
    this.running = true;
    let line: string;
    try {
      line = String(await commands.client('LIST', 'ID', identity.id));
    } catch (error) {
      if (!this.failing) this.log.warn('redis subscription audit failed; retried next time', { redis: this.node, error: (error as Error).message });
      this.failing = true;
      return null;
    } finally {
      this.running = false;
    }
    this.failing = false;
    // The connection changed or the link sent commands meanwhile: the answer may be out of date.
    if (identity !== this.identity || this.link.auditPoint()?.mark !== point.mark) return null;
    const { verdict, held } = judge(line, identity.name, this.field, point.expected);
    if (verdict === 'ok') return verdict;
    this.options.repaired();
    const fields = { redis: this.node, expected: point.expected, held };
    if (verdict === 'missing') {
      this.log.warn('redis lost subscriptions of this node unseen; subscribing every wanted channel again', fields);
      this.link.resubscribe();
    } else {
      const why = verdict === 'gone' ? 'Redis no longer knows the subscriber connection (restarted unseen?)' : 'Redis holds subscriptions the node did not ask for';
      this.log.warn(`${why}; reconnecting it`, fields);
      this.link.redis.disconnect(true);
    }
    return verdict;
  }
}
