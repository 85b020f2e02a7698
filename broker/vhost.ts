import { DEAD_LETTER_SUFFIX, Queue, deadLetterHeaders, type QueueLimits } from './queue.js';
import { MessageTemplate } from '../frames/index.js';
import { QUEUE_PREFIX } from './destinations.js';
import { TopicRegistry } from './topics.js';
import type { QueuedMessage } from './subscription.js';

/** What holds state under one destination name; a name held in several ways counts once. */
interface Held {
  queue: boolean;
  history: boolean;
  /** Exact (non-wildcard) topic subscriptions to this name. */
  subscribers: number;
}

/** One namespace of destinations, named by the CONNECT `host` header. Nothing crosses between virtual hosts. */
export class VirtualHost {
  readonly name: string;
  readonly topics = new TopicRegistry();
  readonly queues = new Map<string, Queue>();
  sessions = 0;
  #limits: QueueLimits;
  #created: (queue: Queue) => void;
  /** Destination names (full, e.g. `/queue/a`) holding state here: what maxDestinationsPerVhost counts. */
  #held = new Map<string, Held>();

  /** `created` sees every new queue, so the broker can connect shared ones to the cluster. */
  constructor(name: string, limits: QueueLimits, created: (queue: Queue) => void = () => {}) {
    this.name = name;
    this.#limits = limits;
    this.#created = created;
  }

  /** Distinct destinations holding state in this virtual host. */
  get destinationCount(): number {
    return this.#held.size;
  }

  /** Whether a destination already holds state here (using it again creates nothing new). */
  holds(full: string): boolean {
    return this.#held.has(full);
  }

  /** Whether this name holds history (a SEND to it adds to existing state). */
  holdsHistory(full: string): boolean {
    return this.#held.get(full)?.history === true;
  }

  #entry(full: string): Held {
    let h = this.#held.get(full);
    if (h === undefined) {
      h = { queue: false, history: false, subscribers: 0 };
      this.#held.set(full, h);
    }
    return h;
  }

  #release(full: string, h: Held): void {
    if (!h.queue && !h.history && h.subscribers === 0) this.#held.delete(full);
  }

  holdHistory(full: string): void {
    this.#entry(full).history = true;
  }

  /** The history of this topic was evicted entirely. */
  releaseHistory(full: string): void {
    const h = this.#held.get(full);
    if (h === undefined) return;
    h.history = false;
    this.#release(full, h);
  }

  addSubscriber(full: string): void {
    this.#entry(full).subscribers++;
  }

  removeSubscriber(full: string): void {
    const h = this.#held.get(full);
    if (h === undefined) return;
    h.subscribers = Math.max(0, h.subscribers - 1);
    this.#release(full, h);
  }

  /** The queue of that name, created on first use (as RabbitMQ and ActiveMQ do for STOMP destinations). */
  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (q === undefined) {
      q = new Queue(name, this.#limits, (message, from) => this.#deadLetter(message, from));
      this.queues.set(name, q);
      this.#entry(QUEUE_PREFIX + name).queue = true;
      this.#created(q);
    }
    return q;
  }

  /**
   * Forgets a queue that holds nothing: no messages, no consumers, no unacknowledged deliveries. Used again, it
   * is created again (and, on a cross-node route, connected to the cluster's queue again).
   */
  dropIfIdle(name: string): void {
    const q = this.queues.get(name);
    if (q === undefined || !q.idle) return;
    this.queues.delete(name);
    const full = QUEUE_PREFIX + name;
    const h = this.#held.get(full);
    if (h === undefined) return;
    h.queue = false;
    this.#release(full, h);
  }

  /** True when dropping this virtual host loses nothing: no sessions and no waiting messages. */
  get idle(): boolean {
    if (this.sessions > 0) return false;
    for (const q of this.queues.values()) if (q.depth > 0 || q.consumerCount > 0) return false;
    return true;
  }

  /** After maxDeliveries, a message moves to `/queue/<name>.dlq`, saying where it came from and why. */
  #deadLetter(message: QueuedMessage, from: Queue): void {
    const t = message.template;
    const dlqName = from.name + DEAD_LETTER_SUFFIX;
    const headers = deadLetterHeaders(t.headers, t.destination, message.deliveries);
    const dead = new MessageTemplate(`/queue/${dlqName}`, t.messageId, headers, t.body);
    try {
      this.queue(dlqName).enqueue(dead);
    } catch {
      // A full dead-letter queue drops the message: nobody is consuming it, and the sender was acknowledged long ago.
    }
  }
}
