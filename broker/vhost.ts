import { DEAD_LETTER_SUFFIX, Queue, deadLetterHeaders, type QueueLimits } from './queue.js';
import { MessageTemplate } from '../frames/index.js';
import { TopicRegistry } from './topics.js';
import type { QueuedMessage } from './subscription.js';

/** One namespace of destinations, named by the CONNECT `host` header. Nothing crosses between virtual hosts. */
export class VirtualHost {
  readonly name: string;
  readonly topics = new TopicRegistry();
  readonly queues = new Map<string, Queue>();
  sessions = 0;
  #limits: QueueLimits;
  #created: (queue: Queue) => void;

  /** `created` sees every new queue, so the broker can connect shared ones to the cluster. */
  constructor(name: string, limits: QueueLimits, created: (queue: Queue) => void = () => {}) {
    this.name = name;
    this.#limits = limits;
    this.#created = created;
  }

  /** The queue of that name, created on first use (as RabbitMQ and ActiveMQ do for STOMP destinations). */
  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (q === undefined) {
      q = new Queue(name, this.#limits, (message, from) => this.#deadLetter(message, from));
      this.queues.set(name, q);
      this.#created(q);
    }
    return q;
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
