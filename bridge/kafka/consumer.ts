import { setTimeout as sleep } from 'node:timers/promises';
import { PartitionAssigners, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage } from 'kafkajs';
import type { Logger } from '../../broker/ports/logger.js';
import { backoffMs, type ClusterBus, type Deliver } from '../../broker/ports/bus.js';
import type { HistoryRecord, HistoryStore } from '../../broker/ports/history.js';
import { decodeRecord } from '../kafka-codec.js';
import type { SharedQueues } from '../../broker/ports/queues.js';
import type { HistoryCounters, HistoryJob, HistoryWriter } from './history-writer.js';
import { canStage, stageFirst, storeFirst } from './history-writer.js';
import { OffsetCommits, type CommitOffset, type Entry } from './partition-progress.js';
import { subscribedAssigner } from './assigner.js';

/** Where a partition starts (a new per-node group starts at the end of the log as of start()). */
export interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** The stages a delivery retry is reported for (the `retry` event of the bus). */
export type DeliveryStage = 'fanout' | 'queues';

export interface ConsumerCounters extends HistoryCounters {
  consumed: number;
}

export interface BusConsumerOptions {
  groupId: string;
  topics: readonly string[];
  /** Partitions per topic, for the number of partitions consumed concurrently. */
  partitions: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  fetchMaxWaitMs: number;
  fromBeginning: boolean;
  maxPendingHistory: number;
  fanout: Pick<ClusterBus, 'publish'> | undefined;
  queues: SharedQueues | undefined;
  /** Where a batch's topic records are stored before delivery while the store is healthy. */
  store: HistoryStore;
  /** Where the records not stored first are appended afterwards. */
  history: HistoryWriter;
  counters: ConsumerCounters;
  logger: Logger;
  /** False once the bus is closing: batches in hand stop at their next retry. */
  isRunning(): boolean;
  retry?: ((stage: DeliveryStage, attempt: number, delayMs: number, error: unknown) => void) | undefined;
  committed?: ((offsets: readonly CommitOffset[]) => void) | undefined;
  /**
   * The group gave this node partitions of topics it does not consume (a leader that does not assign by
   * subscription: a node of an older version): consuming them too lets the next generation read them.
   */
  unsubscribed?: ((topics: readonly string[]) => void) | undefined;
  /** A consumed record as the message it stands for; undefined: not deliverable (the decoder counts it). */
  decode?: ((topic: string, partition: number, record: KafkaMessage) => HistoryRecord | undefined) | undefined;
}

interface Work {
  readonly envelope: HistoryRecord | undefined;
  readonly entry: Entry;
  readonly kind: 'topic' | 'queue' | 'none';
  /** Stored in history before delivery, so no background append is owed. */
  stored?: boolean;
  /** Staged in the history store's cache before delivery (the normal case with one): appended in the background. */
  staged?: boolean;
  delivered?: boolean;
}

const QUEUE_PREFIX = '/queue/';

/**
 * The consumer side of the Kafka bus: one kafkajs consumer (replaced when kafkajs gives up on it), each batch
 * decoded and handed on in offset order, offsets committed by hand only up to the last record whose delivery AND
 * history append succeeded.
 */
export class BusConsumer {
  readonly offsets: OffsetCommits;
  #o: BusConsumerOptions;
  #consumer: Consumer | undefined;
  #ok = false;
  #deliver: Deliver = () => {};
  #activeBatches = 0;
  #rebalancingSince: number | undefined;
  /** Bumped when a heartbeat during batches hears of a rebalance: the batches in hand then stop (see #beating). */
  #generation = 0;
  /** Batches waiting on the history store, woken when #generation is bumped. */
  #waiting = new Set<() => void>();
  #beat: NodeJS.Timeout | undefined;
  #beatWith: (() => Promise<void>) | undefined;
  #batchesIdle: (() => void) | undefined;
  /** The store's bulk append, one function, so that the history writer can join queued batches. */
  #appendMany = (records: readonly HistoryRecord[]): Promise<number> => this.#o.store.appendMany(records);

  constructor(options: BusConsumerOptions) {
    this.#o = options;
    this.offsets = new OffsetCommits({
      commit: (offsets) => {
        const consumer = this.#consumer;
        if (consumer === undefined) return Promise.reject(new Error('no Kafka consumer'));
        return consumer.commitOffsets(offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset) })));
      },
      committed: options.committed,
      // Rebalancing or a coordinator move: the next tick (or the next owner) commits.
      failed: (error) => this.#o.logger.debug({ err: error }, 'Kafka offset commit failed; retrying on the next tick'),
    });
  }

  /** In a group generation and not crashed. */
  get healthy(): boolean {
    return this.#ok;
  }

  async start(kafka: Kafka, fresh: readonly PartitionOffset[], deliver: Deliver): Promise<void> {
    this.#deliver = deliver;
    await this.#start(kafka, fresh);
  }

  async #start(kafka: Kafka, fresh: readonly PartitionOffset[]): Promise<void> {
    const o = this.#o;
    const consumer = kafka.consumer({
      groupId: o.groupId,
      sessionTimeout: o.sessionTimeoutMs,
      rebalanceTimeout: Math.max(o.sessionTimeoutMs, 30_000),
      heartbeatInterval: o.heartbeatIntervalMs,
      maxWaitTimeInMs: o.fetchMaxWaitMs,
      allowAutoTopicCreation: false,
      // Nodes may consume different topics for a while (one added a topic a client named): only members that read
      // a topic get its partitions. Round-robin stays offered for groups with nodes that do not know ours.
      partitionAssigners: [subscribedAssigner, PartitionAssigners.roundRobin],
    });
    this.#consumer = consumer;
    consumer.on(consumer.events.RECEIVED_UNSUBSCRIBED_TOPICS, (event) => {
      o.unsubscribed?.(event.payload.topicsNotSubscribed);
    });
    consumer.on(consumer.events.REBALANCING, () => {
      this.#rebalancingSince = Date.now();
    });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      // A new generation: kafkajs reads every assigned partition again from its committed offset.
      this.offsets.reset();
      this.#ok = true;
      // One line per rebalance (a node joined, left or died): how long this node's partitions stood still.
      const { duration, memberAssignment } = event.payload;
      const partitions = Object.values(memberAssignment).reduce((sum, list) => sum + list.length, 0);
      const since = this.#rebalancingSince;
      this.#rebalancingSince = undefined;
      o.logger.info(
        { joinMs: duration, ...(since !== undefined ? { rebalanceMs: Date.now() - since } : {}), partitions },
        'joined the Kafka consumer group',
      );
    });
    let refused: Error | undefined;
    consumer.on(consumer.events.CRASH, (event) => {
      this.#ok = false;
      const { error, restart } = event.payload;
      if (kafkaErrorIs(error, SESSION_REFUSED)) {
        // A setting the brokers will never accept: no new consumer can do better, the operator has to act.
        refused = new SessionTimeoutRefused(o.sessionTimeoutMs, error);
        if (this.#o.isRunning()) o.logger.error({ err: refused }, refused.message);
        return;
      }
      if (restart) o.logger.warn({ err: error }, 'Kafka consumer crashed; kafkajs restarts it');
      else {
        o.logger.error({ err: error }, 'Kafka consumer crashed and kafkajs gave up on it; starting a new one');
        this.#replace(kafka, consumer, 0);
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...o.topics], fromBeginning: o.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.min(16, o.topics.length * o.partitions),
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    // run() joins the group before it resolves; a join the brokers refused has crashed the consumer by now.
    if (refused !== undefined) throw refused;
    if (fresh.length > 0) {
      // A new per-node group starts at the end of the log as it was when start() began, not wherever the end is
      // by its first fetch: then everything published once start() resolves is delivered. Seeking now (before
      // that fetch) places it; the commit keeps the place if this node stops before it processes anything.
      for (const f of fresh) consumer.seek(f);
      await consumer.commitOffsets(fresh.map((f) => ({ ...f }))).catch((error: unknown) => {
        o.logger.warn({ err: error }, 'could not commit the starting offsets of a new consumer group');
      });
    }
  }

  /**
   * kafkajs does not restart a consumer after a crash it deems non-retriable, e.g. "Failed to find group
   * coordinator" once its retries ran out while Kafka restarts: the node would stop consuming for good (and stay
   * unready). A new consumer joins the group instead, retried with backoff until it runs or the bus closes.
   */
  #replace(kafka: Kafka, crashed: Consumer, attempt: number): void {
    const timer = setTimeout(
      () => {
        if (!this.#o.isRunning() || this.#consumer !== crashed) return;
        void crashed
          .disconnect()
          .catch(() => {})
          .then(() => this.#start(kafka, []))
          .then(
            () => this.#o.logger.info({ attempt }, 'a new Kafka consumer replaced the crashed one'),
            (error: unknown) => {
              this.#o.logger.warn({ err: error, attempt }, 'could not start a new Kafka consumer; retrying');
              this.#replace(kafka, this.#consumer ?? crashed, attempt + 1);
            },
          );
      },
      backoffMs(Math.min(attempt, 6)),
    );
    timer.unref();
  }

  /**
   * Consumes `topics` (the array given as options.topics, grown by its owner) with a new consumer: kafkajs fixes a
   * consumer's topics when it subscribes. The group rebalances once; records in hand are read again (at least once).
   */
  async resubscribe(kafka: Kafka, fresh: readonly PartitionOffset[]): Promise<void> {
    const old = this.#consumer;
    await old?.disconnect().catch(() => {});
    if (this.#o.isRunning()) await this.#start(kafka, fresh);
  }

  /** Stops fetching (at close); batches in hand go on until their next retry. */
  pause(): void {
    try {
      this.#consumer?.pause(this.#o.topics.map((topic) => ({ topic })));
    } catch {
      // A consumer that crashed (kafkajs restarting it, or gave up) has no running group to pause: nothing to stop.
    }
  }

  /** Resolves when no batch is in hand, or after `timeoutMs`. */
  async idle(timeoutMs: number): Promise<void> {
    if (this.#activeBatches > 0) {
      await Promise.race([new Promise<void>((resolve) => (this.#batchesIdle = resolve)), sleep(timeoutMs, undefined, { ref: false })]);
    }
    this.#batchesIdle = undefined;
  }

  /** Leaves the group; never rejects. */
  disconnect(): Promise<void> {
    this.#ok = false;
    return this.#consumer?.disconnect().catch(() => {}) ?? Promise.resolve();
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const first = batch.messages[0];
    if (first === undefined || !this.#o.isRunning()) return;
    this.#activeBatches++;
    this.#beating(payload);
    const generation = this.#generation;
    const work: Work[] = [];
    let readable: Promise<void> | undefined;
    try {
      const progress = this.offsets.partition(batch.topic, batch.partition, Number(first.offset));
      if (!(await this.#waitForHistoryRoom(payload, generation))) return;
      for (const message of batch.messages) {
        const envelope = (this.#o.decode ?? decodeRecord)(batch.topic, batch.partition, message);
        // Everything but a queue fans out like a topic: `/topic/`, `/kafka/<topic>`, `/redis/<channel>`.
        const kind = envelope === undefined ? 'none' : envelope.destination.startsWith(QUEUE_PREFIX) ? 'queue' : 'topic';
        if (envelope === undefined) this.#o.counters.dropped++;
        work.push({ envelope, kind, entry: progress.track(Number(message.offset), kind === 'none' ? 0 : kind === 'topic' ? 2 : 1) });
      }
      // Staging in the history cache takes milliseconds, but the store itself, when written first (no cache, or one
      // that did not take the records), may take seconds (up to HISTORY_FIRST_MS); a rebalance does not wait for it.
      readable = this.#storeFirst(work);
      await this.#unlessRejoining(readable);
      // The group rebalances: this batch is abandoned, undelivered and uncommitted; the partition's next owner (this
      // node or another) reads it again from the committed offset, so nothing is lost, and the rejoin, which waits
      // for every batch in hand, is not held up by the delivery.
      if (generation !== this.#generation) return;
      const done = await this.#dispatch(work, payload, generation);
      if (done > 0) payload.resolveOffset(String((work[done - 1] as Work).entry.offset));
    } finally {
      // Staged records this batch did not deliver (abandoned, or the bus closing) are in the cache, readable: the
      // store gets them all the same, once staging is over (it may outlast an abandoned batch).
      if (readable !== undefined) void readable.then(() => this.#appendUndelivered(work));
      if (--this.#activeBatches === 0) {
        clearInterval(this.#beat);
        this.#beat = undefined;
        this.#batchesIdle?.();
      }
    }
  }

  /**
   * kafkajs heartbeats only between batches. While batches are in hand longer than a heartbeat interval (a slow
   * history store, a fanout being retried), this beats for them: a short session would otherwise expire a node
   * that is merely busy, and a rebalance (a node died) is heard of as soon as the coordinator starts it, so the
   * batches in hand stop instead of holding up the group's rejoin. One timer, only while batches are in hand.
   */
  #beating(payload: EachBatchPayload): void {
    this.#beatWith = () => payload.heartbeat();
    if (this.#beat !== undefined) return;
    this.#beat = setInterval(() => {
      this.#beatWith?.().catch((error: unknown) => {
        if (!kafkaErrorIs(error, REJOIN_NEEDED)) return;
        this.#generation++;
        for (const wake of this.#waiting) wake();
        this.#waiting.clear();
      });
    }, this.#o.heartbeatIntervalMs);
    this.#beat.unref();
  }

  /** `work`, or less: resolves early when a rebalance is heard of meanwhile (`work` goes on in the background). */
  #unlessRejoining(work: Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiting.add(resolve);
      const done = (): void => {
        this.#waiting.delete(resolve);
        resolve();
      };
      work.then(done, done);
    });
  }

  /**
   * Makes a batch's topic records readable in history before they are delivered: staged in the store's cache when
   * it has one (Redis, milliseconds; the store itself, MongoDB, gets them in the background), else, or for what the
   * cache did not take, stored in the store itself, given up to HISTORY_FIRST_MS. So a failover, which sends the
   * dead node's backlog through MongoDB all at once, does not hold up delivery on the surviving nodes.
   */
  async #storeFirst(work: Work[]): Promise<void> {
    const store = this.#o.store;
    const topics = work.filter((w) => w.kind === 'topic' && w.envelope !== undefined);
    if (topics.length === 0) return;
    const records = topics.map((w) => w.envelope as HistoryRecord);
    const outcome = canStage(store) ? await stageFirst(store, records) : [];
    // Found stored already: a partition's new owner reading again what the old one stored owes nothing for it.
    outcome.forEach((o, i) => ((topics[i] as Work)[o] = true));
    const staged = outcome.length;
    if (staged === topics.length || !store.healthy) return;
    const stored = await storeFirst(store, records.slice(staged));
    for (let i = 0; i < stored; i++) (topics[staged + i] as Work).stored = true;
  }

  /**
   * Hands the records of one batch on, in order; returns how many (from the start) are delivered. Remote steps
   * are pipelined (all issued in order, then awaited); a failure is retried from the first failed record on,
   * with backoff, until it succeeds, the bus closes or the partition moves to another node.
   */
  async #dispatch(work: readonly Work[], payload: EachBatchPayload, generation: number): Promise<number> {
    let from = 0;
    let attempt = 0;
    while (from < work.length) {
      const pending: { index: number; promise: Promise<void> }[] = [];
      let failedAt = work.length;
      let failure: unknown;
      let stage: DeliveryStage = 'fanout';
      for (let i = from; i < work.length; i++) {
        const w = work[i] as Work;
        const promise = this.#hand(w);
        if (promise !== undefined) pending.push({ index: i, promise });
      }
      // Local steps finished synchronously; remote ones are settled in order.
      const settled = await Promise.allSettled(pending.map((p) => p.promise));
      for (let k = 0; k < settled.length; k++) {
        const s = settled[k] as PromiseSettledResult<void>;
        if (s.status === 'rejected') {
          const index = (pending[k] as { index: number }).index;
          const w = work[index] as Work;
          if (isRetriable(s.reason)) {
            failedAt = index;
            failure = s.reason;
            stage = w.kind === 'queue' ? 'queues' : 'fanout';
            break;
          }
          this.#o.counters.dropped++;
          const where = { err: s.reason as unknown, id: w.envelope?.id, destination: w.envelope?.destination };
          this.#o.logger.error(where, 'dropped a Kafka record the fanout refused for good');
        }
      }
      const staged: HistoryJob[] = [];
      for (let i = from; i < failedAt; i++) this.#delivered(work[i] as Work, staged);
      if (staged.length > 0) this.#o.history.enqueueMany(staged, this.#appendMany);
      if (failedAt === work.length) return work.length;
      from = failedAt;
      attempt++;
      const delayMs = backoffMs(attempt - 1);
      if (attempt === 1) this.#o.logger.warn({ err: failure, stage }, `Kafka records could not be handed to the ${stage}; retrying`);
      this.#o.retry?.(stage, attempt, delayMs, failure);
      if (!(await this.#pause(delayMs, payload, generation))) return from;
    }
    return from;
  }

  /** Starts one record's delivery step: undefined when it completed on the spot. */
  #hand(w: Work): Promise<void> | undefined {
    const envelope = w.envelope;
    if (envelope === undefined) return undefined;
    const fanout = this.#o.fanout;
    const queues = this.#o.queues;
    if (fanout !== undefined) {
      if (w.kind === 'topic') return attempt(() => fanout.publish(envelope));
      if (queues !== undefined && envelope.destination.startsWith(QUEUE_PREFIX)) return attempt(() => queues.push(envelope));
    }
    try {
      this.#deliver(envelope);
    } catch (error) {
      // The broker's deliver catches its own failures; this is a bug there, reported and not retried.
      this.#o.logger.error({ err: error, id: envelope.id, destination: envelope.destination }, 'deliver threw for a Kafka record');
    }
    return undefined;
  }

  #appendUndelivered(work: readonly Work[]): void {
    const jobs: HistoryJob[] = [];
    for (const w of work)
      if (w.staged === true && w.delivered !== true && w.envelope !== undefined) jobs.push({ envelope: w.envelope, entry: w.entry });
    if (jobs.length > 0) this.#o.history.enqueueMany(jobs, this.#appendMany);
  }

  #delivered(w: Work, staged: HistoryJob[]): void {
    if (w.envelope === undefined) return;
    w.delivered = true;
    this.#o.counters.consumed++;
    w.entry.progress.step(w.entry);
    if (w.kind !== 'topic') return;
    if (w.stored === true) {
      this.#o.counters.historyAppended++;
      w.entry.progress.step(w.entry);
    } else if (w.staged === true) {
      staged.push({ envelope: w.envelope, entry: w.entry });
    } else {
      this.#o.history.enqueue({ envelope: w.envelope, entry: w.entry });
    }
  }

  /** Sleeps while keeping the group membership; false when this batch should be abandoned. */
  async #pause(ms: number, payload: EachBatchPayload, generation: number): Promise<boolean> {
    const until = Date.now() + ms;
    const going = (): boolean => this.#o.isRunning() && payload.isRunning() && !payload.isStale() && generation === this.#generation;
    while (Date.now() < until) {
      await sleep(Math.min(250, Math.max(1, until - Date.now())));
      if (!going()) return false;
      // Throws when the group rebalances: kafkajs then rejoins and the new owner resumes from the commit.
      await payload.heartbeat();
    }
    return going();
  }

  async #waitForHistoryRoom(payload: EachBatchPayload, generation: number): Promise<boolean> {
    while (this.#o.history.pending >= this.#o.maxPendingHistory) {
      if (!(await this.#pause(100, payload, generation))) return false;
    }
    return true;
  }
}

/**
 * The brokers refuse the consumer's session timeout: it lies outside their group.min.session.timeout.ms (default
 * 6000) .. group.max.session.timeout.ms. Short sessions are what makes failover quick, so the fix is usually on the
 * brokers' side; the message names both settings.
 */
export class SessionTimeoutRefused extends Error {
  readonly retriable = false;
  constructor(sessionTimeoutMs: number, cause: unknown) {
    super(
      `the Kafka brokers refuse a consumer session timeout of ${sessionTimeoutMs} ms: allow it with the brokers' ` +
        `group.min.session.timeout.ms (Kafka's default is 6000) and group.max.session.timeout.ms, or change this node's ` +
        `kafkaSessionTimeoutMs (--kafka-session-timeout-ms, STOMPEDE_KAFKA_SESSION_TIMEOUT_MS)`,
      { cause },
    );
    this.name = 'SessionTimeoutRefused';
  }
}

/** Heartbeat answers that mean "rejoin the group": the coordinator is rebalancing or no longer knows this member. */
const REJOIN_NEEDED: ReadonlySet<string> = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']);

/**
 * Whether an error, or one of its causes, is a Kafka protocol error of one of `types` (kafkajs's `type`, e.g.
 * `INVALID_SESSION_TIMEOUT`). kafkajs's retrier may re-wrap a protocol error keeping only its message, so a
 * session timeout refusal is recognised by its message too.
 */
function kafkaErrorIs(error: unknown, types: ReadonlySet<string>): boolean {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 10; depth++) {
    if ('type' in e && typeof e.type === 'string' && types.has(e.type)) return true;
    if (types.has('INVALID_SESSION_TIMEOUT') && e instanceof Error && e.message.includes('session timeout is not within the range'))
      return true;
    e = 'cause' in e ? e.cause : undefined;
  }
  return false;
}

const SESSION_REFUSED: ReadonlySet<string> = new Set(['INVALID_SESSION_TIMEOUT']);

/** A Promise for an engine call, also when the call throws instead of rejecting. */
function attempt(call: () => Promise<void>): Promise<void> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** kafkajs and BridgeError both say whether trying again can help; unknown errors are treated as transient. */
export function isRetriable(error: unknown): boolean {
  if (typeof error === 'object' && error !== null && 'retriable' in error) return error.retriable !== false;
  return true;
}
