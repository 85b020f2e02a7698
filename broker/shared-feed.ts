import { MessageTemplate } from '../frames/index.js';
import type { BusEnvelope } from './ports/bus.js';
import type { SharedQueueMessage, SharedQueues } from './ports/queues.js';
import type { Logger } from './ports/logger.js';
import { DEAD_LETTER_SUFFIX, deadLetterHeaders, type Queue, type QueueFeed } from './queue.js';
import type { QueuedMessage } from './subscription.js';

/** Connects one local Queue to its shared queue in the cluster. At most one take is in flight at a time. */
export class SharedQueueFeed implements QueueFeed {
  #queues: SharedQueues;
  #vhost: string;
  #queue: Queue;
  #log: Logger;
  #taking = false;
  #active = false;

  constructor(queues: SharedQueues, vhost: string, queue: Queue, log: Logger) {
    this.#queues = queues;
    this.#vhost = vhost;
    this.#queue = queue;
    this.#log = log;
  }

  setActive(active: boolean): void {
    this.#active = active;
    if (active) this.#queues.attach(this.#vhost, this.#queue.name, () => this.#queue.dispatch());
    else this.#queues.detach(this.#vhost, this.#queue.name);
  }

  request(capacity: number): void {
    if (this.#taking || !this.#active) return;
    this.#taking = true;
    this.#queues.take(this.#vhost, this.#queue.name, capacity).then(
      (messages) => {
        this.#taking = false;
        if (!this.#active) {
          // The last local consumer left while the take was in flight: nobody here will ever take these, so they go
          // back to the head of the cluster's queue (last first, to keep their order), never delivered.
          for (let i = messages.length - 1; i >= 0; i--) this.#requeueTaken(messages[i] as SharedQueueMessage);
          return;
        }
        for (const m of messages) {
          const e = m.envelope;
          this.#queue.accept(new MessageTemplate(e.destination, e.id, e.headers, e.body), m.deliveries, e);
        }
        if (messages.length > 0) this.#queue.dispatch();
      },
      (error: unknown) => {
        this.#taking = false;
        this.#log.debug({ err: error, queue: this.#queue.name }, 'taking from the shared queue failed; retried on the next signal');
      },
    );
  }

  /** A message taken for this node that no local consumer can have: back to the cluster as it was. */
  #requeueTaken(message: SharedQueueMessage): void {
    this.#queues.requeue(this.#vhost, this.#queue.name, message).catch((error: unknown) => {
      this.#log.warn(
        { err: error, id: message.envelope.id },
        'could not return a message to the shared queue; it returns when this node is presumed dead',
      );
    });
  }

  acknowledge(message: QueuedMessage): void {
    const e = message.envelope;
    if (e === undefined) return;
    this.#queues.ack(this.#vhost, this.#queue.name, e.id).catch((error: unknown) => {
      // The message stays in this node's in-flight set; if the node dies it is redelivered (at-least-once).
      this.#log.warn({ err: error, id: e.id }, 'could not record an ACK in the shared queue');
    });
  }

  requeue(message: QueuedMessage): void {
    const e = message.envelope;
    if (e === undefined) return;
    this.#queues.requeue(this.#vhost, this.#queue.name, { envelope: e, deliveries: message.deliveries }).catch((error: unknown) => {
      this.#log.warn(
        { err: error, id: e.id },
        'could not return a message to the shared queue; it returns when this node is presumed dead',
      );
    });
  }

  deadLetter(message: QueuedMessage): void {
    const e = message.envelope;
    if (e === undefined) return;
    const headers = deadLetterHeaders(e.headers, e.destination, message.deliveries);
    const dead: BusEnvelope = { ...e, id: `${e.id}-dlq`, destination: `/queue/${this.#queue.name}${DEAD_LETTER_SUFFIX}`, headers };
    this.#queues
      .push(dead)
      .then(() => this.#queues.ack(this.#vhost, this.#queue.name, e.id))
      .catch((error: unknown) => {
        this.#log.warn({ err: error, id: e.id }, 'could not dead-letter a message');
      });
  }
}
