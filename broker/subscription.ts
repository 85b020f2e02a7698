import { messagePrefix, type MessageTemplate, type StompVersion } from '../frames/index.js';
import type { Destination } from './destinations.js';
import type { BusEnvelope } from './ports/bus.js';

export const ACK_MODES = ['auto', 'client', 'client-individual'] as const;
export type AckMode = (typeof ACK_MODES)[number];

/** One queue message while it lives in the broker; `deliveries` counts how often it has been handed out. */
export interface QueuedMessage {
  readonly template: MessageTemplate;
  readonly queue: string;
  readonly bytes: number;
  /** Arrival order in its queue, used to put returned messages back where they were. */
  readonly seq: number;
  deliveries: number;
  /** For messages of a shared (cross-node) queue: the envelope it goes back to Redis as. */
  readonly envelope?: BusEnvelope | undefined;
}

/** A message handed to a client-ack subscription and not yet acknowledged. */
export interface Delivery {
  readonly ackId: string;
  readonly messageId: string;
  readonly subscription: Subscription;
  /** Present for queue messages, which go back to their queue when not acknowledged. */
  readonly queued: QueuedMessage | undefined;
}

/** What a destination needs from the session that owns a subscription. */
export interface Consumer {
  /** False while the client's socket holds more unsent bytes than the high-water mark. */
  readonly writable: boolean;
  deliver(subscription: Subscription, template: MessageTemplate, queued?: QueuedMessage): void;
  /**
   * Whether a replay may send this client more now: true at once, or a Promise of true once its socket has
   * drained enough, or of false when the client is gone. Replays are paced by it so that history larger than
   * maxOutboundBytes reaches a client that reads, instead of disconnecting it.
   */
  readyForReplay(): boolean | Promise<boolean>;
  /** Live messages held back during a replay passed maxOutboundBytes: the client cannot keep up. */
  overflowed(): void;
}

export class Subscription {
  readonly id: string;
  readonly consumer: Consumer;
  readonly destination: Destination;
  readonly ackMode: AckMode;
  /** Most unacknowledged messages at once (client modes) the client asked for; 0 means it set no limit. */
  readonly prefetch: number;
  /**
   * Most unacknowledged messages at once (client modes) whatever the client asked: the smaller of `prefetch` and
   * the node's maxUnackedPerSubscription, so a consumer that never ACKs cannot pin a whole queue in memory.
   */
  readonly window: number;
  /** Dot-separated pattern segments for wildcard topic subscriptions. */
  readonly pattern: readonly string[] | undefined;
  /** Unacknowledged deliveries by ack id, in delivery order (cumulative ACK walks it from the start). */
  readonly pending = new Map<string, Delivery>();
  /** `MESSAGE\nsubscription:<id>\n`, encoded once for the session's version. */
  readonly prefix: Buffer;
  /**
   * While history is replayed (`x-history`, `x-resume-after`, `x-stream-offset`), live messages wait here so that
   * the replay and the live stream join with no gap and no duplicate.
   */
  replayBuffer: MessageTemplate[] | undefined;
  /** Bytes held in `replayBuffer` (bodies plus an allowance per message), bounded by maxOutboundBytes. */
  replayBufferBytes = 0;
  /** Set once unsubscribed (or its session closed): a replay still running for it stops. */
  cancelled = false;
  /** The exact topic name this subscription holds in its virtual host's destination count, once counted. */
  countedName: string | undefined;
  /** Ids replayed from history, to drop their live copies at the boundary. */
  replayedIds: Set<string> | undefined;
  /**
   * Highest stream position replayed (Kafka routes), or resumed after (`x-resume-after`): a live copy at or below
   * it arrives after its replay (stored before its fan-out reached this node) or was delivered again by the bus
   * (consumed twice across a rebalance), and is dropped, for as long as the subscription lives.
   */
  replayedUpTo: number | undefined;
  /** Highest stream position seen live (Kafka routes), to catch up from after the fan-out link was down. */
  lastPosition: number | undefined;
  /** Where to catch up from once the fan-out link is back; set when it goes down. */
  catchUpFrom: { readonly fromPosition: number } | { readonly fromTime: number } | undefined;
  /** When the subscription became live (ms), for a catch-up before any positioned message arrived. */
  readonly liveSince = Date.now();
  /**
   * Ids replayed from history on a route whose fan-out may follow the store by a moment (Redis): live copies
   * arriving after the replay are dropped too, for a short while after it (then forgotten).
   */
  lateCopies: Set<string> | undefined;

  constructor(init: {
    id: string;
    consumer: Consumer;
    destination: Destination;
    ackMode: AckMode;
    prefetch: number;
    pattern: readonly string[] | undefined;
    version: StompVersion;
    /** The node's maxUnackedPerSubscription. */
    maxUnacked: number;
  }) {
    this.id = init.id;
    this.consumer = init.consumer;
    this.destination = init.destination;
    this.ackMode = init.ackMode;
    this.prefetch = init.prefetch;
    this.window = init.prefetch === 0 ? init.maxUnacked : Math.min(init.prefetch, init.maxUnacked);
    this.pattern = init.pattern;
    this.prefix = messagePrefix(init.id, init.version);
  }

  /** Whether a queue may hand this subscription one more message now. */
  get ready(): boolean {
    if (!this.consumer.writable) return false;
    return this.ackMode === 'auto' || this.pending.size < this.window;
  }
}
