import { randomBytes } from 'node:crypto';
import type { BusCapabilities, BusEnvelope, ClusterBus, Deliver, PublishInput } from '../broker/ports/bus.js';

/**
 * A bus inside one process. One instance shared by several brokers is a cluster in a process, which is how the
 * cluster specs run before they run the same scenarios over Redis and Kafka.
 */
export class MemoryBus implements ClusterBus {
  readonly name = 'memory';
  readonly capabilities: BusCapabilities = { ordered: true, durable: false, crossNode: true };
  readonly healthy = true;
  #nodes = new Set<Deliver>();
  #prefix = randomBytes(3).toString('hex');
  #seq = 0;

  /** A view of this bus for one node; each node starts its own. */
  async start(deliver: Deliver): Promise<void> {
    this.#nodes.add(deliver);
  }

  async publish(envelope: PublishInput): Promise<void> {
    const full: BusEnvelope = { ...envelope, id: envelope.id ?? `${this.#prefix}-${(++this.#seq).toString(36)}` };
    for (const deliver of this.#nodes) deliver(full);
  }

  async watch(): Promise<void> {}

  unwatch(): void {}

  async close(): Promise<void> {
    this.#nodes.clear();
  }

  /** Removes one node (its broker closed) without closing the bus for the others. */
  leave(deliver: Deliver): void {
    this.#nodes.delete(deliver);
  }
}
