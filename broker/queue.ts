import { MessageTemplate } from '../frames/index.js';
import { BROKER_ERRORS, ProtocolError } from './errors.js';
import type { QueuedMessage, Subscription } from './subscription.js';

export interface QueueLimits {
  readonly maxMessages: number;
  readonly maxBytes: number;
  /** Deliveries before a message is dead-lettered; 0 never dead-letters. */
  readonly maxDeliveries: number;
}

/** Where a message goes once it has been delivered `maxDeliveries` times without being acknowledged. */
export type DeadLetter = (message: QueuedMessage, from: Queue) => void;

export const DEAD_LETTER_SUFFIX = '.dlq';

/**
 * Messages a node takes from a shared queue per consumer without a prefetch limit: enough to amortise a Redis
 * round trip, few enough that other nodes' consumers still get their share.
 */
const FEED_BATCH = 16;

/**
 * Where a queue shared by the cluster gets its messages from, and where they go back. The local Queue then only
 * holds what this node has taken for its own consumers.
 */
export interface QueueFeed {
  /** This node has consumers (true) or no longer has any (false). */
  setActive(active: boolean): void;
  /** The queue ran dry while consumers have room: take more (they arrive through Queue.accept). */
  request(capacity: number): void;
  acknowledge(message: QueuedMessage): void;
  /** Back to the shared queue, for any consumer on any node. */
  requeue(message: QueuedMessage): void;
  deadLetter(message: QueuedMessage): void;
}

/** Each message to exactly one consumer, round-robin over consumers that have room (prefetch and socket). */
export class Queue {
  readonly name: string;
  #limits: QueueLimits;
  #deadLetter: DeadLetter;
  /** Waiting messages from `#head` on; the slots before it are spent and reclaimed in batches. */
  #items: (QueuedMessage | undefined)[] = [];
  #head = 0;
  #bytes = 0;
  #seq = 0;
  #consumers: Subscription[] = [];
  #next = 0;
  #dispatching = false;
  #feed: QueueFeed | undefined;
  /** Deliveries to client-ack subscriptions not yet acknowledged or returned. */
  #unsettled = 0;
  /** Messages handed to consumers on this node, and how many of those were redeliveries (for per-queue metrics). */
  delivered = 0;
  redelivered = 0;

  constructor(name: string, limits: QueueLimits, deadLetter: DeadLetter) {
    this.name = name;
    this.#limits = limits;
    this.#deadLetter = deadLetter;
  }

  /** Makes this queue a window on a shared one. Set once, right after creation. */
  setFeed(feed: QueueFeed): void {
    this.#feed = feed;
  }

  get shared(): boolean {
    return this.#feed !== undefined;
  }

  /** A message the feed took from the shared queue for this node. */
  accept(template: MessageTemplate, deliveries: number, envelope: QueuedMessage['envelope']): void {
    const bytes = template.body.length + 256;
    this.#items.push({ template, queue: this.name, bytes, seq: this.#seq++, deliveries, envelope });
    this.#bytes += bytes;
  }

  /** The client acknowledged a delivery. */
  acknowledge(message: QueuedMessage): void {
    if (this.#unsettled > 0) this.#unsettled--;
    this.#feed?.acknowledge(message);
  }

  /**
   * Holds nothing at all: no messages, consumers or unacknowledged deliveries. A shared queue's window is then
   * inactive, and its feed returns to the cluster whatever a take still in flight brings back.
   */
  get idle(): boolean {
    return this.depth === 0 && this.#consumers.length === 0 && this.#unsettled === 0;
  }

  get depth(): number {
    return this.#items.length - this.#head;
  }

  get consumerCount(): number {
    return this.#consumers.length;
  }

  /** Bytes of the waiting messages (bodies plus an allowance per message), as maxQueueBytes counts them. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Deliveries to client-ack subscriptions not yet acknowledged or returned. */
  get unacked(): number {
    return this.#unsettled;
  }

  /**
   * Removes and returns every waiting message (an operator's purge or dead-letter move); deliveries awaiting an
   * ACK stay with their consumers, as a RabbitMQ purge leaves unacknowledged messages alone.
   */
  takeWaiting(): QueuedMessage[] {
    const out = this.#items.slice(this.#head) as QueuedMessage[];
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
    return out;
  }

  /** Throws ERR_QUEUE_FULL (the sender gets an ERROR) rather than let a queue nobody reads grow without bound. */
  enqueue(template: MessageTemplate): void {
    const bytes = template.body.length + 256;
    if (this.depth >= this.#limits.maxMessages || this.#bytes + bytes > this.#limits.maxBytes) {
      throw new ProtocolError(
        BROKER_ERRORS.ERR_QUEUE_FULL,
        `queue ${template.destination} is full`,
        `The queue holds ${this.depth} messages (${this.#bytes} bytes); the limits are ${this.#limits.maxMessages} messages and ${this.#limits.maxBytes} bytes. Consume from it or raise maxQueueMessages / maxQueueBytes.`,
      );
    }
    this.#items.push({ template, queue: this.name, bytes, seq: this.#seq++, deliveries: 0 });
    this.#bytes += bytes;
    this.dispatch();
  }

  addConsumer(sub: Subscription): void {
    this.#consumers.push(sub);
    if (this.#consumers.length === 1) this.#feed?.setActive(true);
    this.dispatch();
  }

  removeConsumer(sub: Subscription): void {
    const at = this.#consumers.indexOf(sub);
    if (at === -1) return;
    this.#consumers.splice(at, 1);
    if (this.#next > at) this.#next--;
    const feed = this.#feed;
    if (feed !== undefined && this.#consumers.length === 0) {
      feed.setActive(false);
      // Taken for consumers that are gone, never delivered: back to the head of the cluster's queue, delivery
      // count unchanged, last first so that they keep their order there.
      for (let i = this.#items.length - 1; i >= this.#head; i--) feed.requeue(this.#items[i] as QueuedMessage);
      this.#items = [];
      this.#head = 0;
      this.#bytes = 0;
    }
  }

  /** A delivery came back unacknowledged (NACK, UNSUBSCRIBE, disconnect): redeliver it, or dead-letter it. */
  returnMessage(message: QueuedMessage): void {
    if (this.#unsettled > 0) this.#unsettled--;
    const max = this.#limits.maxDeliveries;
    const dead = max > 0 && message.deliveries >= max && !this.name.endsWith(DEAD_LETTER_SUFFIX);
    const feed = this.#feed;
    if (feed !== undefined) {
      if (dead) feed.deadLetter(message);
      else feed.requeue(message);
      return;
    }
    if (dead) {
      this.#deadLetter(message, this);
      return;
    }
    // Back into arrival order, so a redelivered message is not overtaken by ones that came after it.
    let lo = this.#head;
    let hi = this.#items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#items[mid] as QueuedMessage).seq < message.seq) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.#head && this.#head > 0) this.#items[--this.#head] = message;
    else this.#items.splice(lo, 0, message);
    this.#bytes += message.bytes;
    this.dispatch();
  }

  /** Hands waiting messages to ready consumers; called on every event that can make progress possible. */
  dispatch(): void {
    if (this.#dispatching) return; // a delivery that closes a session returns messages here; the loop picks them up
    this.#dispatching = true;
    try {
      while (this.#head < this.#items.length) {
        const sub = this.#pick();
        if (sub === undefined) break;
        const message = this.#items[this.#head] as QueuedMessage;
        this.#items[this.#head++] = undefined;
        this.#bytes -= message.bytes;
        message.deliveries++;
        this.delivered++;
        if (message.deliveries > 1) this.redelivered++;
        if (sub.ackMode === 'auto') {
          sub.consumer.deliver(sub, message.template, message);
          this.#feed?.acknowledge(message);
        } else {
          this.#unsettled++;
          sub.consumer.deliver(sub, message.template, message);
        }
      }
      if (this.#feed !== undefined && this.#head === this.#items.length) {
        const capacity = this.#capacity();
        if (capacity > 0) this.#feed.request(capacity);
      }
    } finally {
      this.#dispatching = false;
      this.#compact();
    }
  }

  /** How many more messages the ready consumers could take now, capped so one node cannot hoard a queue. */
  #capacity(): number {
    let room = 0;
    for (const sub of this.#consumers) {
      if (!sub.ready) continue;
      const free = sub.window - sub.pending.size;
      room += sub.ackMode === 'auto' ? FEED_BATCH : sub.prefetch === 0 ? Math.min(FEED_BATCH, free) : free;
    }
    return Math.min(room, FEED_BATCH * 4);
  }

  #pick(): Subscription | undefined {
    const n = this.#consumers.length;
    for (let tried = 0; tried < n; tried++) {
      if (this.#next >= n) this.#next = 0;
      const sub = this.#consumers[this.#next++] as Subscription;
      if (sub.ready) return sub;
    }
    return undefined;
  }

  #compact(): void {
    // Reclaim spent slots once they are most of the array, so a long-lived queue's array stays proportional.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    } else if (this.#head === this.#items.length && this.#head > 0) {
      this.#items = [];
      this.#head = 0;
    }
  }
}

/** The copy of a message sent on redelivery: same id and body, plus `redelivered` and the return count. */
export function redeliveryTemplate(message: QueuedMessage): MessageTemplate {
  const t = message.template;
  const headers = withoutDeliveryHeaders(t.headers);
  headers.push(['redelivered', 'true'], ['x-delivery-count', String(message.deliveries - 1)]);
  return new MessageTemplate(t.destination, t.messageId, headers, t.body);
}

/** The user headers of a message without the ones the broker adds per delivery. */
function withoutDeliveryHeaders(headers: ReadonlyArray<readonly [string, string]>): (readonly [string, string])[] {
  return headers.filter(([name]) => name !== 'redelivered' && name !== 'x-delivery-count');
}

/** Headers of a dead-lettered copy: where it came from, why, and how often it was delivered. Local and shared queues alike. */
export function deadLetterHeaders(
  headers: ReadonlyArray<readonly [string, string]>,
  destination: string,
  deliveries: number,
): (readonly [string, string])[] {
  const out = withoutDeliveryHeaders(headers);
  out.push(['x-original-destination', destination], ['x-death-reason', 'delivery-limit'], ['x-delivery-count', String(deliveries)]);
  return out;
}

/** Headers of a dead-lettered message sent back to its queue by an operator: the dead-letter and delivery marks go. */
export function revivedHeaders(headers: ReadonlyArray<readonly [string, string]>): (readonly [string, string])[] {
  return withoutDeliveryHeaders(headers).filter(([name]) => name !== 'x-original-destination' && name !== 'x-death-reason');
}
