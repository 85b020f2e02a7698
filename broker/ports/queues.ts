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
}
