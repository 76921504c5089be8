/** A consumer of queue items: one `/ws/v1` connection that sent `queue.pop`. */
export interface QueueConsumer {
  /** Writes one encoded `queue.pop` event; false if the consumer cannot take it now. */
  offer(event: string): boolean;
}

/** One item as consumers receive it (CONNMIX docs, websocket-api): node, client, topic, and the JSON text of `d`. */
export interface QueueItem {
  clientId: string;
  topic: string;
  /** `d` already encoded as JSON (a pushed table is an object, a string stays a string). */
  dataJson: string;
}

/**
 * An item as its consumers read it, `{"n": node, "c": client_id, "t": topic, "d": data}`: the `p` of a
 * `queue.pop` event, and what CONNMIX v1.0.1's `mix.redis.push` writes to a Redis list.
 */
export function queueItemJson(nodeId: string, item: QueueItem): string {
  return `{"n":${JSON.stringify(nodeId)},"c":${JSON.stringify(item.clientId)},"t":${JSON.stringify(item.topic)},"d":${item.dataJson}}`;
}

export interface QueueLimits {
  /** Items one topic may hold while no consumer can take them. */
  topicSize: number;
  /** Topics that may exist at once (a topic exists while it has items or consumers). */
  maxTopics: number;
  /** Bytes (UTF-8 of the encoded items) one topic may hold while no consumer can take them. */
  topicBytes: number;
  /** Bytes all topics of the node may hold together. */
  maxBytes: number;
}

/** Why a push or pop was refused, as the `connmix_queue_refused_total` metric names it. */
export type QueueRefusal = 'topic_size' | 'topic_bytes' | 'node_bytes' | 'topics' | 'topic_name';

/**
 * The longest topic name, in characters. A name is kept with its topic (by `mix.queue.new`, for good)
 * and written into every item: without a cap, names taken from what clients send could hold
 * maxTopics strings of maxStringSize each.
 */
export const MAX_TOPIC_LENGTH = 1024;

export class QueueError extends Error {
  constructor(
    readonly reason: QueueRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** An encoded `queue.pop` event waiting for a consumer, with its UTF-8 size. */
interface Waiting {
  event: string;
  size: number;
}

interface Topic {
  readonly waiting: Waiting[];
  /** UTF-8 bytes of `waiting`. */
  bytes: number;
  readonly consumers: QueueConsumer[];
  /** Round-robin position among consumers. */
  next: number;
}

/**
 * The node's in-memory queue (`mix.queue.push` → `/ws/v1 queue.pop`). Consumers of a topic share its
 * items, each item going to one consumer in turn; items wait, up to `topicSize` items and `topicBytes`
 * bytes per topic and `maxBytes` over the node, while no consumer can take them, and what waits when a
 * consumer leaves stays for the others or the next one.
 */
export class MemoryQueue {
  private readonly topics = new Map<string, Topic>();
  private bytes = 0;
  /** Capacities set by `mix.queue.new`, kept while the topic comes and goes. */
  private readonly capacities = new Map<string, number>();

  constructor(
    private readonly nodeId: string,
    private readonly limits: QueueLimits,
  ) {}

  /**
   * `mix.queue.new(name, size)` (CONNMIX v1.0.1): from now on at most `size` items of the topic wait,
   * never more than `topicSize`. At most `maxTopics` names may be declared (they are kept for good).
   */
  declare(topicName: string, size: number): void {
    checkTopicName(topicName);
    if (!this.capacities.has(topicName) && this.capacities.size >= this.limits.maxTopics) {
      throw new QueueError('topics', `queue: too many topics (maxTopics is ${this.limits.maxTopics})`);
    }
    this.capacities.set(topicName, size);
  }

  /** Pushes an item; returns how many items of the topic are waiting afterwards. */
  push(item: QueueItem): number {
    const topic = this.topic(item.topic);
    const event = this.encode(item);
    if (topic.waiting.length === 0 && this.hand(topic, event)) return 0;
    const { topicSize, topicBytes, maxBytes } = this.limits;
    const size = Buffer.byteLength(event);
    const capacity = this.capacities.get(item.topic);
    try {
      if (capacity !== undefined && capacity < topicSize && topic.waiting.length >= capacity) {
        throw new QueueError('topic_size', `queue: topic "${item.topic}" is full (mix.queue.new gave it ${capacity} items)`);
      }
      if (topic.waiting.length >= topicSize) {
        throw new QueueError('topic_size', `queue: topic "${item.topic}" is full (topicSize is ${topicSize})`);
      }
      if (topic.bytes + size > topicBytes) {
        throw new QueueError('topic_bytes', `queue: topic "${item.topic}" is full (topicBytes is ${topicBytes}, it holds ${topic.bytes}, the item has ${size})`);
      }
      if (this.bytes + size > maxBytes) {
        throw new QueueError('node_bytes', `queue: the node's queue is full (maxBytes is ${maxBytes}, it holds ${this.bytes}, the item has ${size})`);
      }
    } catch (error) {
      this.forgetIfIdle(item.topic, topic);
      throw error;
    }
    topic.waiting.push({ event, size });
    topic.bytes += size;
    this.bytes += size;
    return topic.waiting.length;
  }

  /** Adds a consumer to topics; false for a topic it already consumes (the API answers 202). */
  consume(consumer: QueueConsumer, topicName: string): boolean {
    const topic = this.topic(topicName);
    if (topic.consumers.includes(consumer)) return false;
    topic.consumers.push(consumer);
    this.drain(topic);
    return true;
  }

  /** Removes a consumer from every topic; returns how many topics it consumed. */
  release(consumer: QueueConsumer): number {
    let released = 0;
    for (const [name, topic] of this.topics) {
      const index = topic.consumers.indexOf(consumer);
      if (index < 0) continue;
      topic.consumers.splice(index, 1);
      released++;
      this.forgetIfIdle(name, topic);
    }
    return released;
  }

  /** Hands waiting items to consumers that can take them again (call when a consumer drains). */
  resume(): void {
    for (const [name, topic] of this.topics) {
      this.drain(topic);
      this.forgetIfIdle(name, topic);
    }
  }

  /** Items waiting in all topics. */
  get waitingItems(): number {
    let total = 0;
    for (const topic of this.topics.values()) total += topic.waiting.length;
    return total;
  }

  /** Bytes (UTF-8) waiting in all topics. */
  get waitingBytes(): number {
    return this.bytes;
  }

  /** Items waiting in a topic (0 for an unknown topic). */
  waiting(topicName: string): number {
    return this.topics.get(topicName)?.waiting.length ?? 0;
  }

  /** The topic named `name`, created if the node may hold one more. */
  private topic(name: string): Topic {
    let topic = this.topics.get(name);
    if (!topic) {
      checkTopicName(name);
      if (this.topics.size >= this.limits.maxTopics) {
        throw new QueueError('topics', `queue: too many topics (maxTopics is ${this.limits.maxTopics})`);
      }
      topic = { waiting: [], bytes: 0, consumers: [], next: 0 };
      this.topics.set(name, topic);
    }
    return topic;
  }

  private drain(topic: Topic): void {
    while (topic.waiting.length > 0 && this.hand(topic, topic.waiting[0].event)) {
      const { size } = topic.waiting.shift() as Waiting;
      topic.bytes -= size;
      this.bytes -= size;
    }
  }

  /** Gives the event to the next consumer in turn that takes it; false if none can. */
  private hand(topic: Topic, event: string): boolean {
    const count = topic.consumers.length;
    for (let tried = 0; tried < count; tried++) {
      const consumer = topic.consumers[topic.next % count];
      topic.next = (topic.next + 1) % count;
      if (consumer.offer(event)) return true;
    }
    return false;
  }

  private forgetIfIdle(name: string, topic: Topic): void {
    if (topic.waiting.length === 0 && topic.consumers.length === 0) this.topics.delete(name);
  }

  private encode(item: QueueItem): string {
    return `{"e":"queue.pop","p":${queueItemJson(this.nodeId, item)},"i":null}`;
  }
}

function checkTopicName(name: string): void {
  if (name.length > MAX_TOPIC_LENGTH) {
    throw new QueueError('topic_name', `queue: topic name of ${name.length} characters, longer than ${MAX_TOPIC_LENGTH}`);
  }
}
