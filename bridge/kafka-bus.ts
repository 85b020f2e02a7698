import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, Partitioners, logLevel, type Admin, type Consumer, type EachBatchPayload, type KafkaConfig, type LogEntry, type Message, type Producer } from 'kafkajs';
import { silentLogger, type Logger } from '../broker/ports/logger.js';
import {
  BridgeError, backoffMs, type BusCapabilities, type ClusterBus, type Deliver, type LinkListener, type PublishInput,
} from '../broker/ports/bus.js';
import type { HistoryRecord, HistoryStore } from '../broker/ports/history.js';
import { decodeRecord, encodeRecord } from './kafka-codec.js';
import type { SharedQueues } from '../broker/ports/queues.js';
import { validKafkaTopic } from '../broker/ports/routes.js';

/**
 * The durable, ordered bus: every SEND becomes a Kafka record; the consumer side turns records back into
 * envelopes and hands them to the nodes. This is the pipeline the product is built around:
 *
 *   publish ──► batch (lingerMs / maxBatch*) ──► producer.sendBatch (idempotent, acks=all) ──► RECEIPT
 *   Kafka ──► consumer (eachBatch, per partition, in offset order)
 *     with a fanout (Redis): one group `<clusterName>`; the owner of a partition sends each topic record to
 *       every node through the fanout, and each queue record to the shared queues (or its own local queue);
 *     without: one group per node `<clusterName>-<nodeId>`; every node reads every partition and delivers.
 *     Then, in the background, topic records go to the history store (retried with backoff).
 *   offsets are committed by hand, only up to the last record whose delivery AND history append succeeded.
 *
 * Guarantees: at least once (nodes drop repeated ids), per-destination order (one partition per destination:
 * the key is the destination; one batch in flight; partitions processed in offset order), ids that are the
 * record's coordinates (`<topic>-<partition>-<offset>`), the same on every node and on every replay.
 * A fan-out that fails part-way through a batch is retried from the first failure on, so a node that already
 * got a later record of that batch may see an earlier one after it (the broker drops the repeats): order can
 * bend only while the fanout engine is failing.
 *
 * The fanout is started and closed by its owner (the broker starts it before this bus and closes it after);
 * this bus only publishes to it and forwards `watch`/`unwatch`.
 */
export interface KafkaBusOptions {
  brokers: readonly string[];
  /** Names the consumer group(s); the same on every node of one cluster. */
  clusterName: string;
  /**
   * Names this node's consumer group when there is no fanout. A node configured without an id gets a random one
   * (broker/server.ts), so such a node's group is new at every start and begins at the end of the log.
   */
  nodeId: string;
  /** The Kafka topic of a destination; must be one of `topics`. */
  topicFor(destination: string): string;
  /** Every topic this bus writes and reads; created at start when missing. */
  topics: readonly string[];
  /** Partitions of topics this bus creates (existing topics keep theirs). */
  partitions?: number | undefined;
  replicationFactor?: number | undefined;
  /** Cross-node pub/sub for topic records (a RedisBus). Without it every node consumes every record itself. */
  fanout?: ClusterBus | undefined;
  /** Cluster-wide queues for queue records; without them the partition owner's local queue takes them. */
  queues?: SharedQueues | undefined;
  history: HistoryStore;
  logger?: Logger | undefined;
  /**
   * Where a consumer group that has never committed starts: at the oldest retained record (true) or at the end
   * of the log as of `start()` (false). Default: true for the shared group (a new cluster delivers what was
   * accepted before it ran), false for a per-node group (a new node serves only subscribers that come after it;
   * a restarted node with the same nodeId resumes where it stopped).
   */
  fromBeginning?: boolean | undefined;
  lingerMs?: number | undefined;
  /** A publish not acknowledged by then is rejected (its record may still land: at least once, never silence). */
  publishTimeoutMs?: number | undefined;
  maxBatchMessages?: number | undefined;
  maxBatchBytes?: number | undefined;
  connectTimeoutMs?: number | undefined;
  sessionTimeoutMs?: number | undefined;
  heartbeatIntervalMs?: number | undefined;
  commitIntervalMs?: number | undefined;
  /** Topic records waiting for the history store before the consumer stops taking more (memory bound). */
  maxPendingHistory?: number | undefined;
  historyConcurrency?: number | undefined;
  /** How long close() waits for pending history appends before committing what is done. */
  closeTimeoutMs?: number | undefined;
  /** Passed to the kafkajs client as it is: TLS, SASL, a socket factory. */
  client?: Pick<KafkaConfig, 'ssl' | 'sasl' | 'socketFactory' | 'requestTimeout'> | undefined;
}

export const KAFKA_BUS_DEFAULTS = Object.freeze({
  partitions: 8,
  replicationFactor: 1,
  lingerMs: 2,
  publishTimeoutMs: 10_000,
  maxBatchMessages: 2_000,
  /** Below the broker's default message.max.bytes (1 MiB), which bounds one partition's record batch. */
  maxBatchBytes: 768 * 1024,
  connectTimeoutMs: 15_000,
  sessionTimeoutMs: 10_000,
  heartbeatIntervalMs: 1_000,
  commitIntervalMs: 500,
  maxPendingHistory: 100_000,
  historyConcurrency: 32,
  closeTimeoutMs: 5_000,
  /** Fetch long-poll; short so that heartbeats, and with them rebalances, are prompt. */
  fetchMaxWaitMs: 250,
  /** Per-connection attempt; the whole start-up is bounded by connectTimeoutMs. */
  socketConnectMs: 3_000,
  requestTimeoutMs: 10_000,
});

export const KAFKA_ERRORS = Object.freeze({
  ERR_KAFKA_UNREACHABLE: 'ERR_KAFKA_UNREACHABLE',
  ERR_KAFKA_START: 'ERR_KAFKA_START',
  ERR_KAFKA_PUBLISH: 'ERR_KAFKA_PUBLISH',
  ERR_KAFKA_NOT_RUNNING: 'ERR_KAFKA_NOT_RUNNING',
  ERR_KAFKA_TOPIC: 'ERR_KAFKA_TOPIC',
} as const);

/** Per-batch and per-failure instrumentation (never per message), kafkajs-style. */
export interface KafkaBusEventMap {
  /** One producer.sendBatch was acknowledged. */
  batch: [{ readonly messages: number; readonly bytes: number; readonly durationMs: number }];
  /** A delivery step failed and will be retried after `delayMs`. */
  retry: [{ readonly stage: 'fanout' | 'queues' | 'history'; readonly attempt: number; readonly delayMs: number; readonly error: unknown }];
  /** Offsets committed (the next offset to read, per partition). */
  commit: [ReadonlyArray<{ readonly topic: string; readonly partition: number; readonly offset: number }>];
}

export interface KafkaBusStats {
  /** Publishes accepted by Kafka. */
  readonly published: number;
  /** producer.sendBatch calls that succeeded. */
  readonly batches: number;
  /** Produce requests on the wire (kafkajs instrumentation). */
  readonly produceRequests: number;
  /** Records this node processed (delivered, fanned out or queued). */
  readonly consumed: number;
  readonly historyPending: number;
  readonly historyAppended: number;
  /** Records given up on: undecodable, or a step that failed with a non-retriable error (each one logged). */
  readonly dropped: number;
}

interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed' | 'failed';

interface PendingPublish {
  readonly topic: string;
  readonly message: Message;
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** One record on its way: the steps left (delivery, history) before its offset may be committed. */
interface Entry {
  readonly offset: number;
  remaining: number;
  readonly progress: PartitionProgress;
}

/** Tracks one partition's records in offset order; everything before `committable` is fully done. */
class PartitionProgress {
  readonly topic: string;
  readonly partition: number;
  committable: number;
  committed: number;
  lastTracked = -1;
  #entries: Entry[] = [];
  #head = 0;

  constructor(topic: string, partition: number, firstOffset: number) {
    this.topic = topic;
    this.partition = partition;
    this.committable = firstOffset;
    this.committed = firstOffset;
  }

  track(offset: number, steps: number): Entry {
    const entry: Entry = { offset, remaining: steps, progress: this };
    this.#entries.push(entry);
    this.lastTracked = offset;
    if (steps === 0) this.#advance();
    return entry;
  }

  step(entry: Entry): void {
    if (--entry.remaining === 0 && this.#entries[this.#head] === entry) this.#advance();
  }

  #advance(): void {
    const entries = this.#entries;
    let head = this.#head;
    while (head < entries.length && (entries[head] as Entry).remaining <= 0) {
      this.committable = (entries[head] as Entry).offset + 1;
      head++;
    }
    if (head === entries.length) {
      this.#entries = [];
      head = 0;
    } else if (head > 1024 && head * 2 > entries.length) {
      this.#entries = entries.slice(head);
      head = 0;
    }
    this.#head = head;
  }
}

interface Work {
  readonly envelope: HistoryRecord | undefined;
  readonly entry: Entry;
  readonly kind: 'topic' | 'queue' | 'none';
  /** Stored in history before delivery (the normal case), so no background append is owed. */
  stored?: boolean;
}

/**
 * How long delivery waits for history before going ahead without it. Storing first is what makes `x-history`
 * and `x-resume-after` gap-free (a subscriber reads history, then listens); a slow or absent store must not stop
 * the chat, so past this the records are delivered and their appends retried in the background.
 */
const HISTORY_FIRST_MS = 2_000;

interface HistoryJob {
  readonly envelope: HistoryRecord;
  readonly entry: Entry;
}

const TOPIC_PREFIX = '/topic/';
const QUEUE_PREFIX = '/queue/';
const CAPABILITIES: BusCapabilities = Object.freeze({ ordered: true, durable: true, crossNode: true });
const LOG_REPEAT_MS = 10_000;
const NAME = /^[A-Za-z0-9._-]{1,200}$/;

export class KafkaBus implements ClusterBus {
  readonly name = 'kafka';
  readonly capabilities = CAPABILITIES;
  readonly events = new EventEmitter<KafkaBusEventMap>();
  readonly groupId: string;

  #brokers: readonly string[];
  #nodeId: string;
  #topicFor: (destination: string) => string;
  #topics: readonly string[];
  #topicSet: ReadonlySet<string>;
  #fanout: ClusterBus | undefined;
  #queues: SharedQueues | undefined;
  #history: HistoryStore;
  #logger: Logger;
  #fromBeginning: boolean;
  #client: KafkaBusOptions['client'];
  #o: {
    partitions: number; replicationFactor: number; lingerMs: number; publishTimeoutMs: number; maxBatchMessages: number; maxBatchBytes: number;
    connectTimeoutMs: number; sessionTimeoutMs: number; heartbeatIntervalMs: number; commitIntervalMs: number;
    maxPendingHistory: number; historyConcurrency: number; closeTimeoutMs: number;
  };

  #state: State = 'new';
  #deliver: Deliver = () => {};
  #kafka: Kafka | undefined;
  #producer: Producer | undefined;
  #producerConnected = false;
  #producerOk = true;
  #consumer: Consumer | undefined;
  #consumerOk = false;
  #commitTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  // producer side
  #queue: PendingPublish[] = [];
  #queuedBytes = 0;
  #sending: Promise<void> | undefined;
  #linger: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;

  // consumer side
  #progress = new Map<string, PartitionProgress>();
  #committing: Promise<void> | undefined;
  #activeBatches = 0;
  #batchesIdle: (() => void) | undefined;
  #historyQueue: HistoryJob[] = [];
  #historyHead = 0;
  #historyActive = 0;
  #historyFailures = 0;
  #historyBackoff: NodeJS.Timeout | undefined;
  #historyIdle: (() => void) | undefined;

  #logged = new Map<string, { at: number; repeats: number }>();
  #stats = { published: 0, batches: 0, produceRequests: 0, consumed: 0, historyAppended: 0, dropped: 0 };

  constructor(options: KafkaBusOptions) {
    const problems: string[] = [];
    if (!Array.isArray(options.brokers) || options.brokers.length === 0) problems.push('brokers: at least one host:port is needed');
    else for (const b of options.brokers) if (typeof b !== 'string' || !/^[^:\s]+:\d{1,5}$/.test(b)) problems.push(`brokers: "${String(b)}" is not host:port`);
    if (!NAME.test(options.clusterName)) problems.push(`clusterName "${options.clusterName}" may use only letters, digits, ".", "_" and "-"`);
    const nodeId = options.nodeId;
    // Never made up here: the composition root chooses a node's id once, so every engine and the broker agree.
    if (!NAME.test(nodeId)) problems.push(`nodeId "${options.nodeId}" must be 1-200 of letters, digits, ".", "_" and "-"`);
    if (options.topics.length === 0) problems.push('topics: at least one Kafka topic is needed');
    for (const t of options.topics) if (!validKafkaTopic(t)) problems.push(`topics: "${t}" is not a valid Kafka topic name`);
    const positive = (name: keyof typeof KAFKA_BUS_DEFAULTS, value: number | undefined, min = 1): number => {
      const v = value ?? KAFKA_BUS_DEFAULTS[name];
      if (!Number.isInteger(v) || v < min) problems.push(`${name} must be an integer >= ${min}, not ${v}`);
      return v;
    };
    this.#o = {
      partitions: positive('partitions', options.partitions),
      replicationFactor: positive('replicationFactor', options.replicationFactor),
      lingerMs: positive('lingerMs', options.lingerMs, 0),
      publishTimeoutMs: positive('publishTimeoutMs', options.publishTimeoutMs),
      maxBatchMessages: positive('maxBatchMessages', options.maxBatchMessages),
      maxBatchBytes: positive('maxBatchBytes', options.maxBatchBytes),
      connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs),
      sessionTimeoutMs: positive('sessionTimeoutMs', options.sessionTimeoutMs),
      heartbeatIntervalMs: positive('heartbeatIntervalMs', options.heartbeatIntervalMs),
      commitIntervalMs: positive('commitIntervalMs', options.commitIntervalMs),
      maxPendingHistory: positive('maxPendingHistory', options.maxPendingHistory),
      historyConcurrency: positive('historyConcurrency', options.historyConcurrency),
      closeTimeoutMs: positive('closeTimeoutMs', options.closeTimeoutMs, 0),
    };
    if (problems.length > 0) throw new TypeError(`invalid KafkaBus options:\n  ${problems.join('\n  ')}`);
    this.#brokers = [...options.brokers];
    this.#nodeId = nodeId;
    this.#topicFor = options.topicFor;
    this.#topics = [...new Set(options.topics)];
    this.#topicSet = new Set(this.#topics);
    this.#fanout = options.fanout;
    this.#queues = options.queues;
    this.#history = options.history;
    this.#logger = (options.logger ?? silentLogger).child({ bus: 'kafka' });
    this.groupId = options.fanout !== undefined ? options.clusterName : `${options.clusterName}-${nodeId}`;
    this.#fromBeginning = options.fromBeginning ?? options.fanout !== undefined;
    this.#client = options.client;
  }

  get healthy(): boolean {
    return this.#state === 'running' && this.#producerOk && this.#consumerOk;
  }

  /** The Kafka topic that carries a destination's records (as the node's route table says). */
  topicFor(destination: string): string {
    return this.#topicFor(destination);
  }

  /** Every Kafka topic this bus writes and reads. */
  get topics(): readonly string[] {
    return this.#topics;
  }

  get stats(): KafkaBusStats {
    return { ...this.#stats, historyPending: this.#historyPendingCount() };
  }

  // ---- start ----------------------------------------------------------------------------------------------

  async start(deliver: Deliver): Promise<void> {
    if (this.#state !== 'new') throw new BridgeError(KAFKA_ERRORS.ERR_KAFKA_START, `the Kafka bus was already started (${this.#state})`, false);
    this.#state = 'starting';
    this.#deliver = deliver;
    const kafka = new Kafka({
      clientId: `stompede-${this.#nodeId}`,
      brokers: [...this.#brokers],
      connectionTimeout: KAFKA_BUS_DEFAULTS.socketConnectMs,
      requestTimeout: KAFKA_BUS_DEFAULTS.requestTimeoutMs,
      // Connection attempts; every caller above them has its own bound (start-up, publish, consumer restarts).
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => this.#kafkaLog(entry),
      ...this.#client,
    });
    this.#kafka = kafka;
    try {
      const fresh = await this.#prepare(kafka);
      this.#producer = this.#createProducer(kafka);
      await this.#producer.connect();
      this.#producerConnected = true;
      await this.#startConsumer(kafka, fresh);
      if (this.#state !== 'starting') throw new BridgeError(KAFKA_ERRORS.ERR_KAFKA_NOT_RUNNING, 'the Kafka bus was closed while it started', false);
    } catch (error) {
      if (this.#state === 'starting') this.#state = 'failed';
      await this.#disconnectAll();
      throw error instanceof BridgeError ? error : new BridgeError(KAFKA_ERRORS.ERR_KAFKA_START,
        `could not start the Kafka bus on ${this.#brokers.join(',')}: ${messageOf(error)}`, isRetriable(error), { cause: error });
    }
    this.#state = 'running';
    this.#commitTimer = setInterval(() => void this.#commit(), this.#o.commitIntervalMs);
    this.#commitTimer.unref();
  }

  /**
   * Reaches the brokers (bounded by connectTimeoutMs) and creates missing topics. For a per-node group starting
   * at the end, returns where the end is now for each partition the group has never committed.
   */
  async #prepare(kafka: Kafka): Promise<PartitionOffset[]> {
    const admin = kafka.admin({ retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 } });
    const timeoutMs = this.#o.connectTimeoutMs;
    const giveUpAt = Date.now() + timeoutMs;
    let step = 'connecting';
    let lastError: unknown;
    const work = (async (): Promise<PartitionOffset[]> => {
      // Brokers that are still starting (a cluster coming up together) get until the deadline to answer.
      for (let attempt = 0; ; attempt++) {
        try {
          await admin.connect();
          break;
        } catch (error) {
          lastError = error;
          const delayMs = backoffMs(attempt);
          if (Date.now() + delayMs >= giveUpAt || this.#state !== 'starting') throw error;
          await sleep(delayMs);
        }
      }
      step = `creating the topics ${this.#topics.join(', ')}`;
      await admin.createTopics({
        waitForLeaders: true,
        topics: this.#topics.map((topic) => ({ topic, numPartitions: this.#o.partitions, replicationFactor: this.#o.replicationFactor })),
      });
      if (this.#fromBeginning || this.#fanout !== undefined) return [];
      step = `reading the offsets of the consumer group ${this.groupId}`;
      return this.#freshPartitionEnds(admin);
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms${lastError === undefined ? '' : `; last: ${messageOf(lastError)}`}`)), timeoutMs);
    });
    try {
      return await Promise.race([work, deadline]);
    } catch (error) {
      work.catch(() => {});
      const unreachable = step === 'connecting';
      throw new BridgeError(unreachable ? KAFKA_ERRORS.ERR_KAFKA_UNREACHABLE : KAFKA_ERRORS.ERR_KAFKA_START,
        unreachable
          ? `cannot reach Kafka at ${this.#brokers.join(',')} within ${timeoutMs} ms (${messageOf(error)}). Check that the brokers are running and that --kafka lists host:port addresses this node can reach.`
          : `Kafka at ${this.#brokers.join(',')} failed while ${step}: ${messageOf(error)}`,
        unreachable || isRetriable(error), { cause: error });
    } finally {
      clearTimeout(timer);
      await admin.disconnect().catch(() => {});
    }
  }

  async #freshPartitionEnds(admin: Admin): Promise<PartitionOffset[]> {
    const fresh: PartitionOffset[] = [];
    for (const { topic, partitions } of await admin.fetchOffsets({ groupId: this.groupId, topics: [...this.#topics] })) {
      const never = new Set(partitions.filter((p) => p.offset === '-1').map((p) => p.partition));
      if (never.size === 0) continue;
      for (const end of await admin.fetchTopicOffsets(topic)) if (never.has(end.partition)) fresh.push({ topic, partition: end.partition, offset: end.high });
    }
    return fresh;
  }

  #createProducer(kafka: Kafka): Producer {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      // Bounded, so that a publish fails (and its client hears of it) instead of waiting forever; after a failed
      // batch the producer is replaced, so sequence numbers never carry over an outcome we do not know.
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
    producer.on(producer.events.REQUEST, (event) => {
      if (event.payload.apiName === 'Produce') this.#stats.produceRequests++;
    });
    return producer;
  }

  async #startConsumer(kafka: Kafka, fresh: readonly PartitionOffset[]): Promise<void> {
    const consumer = kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: this.#o.sessionTimeoutMs,
      rebalanceTimeout: Math.max(this.#o.sessionTimeoutMs, 30_000),
      heartbeatInterval: this.#o.heartbeatIntervalMs,
      maxWaitTimeInMs: KAFKA_BUS_DEFAULTS.fetchMaxWaitMs,
      allowAutoTopicCreation: false,
    });
    this.#consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      // A new generation: kafkajs reads every assigned partition again from its committed offset.
      this.#progress = new Map();
      this.#consumerOk = true;
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.#consumerOk = false;
      const { error, restart } = event.payload;
      if (restart) this.#logger.warn({ err: error }, 'Kafka consumer crashed; kafkajs restarts it');
      else {
        this.#logger.error({ err: error }, 'Kafka consumer crashed and kafkajs gave up on it; starting a new one');
        this.#replaceConsumer(kafka, consumer, 0);
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...this.#topics], fromBeginning: this.#fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.min(16, this.#topics.length * this.#o.partitions),
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    if (fresh.length > 0) {
      // A new per-node group starts at the end of the log as it was when start() began, not wherever the end is
      // by its first fetch: then everything published once start() resolves is delivered. Seeking now (before
      // that fetch) places it; the commit keeps the place if this node stops before it processes anything.
      for (const f of fresh) consumer.seek(f);
      await consumer.commitOffsets(fresh.map((f) => ({ ...f }))).catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not commit the starting offsets of a new consumer group');
      });
    }
  }

  /**
   * kafkajs does not restart a consumer after a crash it deems non-retriable, e.g. "Failed to find group
   * coordinator" once its retries ran out while Kafka restarts: the node would stop consuming for good (and stay
   * unready). A new consumer joins the group instead, retried with backoff until it runs or the bus closes.
   */
  #replaceConsumer(kafka: Kafka, crashed: Consumer, attempt: number): void {
    const timer = setTimeout(() => {
      if (this.#state !== 'running' || this.#consumer !== crashed) return;
      void crashed.disconnect().catch(() => {}).then(() => this.#startConsumer(kafka, [])).then(
        () => this.#logger.info({ attempt }, 'a new Kafka consumer replaced the crashed one'),
        (error: unknown) => {
          this.#logger.warn({ err: error, attempt }, 'could not start a new Kafka consumer; retrying');
          this.#replaceConsumer(kafka, this.#consumer ?? crashed, attempt + 1);
        },
      );
    }, backoffMs(Math.min(attempt, 6)));
    timer.unref();
  }

  // ---- publish --------------------------------------------------------------------------------------------

  /** The fan-out carries this bus's records to the nodes: its link is this bus's link. */
  setLinkListener(listener: LinkListener): void {
    this.#fanout?.setLinkListener?.(listener);
  }

  publish(input: PublishInput): Promise<void> {
    if (this.#state !== 'running') {
      return Promise.reject(new BridgeError(KAFKA_ERRORS.ERR_KAFKA_NOT_RUNNING, `the Kafka bus is ${this.#state === 'new' || this.#state === 'starting' ? 'not started' : this.#state}`, this.#state !== 'closed'));
    }
    let topic: string;
    let record: ReturnType<typeof encodeRecord>;
    try {
      topic = this.#topicFor(input.destination);
      record = encodeRecord(input);
    } catch (error) {
      return Promise.reject(new BridgeError(KAFKA_ERRORS.ERR_KAFKA_TOPIC, `no Kafka record for ${input.destination}: ${messageOf(error)}`, false, { cause: error }));
    }
    if (!this.#topicSet.has(topic)) {
      return Promise.reject(new BridgeError(KAFKA_ERRORS.ERR_KAFKA_TOPIC, `${input.destination} maps to Kafka topic "${topic}", which this bus does not consume (${this.#topics.join(', ')})`, false));
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ topic, message: record.message, bytes: record.bytes, resolve, reject });
      this.#queuedBytes += record.bytes;
      this.#schedule();
    });
  }

  /** At most one sendBatch in flight: what arrives meanwhile forms the next batch, so load makes batches grow. */
  #schedule(): void {
    if (this.#sending !== undefined) return;
    if (this.#queue.length >= this.#o.maxBatchMessages || this.#queuedBytes >= this.#o.maxBatchBytes) {
      this.#sendNext();
    } else if (this.#linger === undefined && this.#immediate === undefined) {
      // lingerMs 0: what this turn of the event loop publishes (one socket read can hold many SENDs) goes together.
      if (this.#o.lingerMs === 0) this.#immediate = setImmediate(() => this.#sendNext());
      else this.#linger = setTimeout(() => this.#sendNext(), this.#o.lingerMs);
    }
  }

  #sendNext(): void {
    clearTimeout(this.#linger);
    clearImmediate(this.#immediate);
    this.#linger = undefined;
    this.#immediate = undefined;
    if (this.#sending !== undefined || this.#queue.length === 0) return;
    let count = 0;
    let bytes = 0;
    while (count < this.#queue.length && count < this.#o.maxBatchMessages) {
      const next = (this.#queue[count] as PendingPublish).bytes;
      if (count > 0 && bytes + next > this.#o.maxBatchBytes) break;
      bytes += next;
      count++;
    }
    const batch = this.#queue.splice(0, count);
    this.#queuedBytes -= bytes;
    this.#sending = this.#send(batch, bytes).finally(() => {
      this.#sending = undefined;
      // Whatever queued up while that batch was in flight has waited long enough: send it now.
      if (this.#queue.length > 0) this.#sendNext();
    });
  }

  async #send(batch: PendingPublish[], bytes: number): Promise<void> {
    const byTopic = new Map<string, Message[]>();
    for (const p of batch) {
      let list = byTopic.get(p.topic);
      if (list === undefined) byTopic.set(p.topic, (list = []));
      list.push(p.message);
    }
    const started = performance.now();
    try {
      const producer = this.#producer;
      if (producer === undefined) throw new Error('no producer');
      if (!this.#producerConnected) {
        await producer.connect();
        this.#producerConnected = true;
      }
      const sent = producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      sent.catch(() => {}); // when the deadline wins, the late outcome is of no use
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([sent, new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new PublishTimeout(this.#o.publishTimeoutMs)), this.#o.publishTimeoutMs);
        })]);
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      this.#producerOk = false;
      const e = new BridgeError(KAFKA_ERRORS.ERR_KAFKA_PUBLISH,
        `Kafka at ${this.#brokers.join(',')} did not acknowledge the message: ${messageOf(error)}`, isRetriable(error), { cause: error });
      for (const p of batch) p.reject(e);
      await this.#replaceProducer();
      return;
    }
    this.#producerOk = true;
    this.#stats.published += batch.length;
    this.#stats.batches++;
    for (const p of batch) p.resolve();
    if (this.events.listenerCount('batch') > 0) this.events.emit('batch', { messages: batch.length, bytes, durationMs: performance.now() - started });
  }

  /**
   * After a failed batch the outcome of its records is unknown (a timeout may hide a write). A fresh idempotent
   * producer gets a new producer id, so no later batch can be mistaken by the broker for a retry of that one.
   */
  async #replaceProducer(): Promise<void> {
    const old = this.#producer;
    if (this.#kafka === undefined || old === undefined) return;
    this.#producer = this.#createProducer(this.#kafka);
    this.#producerConnected = false;
    void old.disconnect().catch(() => {});
  }

  // ---- consume --------------------------------------------------------------------------------------------

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const first = batch.messages[0];
    if (first === undefined || this.#state !== 'running') return;
    this.#activeBatches++;
    try {
      const key = `${batch.topic}\u0000${batch.partition}`;
      let progress = this.#progress.get(key);
      const firstOffset = Number(first.offset);
      if (progress === undefined || firstOffset <= progress.lastTracked) {
        progress = new PartitionProgress(batch.topic, batch.partition, firstOffset);
        this.#progress.set(key, progress);
      }
      if (!(await this.#waitForHistoryRoom(payload))) return;
      const work: Work[] = [];
      for (const message of batch.messages) {
        const envelope = decodeRecord(batch.topic, batch.partition, message);
        const kind = envelope === undefined ? 'none' : envelope.destination.startsWith(TOPIC_PREFIX) ? 'topic' : 'queue';
        if (envelope === undefined) this.#stats.dropped++;
        work.push({ envelope, kind, entry: progress.track(Number(message.offset), kind === 'none' ? 0 : kind === 'topic' ? 2 : 1) });
      }
      await this.#storeFirst(work);
      const done = await this.#dispatch(work, payload);
      if (done > 0) payload.resolveOffset(String((work[done - 1] as Work).entry.offset));
    } finally {
      if (--this.#activeBatches === 0) this.#batchesIdle?.();
    }
  }

  /**
   * Hands the records of one batch on, in order; returns how many (from the start) are delivered. Remote steps
   * are pipelined (all issued in order, then awaited); a failure is retried from the first failed record on,
   * with backoff, until it succeeds, the bus closes or the partition moves to another node.
   */
  async #dispatch(work: readonly Work[], payload: EachBatchPayload): Promise<number> {
    let from = 0;
    let attempt = 0;
    while (from < work.length) {
      const pending: { index: number; promise: Promise<void> }[] = [];
      let failedAt = work.length;
      let failure: unknown;
      let stage: 'fanout' | 'queues' = 'fanout';
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
          this.#stats.dropped++;
          this.#logger.error({ err: s.reason, id: w.envelope?.id, destination: w.envelope?.destination }, 'dropped a Kafka record the fanout refused for good');
        }
      }
      for (let i = from; i < failedAt; i++) this.#delivered(work[i] as Work);
      if (failedAt === work.length) return work.length;
      from = failedAt;
      attempt++;
      const delayMs = backoffMs(attempt - 1);
      if (attempt === 1) this.#logger.warn({ err: failure, stage }, `Kafka records could not be handed to the ${stage}; retrying`);
      if (this.events.listenerCount('retry') > 0) this.events.emit('retry', { stage, attempt, delayMs, error: failure });
      if (!(await this.#pause(delayMs, payload))) return from;
    }
    return from;
  }

  /** Starts one record's delivery step: undefined when it completed on the spot. */
  #hand(w: Work): Promise<void> | undefined {
    const envelope = w.envelope;
    if (envelope === undefined) return undefined;
    const fanout = this.#fanout;
    const queues = this.#queues;
    if (fanout !== undefined) {
      if (w.kind === 'topic') return attempt(() => fanout.publish(envelope));
      if (queues !== undefined && envelope.destination.startsWith(QUEUE_PREFIX)) return attempt(() => queues.push(envelope));
    }
    try {
      this.#deliver(envelope);
    } catch (error) {
      // The broker's deliver catches its own failures; this is a bug there, reported and not retried.
      this.#logger.error({ err: error, id: envelope.id, destination: envelope.destination }, 'deliver threw for a Kafka record');
    }
    return undefined;
  }

  #delivered(w: Work): void {
    if (w.envelope === undefined) return;
    this.#stats.consumed++;
    w.entry.progress.step(w.entry);
    if (w.kind !== 'topic') return;
    if (w.stored === true) {
      this.#stats.historyAppended++;
      w.entry.progress.step(w.entry);
    } else {
      this.#enqueueHistory({ envelope: w.envelope, entry: w.entry });
    }
  }

  /** Appends a batch's topic records to history before they are delivered, while the store is healthy. */
  async #storeFirst(work: Work[]): Promise<void> {
    if (!this.#history.healthy) return;
    const topics = work.filter((w) => w.kind === 'topic' && w.envelope !== undefined);
    if (topics.length === 0) return;
    // One ordered bulk append per consumed batch: what is stored is a prefix of the batch, so history never holds
    // a later record of a destination without the earlier ones (a reader would get those live, out of order).
    const appends = this.#history.appendMany(topics.map((w) => w.envelope as HistoryRecord)).then(
      (stored) => stored,
      () => 0,
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, HISTORY_FIRST_MS, undefined);
    });
    const results = await Promise.race([appends, late]);
    clearTimeout(timer);
    // Timed out: the appends may still land; the background retries are idempotent by id.
    if (results === undefined) return;
    for (let i = 0; i < results; i++) (topics[i] as Work).stored = true;
  }

  /** Sleeps while keeping the group membership; false when this batch should be abandoned. */
  async #pause(ms: number, payload: EachBatchPayload): Promise<boolean> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await sleep(Math.min(250, Math.max(1, until - Date.now())));
      if (this.#state !== 'running' || !payload.isRunning() || payload.isStale()) return false;
      // Throws when the group rebalances: kafkajs then rejoins and the new owner resumes from the commit.
      await payload.heartbeat();
    }
    return this.#state === 'running' && payload.isRunning() && !payload.isStale();
  }

  async #waitForHistoryRoom(payload: EachBatchPayload): Promise<boolean> {
    while (this.#historyPendingCount() >= this.#o.maxPendingHistory) {
      if (!(await this.#pause(100, payload))) return false;
    }
    return true;
  }

  // ---- history --------------------------------------------------------------------------------------------

  #historyPendingCount(): number {
    return this.#historyQueue.length - this.#historyHead + this.#historyActive;
  }

  #enqueueHistory(job: HistoryJob): void {
    this.#historyQueue.push(job);
    this.#pumpHistory();
  }

  /** Appends in the background, a bounded number at a time; failures back off together and retry. */
  #pumpHistory(): void {
    while (this.#historyBackoff === undefined && this.#historyActive < this.#o.historyConcurrency && this.#historyHead < this.#historyQueue.length) {
      const job = this.#historyQueue[this.#historyHead] as HistoryJob;
      this.#historyHead++;
      this.#historyActive++;
      const { envelope } = job;
      attempt(() => this.#history.append(envelope)).then(
        () => this.#historyDone(job),
        (error: unknown) => this.#historyFailed(job, error),
      );
    }
    if (this.#historyHead === this.#historyQueue.length) {
      this.#historyQueue = [];
      this.#historyHead = 0;
    } else if (this.#historyHead > 4096 && this.#historyHead * 2 > this.#historyQueue.length) {
      this.#historyQueue = this.#historyQueue.slice(this.#historyHead);
      this.#historyHead = 0;
    }
    if (this.#historyPendingCount() === 0) this.#historyIdle?.();
  }

  #historyDone(job: HistoryJob): void {
    this.#historyActive--;
    this.#historyFailures = 0;
    this.#stats.historyAppended++;
    job.entry.progress.step(job.entry);
    this.#pumpHistory();
  }

  #historyFailed(job: HistoryJob, error: unknown): void {
    this.#historyActive--;
    if (this.#state === 'closed') return;
    if (error instanceof BridgeError && !error.retriable) {
      this.#stats.dropped++;
      this.#logger.error({ err: error, id: job.envelope.id }, 'the history store refused a record for good');
      job.entry.progress.step(job.entry);
      this.#pumpHistory();
      return;
    }
    // Back to the head of the line; the offset stays uncommitted until it is stored.
    if (this.#historyHead > 0) this.#historyQueue[--this.#historyHead] = job;
    else this.#historyQueue.unshift(job);
    if (this.#historyBackoff !== undefined) return;
    const attempt = this.#historyFailures++;
    const delayMs = backoffMs(attempt);
    if (attempt === 0) this.#logger.warn({ err: error, store: this.#history.name }, 'history append failed; delivery goes on, history catches up when the store returns');
    if (this.events.listenerCount('retry') > 0) this.events.emit('retry', { stage: 'history', attempt: attempt + 1, delayMs, error });
    this.#historyBackoff = setTimeout(() => {
      this.#historyBackoff = undefined;
      this.#pumpHistory();
    }, delayMs);
  }

  #historyDrained(timeoutMs: number): Promise<void> {
    if (this.#historyPendingCount() === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#historyIdle = () => {
        this.#historyIdle = undefined;
        finish();
      };
    });
  }

  // ---- commits --------------------------------------------------------------------------------------------

  /** Commits each partition up to its last fully done record; one commit at a time. */
  #commit(): Promise<void> {
    if (this.#committing !== undefined) return this.#committing;
    const consumer = this.#consumer;
    const due = [...this.#progress.values()].filter((p) => p.committable > p.committed);
    if (consumer === undefined || due.length === 0) return Promise.resolve();
    const offsets = due.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.committable }));
    this.#committing = consumer.commitOffsets(offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset) })))
      .then(() => {
        for (let i = 0; i < due.length; i++) (due[i] as PartitionProgress).committed = (offsets[i] as { offset: number }).offset;
        if (this.events.listenerCount('commit') > 0) this.events.emit('commit', offsets);
      }, (error: unknown) => {
        // Rebalancing or a coordinator move: the next tick (or the next owner) commits.
        this.#logger.debug({ err: error }, 'Kafka offset commit failed; retrying on the next tick');
      })
      .finally(() => {
        this.#committing = undefined;
      });
    return this.#committing;
  }

  // ---- watch, close ---------------------------------------------------------------------------------------

  async watch(vhost: string, destination: string): Promise<void> {
    await this.#fanout?.watch(vhost, destination);
  }

  unwatch(vhost: string, destination: string): void {
    this.#fanout?.unwatch(vhost, destination);
  }

  /** Sends what is batched, finishes the records in hand, commits what is done, leaves the group. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasRunning = this.#state === 'running';
    if (this.#state !== 'failed') this.#state = 'closing';
    if (wasRunning) {
      while (this.#sending !== undefined || this.#queue.length > 0) {
        if (this.#sending === undefined) this.#sendNext();
        await this.#sending;
      }
      try {
        this.#consumer?.pause(this.#topics.map((topic) => ({ topic })));
      } catch {
        // A consumer that crashed (kafkajs restarting it, or gave up) has no running group to pause: nothing to stop.
      }
      // Batches in hand stop at their next retry; one waiting on a fanout that never answers is not waited for.
      const giveUpAt = Date.now() + this.#o.closeTimeoutMs;
      if (this.#activeBatches > 0) {
        await Promise.race([new Promise<void>((resolve) => (this.#batchesIdle = resolve)), sleep(this.#o.closeTimeoutMs, undefined, { ref: false })]);
      }
      this.#batchesIdle = undefined;
      await this.#historyDrained(Math.max(0, giveUpAt - Date.now()));
      // The first call waits for a commit already in flight; the second commits what finished after it started.
      // A commit during a group rebalance is retried by kafkajs for up to half a minute: it gets the time left,
      // and what it leaves uncommitted is consumed again by the partition's next owner (at-least-once).
      const committed = this.#commit().then(() => this.#commit());
      await Promise.race([committed, sleep(Math.max(0, giveUpAt - Date.now()), undefined, { ref: false })]);
    }
    clearInterval(this.#commitTimer);
    this.#state = 'closed';
    clearTimeout(this.#historyBackoff);
    this.#historyBackoff = undefined;
    this.#historyQueue = [];
    this.#historyHead = 0;
    for (const p of this.#queue.splice(0)) p.reject(new BridgeError(KAFKA_ERRORS.ERR_KAFKA_NOT_RUNNING, 'the Kafka bus closed', false));
    await this.#disconnectAll();
  }

  async #disconnectAll(): Promise<void> {
    this.#consumerOk = false;
    const left = Promise.all([this.#consumer?.disconnect().catch(() => {}), this.#producer?.disconnect().catch(() => {})]);
    // Leaving a group that is rebalancing waits for the rebalance (up to its 30 s timeout) when every member stops
    // at once, as a whole cluster does on SIGTERM; the group coordinator expires us after the session timeout anyway.
    await Promise.race([left, sleep(this.#o.closeTimeoutMs, undefined, { ref: false })]);
    this.#producerConnected = false;
  }

  // ---- logging --------------------------------------------------------------------------------------------

  /**
   * kafkajs logs (warn and error only) go to our logger at warn: the bus reports real failures itself. While
   * Kafka is away kafkajs repeats itself on every attempt; one line per message text per 10 s is enough.
   */
  #kafkaLog(entry: LogEntry): void {
    const { message, timestamp: _t, ...extra } = entry.log;
    // We bound the idempotent producer's retries on purpose and replace it after a failure (see #replaceProducer).
    if (message.startsWith('Limiting retries for the idempotent producer')) return;
    const now = Date.now();
    const key = `${entry.namespace} ${message}`;
    const last = this.#logged.get(key);
    if (last !== undefined && now - last.at < LOG_REPEAT_MS) {
      last.repeats++;
      return;
    }
    if (this.#logged.size > 100) this.#logged.clear();
    this.#logged.set(key, { at: now, repeats: 0 });
    const repeats = last?.repeats ?? 0;
    this.#logger.warn({ kafka: entry.namespace, ...extra, ...(repeats > 0 ? { repeatedSinceLast: repeats } : {}) }, `kafkajs: ${message}`);
  }
}

class PublishTimeout extends Error {
  readonly retriable = true;
  constructor(ms: number) {
    super(`no acknowledgement within ${ms} ms; the message may or may not have been stored`);
    this.name = 'PublishTimeout';
  }
}

/** A Promise for an engine call, also when the call throws instead of rejecting. */
function attempt(call: () => Promise<void>): Promise<void> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(error);
  }
}

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error && !error.message.includes(error.cause.message) ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}

/** kafkajs and BridgeError both say whether trying again can help; unknown errors are treated as transient. */
function isRetriable(error: unknown): boolean {
  if (typeof error === 'object' && error !== null && 'retriable' in error) return (error as { retriable: unknown }).retriable !== false;
  return true;
}
