/**
 * The cluster seam. A ClusterBus carries messages between the nodes of a cluster using an engine that already
 * exists (in-process memory, Redis pub/sub, a Kafka log); Stompede never speaks a cluster protocol of its own.
 *
 * Contract, checked by spec/bridge/bus-conformance.ts for every backend:
 * - `publish` resolves once the bus has accepted the envelope (for a durable bus: once it is durable). It
 *   rejects with a BridgeError when the bus cannot take it, so the client gets an ERROR, never silence.
 * - Every node that `watch`es a destination (or a pattern matching it) has `deliver` called with the envelope,
 *   once. A bus may call `deliver` more than once with the same `id` after a failure; nodes drop duplicates.
 * - With `ordered`, envelopes published to one destination are delivered in publish order on every node.
 */
export interface BusEnvelope {
  /** Stable id: becomes the MESSAGE `message-id` on every node (no `:`, `\` or whitespace). */
  readonly id: string;
  /** Node that accepted the SEND. */
  readonly origin: string;
  readonly vhost: string;
  /** Full destination, e.g. `/topic/chat.room1`. */
  readonly destination: string;
  /** User headers of the SEND, in order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** Milliseconds since the epoch when the message was accepted. */
  readonly time: number;
  /**
   * Order of the message within its destination's stream where the bus has one (a Kafka offset), used by the
   * history store and by `x-stream-offset`; undefined on buses without order.
   */
  readonly position?: number | undefined;
}

export interface BusCapabilities {
  /** Per-destination order is kept across nodes. */
  readonly ordered: boolean;
  /** An accepted publish survives a crash of the node and of the bus (up to the engine's own guarantees). */
  readonly durable: boolean;
  /** Reaches other nodes at all (the memory bus does not). */
  readonly crossNode: boolean;
}

export type Deliver = (envelope: BusEnvelope) => void;

export interface LinkListener {
  down(): void;
  /** Every watched destination is subscribed again: anything published from now on arrives. */
  up(): void;
}

/** What a publisher hands a bus: an envelope whose id the bus may assign (Kafka derives it from coordinates). */
export type PublishInput = Omit<BusEnvelope, 'id' | 'position'> & {
  readonly id?: string | undefined;
  readonly position?: number | undefined;
};

export interface ClusterBus {
  readonly name: string;
  readonly capabilities: BusCapabilities;
  /** Inward records (or parts of them) this bus could not deliver, by reason: `stompede_bridge_records_dropped_total`. */
  readonly droppedRecords?: ReadonlyMap<string, number>;
  /** Connects; from then on envelopes for watched destinations arrive through `deliver`. */
  start(deliver: Deliver): Promise<void>;
  /** Accepts one envelope for delivery to every interested node (this one included). */
  publish(envelope: PublishInput): Promise<void>;
  /**
   * Reference-counted interest of this node in a topic destination or wildcard pattern (full destination with
   * `*`/`#`). Resolves once messages published afterwards are certain to arrive (for SUBSCRIBE RECEIPTs).
   */
  watch(vhost: string, destination: string): Promise<void>;
  unwatch(vhost: string, destination: string): void;
  /**
   * Told when this node stops hearing the bus (its subscriber connection dropped) and when every watched
   * destination is subscribed again, so that subscriptions can catch up from history across the gap.
   */
  setLinkListener?(listener: LinkListener): void;
  /** True while connected to its engine (readiness). */
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** Failures of an engine. `retriable` ones are retried with backoff; the rest surface to the client at once. */
export class BridgeError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  constructor(code: string, message: string, retriable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BridgeError';
    this.code = code;
    this.retriable = retriable;
  }
}

/** One table of backoff defaults for every engine client (kafkajs-style: exponential with jitter, capped). */
export const RETRY_DEFAULTS = Object.freeze({
  initialMs: 100,
  maxMs: 5_000,
  factor: 2,
  jitter: 0.2,
});

export function backoffMs(attempt: number): number {
  const base = Math.min(RETRY_DEFAULTS.maxMs, RETRY_DEFAULTS.initialMs * RETRY_DEFAULTS.factor ** attempt);
  return Math.round(base * (1 - RETRY_DEFAULTS.jitter + Math.random() * 2 * RETRY_DEFAULTS.jitter));
}
