import type { BusEnvelope } from './bus.js';

/** A queue message held by a shared queue engine, with how often it has been handed out so far. */
export interface SharedQueueMessage {
  readonly envelope: BusEnvelope;
  readonly deliveries: number;
}

/**
 * Queues shared by every node of a cluster: each message reaches exactly one consumer cluster-wide. A node
 * takes messages into its own in-flight set only when a local consumer has room, acknowledges them when the
 * client does, and puts them back at the head when the client NACKs or leaves. The in-flight set of a node
 * that stops answering is put back by the survivors.
 */
export interface SharedQueues {
  readonly name: string;
  readonly healthy: boolean;
  start(): Promise<void>;
  /** Appends at the tail; a repeated id is stored once. */
  push(envelope: BusEnvelope): Promise<void>;
  /** This node has consumers on the queue: `available` is called whenever messages may be waiting. */
  attach(vhost: string, queue: string, available: () => void): void;
  detach(vhost: string, queue: string): void;
  /** Moves up to `max` waiting messages into this node's in-flight set and returns them, oldest first. */
  take(vhost: string, queue: string, max: number): Promise<SharedQueueMessage[]>;
  /** The client acknowledged it: gone for good. */
  ack(vhost: string, queue: string, id: string): Promise<void>;
  /** Back to the head of its queue for redelivery (NACK, UNSUBSCRIBE, disconnect). */
  requeue(vhost: string, queue: string, message: SharedQueueMessage): Promise<void>;
  close(): Promise<void>;

  // Operators (management API and metrics), never on the message path; engines without them show no cluster-wide view.

  /**
   * This node's consumer counts per queue, read by the engine whenever it refreshes its liveness, so that every
   * node can report consumers cluster-wide.
   */
  reportConsumers?(read: () => Iterable<QueueConsumers>): void;
  /**
   * Every queue the cluster knows: waiting messages, their bytes, taken but unacknowledged, and the consumers the
   * OTHER nodes reported (the caller adds its own, which it knows live).
   */
  stats?(): Promise<SharedQueueStats[]>;
  /** Drops every waiting message of a queue (not those taken by a node); resolves with how many were dropped. */
  purge?(vhost: string, queue: string): Promise<number>;
  /**
   * Moves every waiting message of `from` to the tail of `to`, each rewritten by `rewrite` (new destination and
   * headers); a message is in exactly one of the two lists at any time. Resolves with how many moved.
   */
  move?(vhost: string, from: string, to: string, rewrite: (message: SharedQueueMessage) => SharedQueueMessage): Promise<number>;
}

export interface QueueConsumers {
  readonly vhost: string;
  readonly queue: string;
  readonly consumers: number;
}

/** One shared queue, cluster-wide. `unacked` is what nodes took and have not acknowledged (delivered or about to be). */
export interface SharedQueueStats extends QueueConsumers {
  readonly depth: number;
  readonly bytes: number;
  readonly unacked: number;
}
