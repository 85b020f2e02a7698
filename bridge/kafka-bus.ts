import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type KafkaConfig,
  type KafkaMessage,
  type LogEntry,
  type Message,
  type Producer,
} from 'kafkajs';
import { silentLogger, type Logger } from '../broker/ports/logger.js';
import { NAME_RULE, validName } from '../broker/ports/names.js';
import {
  BridgeError,
  backoffMs,
  type BusCapabilities,
  type ClusterBus,
  type Deliver,
  type LinkListener,
  type PublishInput,
} from '../broker/ports/bus.js';
import type { HistoryRecord, HistoryStore } from '../broker/ports/history.js';
import type { SharedQueues } from '../broker/ports/queues.js';
import { validKafkaTopic } from '../broker/ports/routes.js';
import { BusConsumer, isRetriable, type PartitionOffset } from './kafka/consumer.js';
import { HistoryWriter } from './kafka/history-writer.js';
import { ProducerBatcher, type Queued } from './kafka/producer-batcher.js';
import { encodeRecord, recordPosition, type EncodedRecord } from './kafka-codec.js';

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
 *
 * This file is the ClusterBus: options, start-up (topics, producer, consumer), publish, close. The parts live in
 * bridge/kafka/: producer-batcher (batching), partition-progress (offsets and commits), history-writer (history
 * first, then in the background) and consumer (the consumer group and each batch's way to the nodes).
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
  topicFor: (destination: string) => string;
  /** Every topic this bus writes and reads at start; created at start when missing. */
  topics: readonly string[];
  /**
   * The route table's view of records (bridge/kafka/inward.ts): each SEND's topic and format, each record's
   * destination. With it, topics are also added while running: a SEND or SUBSCRIBE on a destination whose topic is
   * not consumed yet creates it when missing and re-subscribes; topics of template routes that exist at start are
   * consumed from the start.
   */
  mapping?: KafkaRecordMapping | undefined;
  /** Partitions of topics this bus creates (existing topics keep theirs). */
  partitions?: number | undefined;
  /** Replicas of topics this bus creates; 0 (the default): min(3, brokers in the cluster), asked at start. */
  replicationFactor?: number | undefined;
  /** Create missing topics at start (default); false: a missing topic fails the start, named. */
  autoCreateTopics?: boolean | undefined;
  /** How often a running bus looks for new topics that fit a template route (see #discover); 0: never. */
  topicDiscoveryMs?: number | undefined;
  /** The kafkajs client id (default `stompede-<nodeId>`). */
  clientId?: string | undefined;
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

/** Replicas of a topic this bus creates when none is configured: min(3, brokers), at least 1. */
export function autoReplicationFactor(brokers: number): number {
  return Math.max(1, Math.min(KAFKA_BUS_DEFAULTS.maxAutoReplicationFactor, brokers));
}

/** What KafkaBus needs of the route table (RecordRouter, bridge/kafka/inward.ts, is the one in use). */
export interface KafkaRecordMapping {
  topicFor(destination: string): string;
  encode(input: PublishInput): EncodedRecord;
  decode(topic: string, partition: number, record: KafkaMessage): HistoryRecord | undefined;
  /** Topics of template routes, consumed when they exist at start. */
  readonly templateTopics: readonly RegExp[];
  /** Private-format topics: a new per-node group reads them from the end; others are read from their start. */
  isPrivate(topic: string): boolean;
  /** Records (or parts) not delivered, by reason. */
  readonly dropped: ReadonlyMap<string, number>;
}

export const KAFKA_BUS_DEFAULTS = Object.freeze({
  partitions: 8,
  /** 0: min(3, the brokers the cluster describes), so a topic survives a broker loss where it can. */
  replicationFactor: 0,
  /** The most replicas chosen on our own: Kafka's usual production factor. */
  maxAutoReplicationFactor: 3,
  lingerMs: 2,
  publishTimeoutMs: 10_000,
  maxBatchMessages: 2_000,
  /** Below the broker's default message.max.bytes (1 MiB), which bounds one partition's record batch. */
  maxBatchBytes: 768 * 1024,
  connectTimeoutMs: 15_000,
  /**
   * How long a crashed node's partitions wait for another owner, and how often a live node says it is alive (also
   * while it works through batches). The brokers' group.min.session.timeout.ms (Kafka's default 6000) must allow it.
   */
  sessionTimeoutMs: 2_000,
  heartbeatIntervalMs: 300,
  commitIntervalMs: 500,
  maxPendingHistory: 100_000,
  historyConcurrency: 32,
  closeTimeoutMs: 5_000,
  /** A topic an outside producer creates for a template route is consumed within this, plus one rebalance. */
  topicDiscoveryMs: 5_000,
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
  /** Kafka refused the SASL login, or its TLS certificate was not trusted: retrying cannot help. */
  ERR_KAFKA_AUTH: 'ERR_KAFKA_AUTH',
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

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed' | 'failed';

/** How long a SUBSCRIBE that adds a topic waits for the topic's past to reach the history store. */
const CATCH_UP_WAIT_MS = 10_000;

const CAPABILITIES: BusCapabilities = Object.freeze({ ordered: true, durable: true, crossNode: true });
const LOG_REPEAT_MS = 10_000;

export class KafkaBus implements ClusterBus {
  readonly name = 'kafka';
  readonly capabilities = CAPABILITIES;
  readonly events = new EventEmitter<KafkaBusEventMap>();
  readonly groupId: string;

  #brokers: readonly string[];
  #topicFor: (destination: string) => string;
  /** The topics consumed; grown while running (the consumer holds this very array). */
  #topics: string[];
  #topicSet: Set<string>;
  #mapping: KafkaRecordMapping | undefined;
  #adding: Promise<void> = Promise.resolve();
  #fanout: ClusterBus | undefined;
  #logger: Logger;
  #fromBeginning: boolean;
  #client: KafkaBusOptions['client'];
  #clientId: string;
  #autoCreateTopics: boolean;
  #o: {
    partitions: number;
    replicationFactor: number;
    lingerMs: number;
    publishTimeoutMs: number;
    maxBatchMessages: number;
    maxBatchBytes: number;
    connectTimeoutMs: number;
    sessionTimeoutMs: number;
    heartbeatIntervalMs: number;
    commitIntervalMs: number;
    maxPendingHistory: number;
    historyConcurrency: number;
    closeTimeoutMs: number;
    topicDiscoveryMs: number;
  };

  #state: State = 'new';
  #kafka: Kafka | undefined;
  #producer: Producer | undefined;
  #producerConnected = false;
  #producerOk = true;
  #batcher: ProducerBatcher<Message>;
  #consumer: BusConsumer;
  #historyWriter: HistoryWriter;
  #commitTimer: NodeJS.Timeout | undefined;
  #deliver: Deliver | undefined;
  /** `<topic>-<partition>` → the end of its log when this node began reading it from the start (#historyOnly). */
  #catchUp = new Map<string, number>();
  #closing: Promise<void> | undefined;
  /**
   * When #discover last listed the topics (at first, when start() began): a topic it finds had not appeared by then,
   * so its records at least this recent are delivered live (see #freshPartitionEnds).
   */
  #lookedAt = 0;
  #discoveryTimer: NodeJS.Timeout | undefined;
  /** The discovery's own admin client, kept connected between looks (a TLS/SASL handshake every few seconds is waste). */
  #admin: Admin | undefined;
  #discovering = false;

  #logged = new Map<string, { at: number; repeats: number }>();
  #stats = { published: 0, batches: 0, produceRequests: 0, consumed: 0, historyAppended: 0, dropped: 0 };

  constructor(options: KafkaBusOptions) {
    const problems: string[] = [];
    if (!Array.isArray(options.brokers) || options.brokers.length === 0) problems.push('brokers: at least one host:port is needed');
    else
      for (const b of options.brokers)
        if (typeof b !== 'string' || !/^[^:\s]+:\d{1,5}$/.test(b)) problems.push(`brokers: "${String(b)}" is not host:port`);
    if (!validName(options.clusterName)) problems.push(`clusterName "${options.clusterName}" may use only ${NAME_RULE.text}`);
    const nodeId = options.nodeId;
    // Never made up here: the composition root chooses a node's id once, so every engine and the broker agree.
    if (!validName(nodeId)) problems.push(`nodeId "${options.nodeId}" may use only ${NAME_RULE.text}`);
    if (options.topics.length === 0 && options.mapping === undefined) problems.push('topics: at least one Kafka topic is needed');
    for (const t of options.topics) if (!validKafkaTopic(t)) problems.push(`topics: "${t}" is not a valid Kafka topic name`);
    const positive = (name: keyof typeof KAFKA_BUS_DEFAULTS, value: number | undefined, min = 1): number => {
      const v = value ?? KAFKA_BUS_DEFAULTS[name];
      if (!Number.isInteger(v) || v < min) problems.push(`${name} must be an integer >= ${min}, not ${v}`);
      return v;
    };
    this.#o = {
      partitions: positive('partitions', options.partitions),
      replicationFactor: positive('replicationFactor', options.replicationFactor, 0),
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
      topicDiscoveryMs: positive('topicDiscoveryMs', options.topicDiscoveryMs, 0),
    };
    // A member that beats as seldom as its session lasts is expired between two beats (Kafka advises a third at most).
    if (this.#o.heartbeatIntervalMs >= this.#o.sessionTimeoutMs)
      problems.push(`heartbeatIntervalMs (${this.#o.heartbeatIntervalMs}) must be below sessionTimeoutMs (${this.#o.sessionTimeoutMs})`);
    if (problems.length > 0) throw new TypeError(`invalid KafkaBus options:\n  ${problems.join('\n  ')}`);
    this.#brokers = [...options.brokers];
    this.#mapping = options.mapping;
    this.#topicFor = options.mapping !== undefined ? (d) => (options.mapping as KafkaRecordMapping).topicFor(d) : options.topicFor;
    this.#topics = [...new Set(options.topics)];
    this.#topicSet = new Set(this.#topics);
    this.#fanout = options.fanout;
    this.#logger = (options.logger ?? silentLogger).child({ bus: 'kafka' });
    this.groupId = options.fanout !== undefined ? options.clusterName : `${options.clusterName}-${nodeId}`;
    this.#fromBeginning = options.fromBeginning ?? options.fanout !== undefined;
    this.#client = options.client;
    this.#clientId = options.clientId !== undefined && options.clientId !== '' ? options.clientId : `stompede-${nodeId}`;
    this.#autoCreateTopics = options.autoCreateTopics ?? true;
    const o = this.#o;
    this.#batcher = new ProducerBatcher<Message>({
      lingerMs: o.lingerMs,
      maxBatchMessages: o.maxBatchMessages,
      maxBatchBytes: o.maxBatchBytes,
      send: (batch, bytes) => this.#send(batch, bytes),
    });
    const history = options.history;
    this.#historyWriter = new HistoryWriter({
      append: (record) => history.append(record),
      storeName: history.name,
      concurrency: o.historyConcurrency,
      counters: this.#stats,
      logger: this.#logger,
      retry: (attempt, delayMs, error) => {
        if (this.events.listenerCount('retry') > 0) this.events.emit('retry', { stage: 'history', attempt, delayMs, error });
      },
    });
    this.#consumer = new BusConsumer({
      groupId: this.groupId,
      topics: this.#topics,
      partitions: o.partitions,
      sessionTimeoutMs: o.sessionTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      fetchMaxWaitMs: KAFKA_BUS_DEFAULTS.fetchMaxWaitMs,
      fromBeginning: this.#fromBeginning,
      maxPendingHistory: o.maxPendingHistory,
      fanout: this.#fanout === undefined ? undefined : { publish: (envelope) => this.#liveFanout(envelope) },
      queues: options.queues,
      store: history,
      history: this.#historyWriter,
      counters: this.#stats,
      logger: this.#logger,
      isRunning: () => this.#state === 'running',
      retry: (stage, attempt, delayMs, error) => {
        if (this.events.listenerCount('retry') > 0) this.events.emit('retry', { stage, attempt, delayMs, error });
      },
      committed: (offsets) => {
        if (this.events.listenerCount('commit') > 0) this.events.emit('commit', offsets);
      },
      unsubscribed: (topics) => {
        const mine = topics.filter((t) => this.#fitsTemplate(t));
        if (mine.length === 0) return;
        this.#logger.info({ topics: mine }, 'the group gave this node partitions of topics it does not consume; consuming them too');
        this.#addTopics(mine, false, this.#lookedAt).catch((error: unknown) => this.#logDiscovery(error));
      },
      decode:
        options.mapping !== undefined
          ? (topic, partition, record) => (options.mapping as KafkaRecordMapping).decode(topic, partition, record)
          : undefined,
    });
  }

  get healthy(): boolean {
    // A bus with only template routes consumes nothing until a destination names a topic.
    return this.#state === 'running' && this.#producerOk && (this.#topics.length === 0 || this.#consumer.healthy);
  }

  /**
   * The offset a message-id names when it is a record of the topic carrying `destination`: a resuming
   * subscription had everything up to it, so live copies at or below it (records consumed again after a
   * rebalance) are not delivered to it again.
   */
  positionOf(destination: string, id: string): number | undefined {
    return id.startsWith(`${this.#topicFor(destination)}-`) ? recordPosition(id) : undefined;
  }

  /** The Kafka topic that carries a destination's records (as the node's route table says). */
  topicFor(destination: string): string {
    return this.#topicFor(destination);
  }

  /** The consumer-group liveness settings in use (they bound how long a crashed node's partitions wait). */
  get session(): { readonly timeoutMs: number; readonly heartbeatIntervalMs: number } {
    return { timeoutMs: this.#o.sessionTimeoutMs, heartbeatIntervalMs: this.#o.heartbeatIntervalMs };
  }

  /** Every Kafka topic this bus writes and reads. */
  get topics(): readonly string[] {
    return this.#topics;
  }

  /** Inward records (or parts of them) not delivered, by reason (`stompede_bridge_records_dropped_total`). */
  get droppedRecords(): ReadonlyMap<string, number> {
    return this.#mapping?.dropped ?? new Map();
  }

  get stats(): KafkaBusStats {
    return { ...this.#stats, historyPending: this.#historyWriter.pending };
  }

  // ---- start ----------------------------------------------------------------------------------------------

  async start(deliver: Deliver): Promise<void> {
    if (this.#state !== 'new')
      throw new BridgeError(KAFKA_ERRORS.ERR_KAFKA_START, `the Kafka bus was already started (${this.#state})`, false);
    this.#state = 'starting';
    this.#lookedAt = Date.now();
    const kafka = new Kafka({
      clientId: this.#clientId,
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
      this.#deliver = (envelope) => {
        if (!this.#historyOnly(envelope)) deliver(envelope);
      };
      if (this.#topics.length > 0) await this.#consumer.start(kafka, fresh, this.#deliver);
      if (this.#state !== 'starting')
        throw new BridgeError(KAFKA_ERRORS.ERR_KAFKA_NOT_RUNNING, 'the Kafka bus was closed while it started', false);
    } catch (error) {
      if (this.#state === 'starting') this.#state = 'failed';
      await this.#disconnectAll();
      throw error instanceof BridgeError
        ? error
        : new BridgeError(
            KAFKA_ERRORS.ERR_KAFKA_START,
            `could not start the Kafka bus on ${this.#brokers.join(',')}: ${messageOf(error)}`,
            isRetriable(error),
            { cause: error },
          );
    }
    this.#state = 'running';
    this.#commitTimer = setInterval(() => void this.#consumer.offsets.commit(), this.#o.commitIntervalMs);
    this.#commitTimer.unref();
    if ((this.#mapping?.templateTopics.length ?? 0) > 0 && this.#o.topicDiscoveryMs > 0) {
      this.#discoveryTimer = setInterval(() => void this.#discover(), this.#o.topicDiscoveryMs);
      this.#discoveryTimer.unref();
    }
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
          if (refusalOf(error) !== undefined) throw error;
          const delayMs = backoffMs(attempt);
          if (Date.now() + delayMs >= giveUpAt || this.#state !== 'starting') throw error;
          await sleep(delayMs);
        }
      }
      step = 'listing the topics';
      const existing = new Set(await admin.listTopics());
      // Existing topics that fit a template route are consumed from the start, like the literal ones.
      for (const topic of existing) if (!this.#topicSet.has(topic) && this.#fitsTemplate(topic)) this.#addKnown(topic);
      const missing = this.#topics.filter((t) => !existing.has(t));
      if (missing.length > 0 && !this.#autoCreateTopics) {
        throw new BridgeError(
          KAFKA_ERRORS.ERR_KAFKA_START,
          `the Kafka topics ${missing.join(', ')} do not exist and topic creation is off (kafkaAutoCreateTopics): create them, or turn it on`,
          false,
        );
      }
      if (missing.length > 0) {
        step = 'describing the cluster';
        const replicationFactor = await this.#replicationFactor(admin);
        step = `creating the topics ${missing.join(', ')} (${this.#o.partitions} partitions, replication factor ${replicationFactor})`;
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({ topic, numPartitions: this.#o.partitions, replicationFactor })),
        });
        this.#logger.info({ topics: missing, partitions: this.#o.partitions, replicationFactor }, 'created the Kafka topics');
      }
      if (this.#fromBeginning || this.#fanout !== undefined) return [];
      step = `reading the offsets of the consumer group ${this.groupId}`;
      return this.#freshPartitionEnds(admin, this.#topics, (topic) => this.#mapping?.isPrivate(topic) !== false);
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${timeoutMs} ms${lastError === undefined ? '' : `; last: ${messageOf(lastError)}`}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([work, deadline]);
    } catch (error) {
      work.catch(() => {});
      const refusal = refusalOf(error);
      if (refusal !== undefined)
        throw new BridgeError(KAFKA_ERRORS.ERR_KAFKA_AUTH, this.#refusalMessage(refusal, error), false, { cause: error });
      const unreachable = step === 'connecting';
      throw new BridgeError(
        unreachable ? KAFKA_ERRORS.ERR_KAFKA_UNREACHABLE : KAFKA_ERRORS.ERR_KAFKA_START,
        unreachable
          ? `cannot reach Kafka at ${this.#brokers.join(',')} within ${timeoutMs} ms (${messageOf(error)}). Check that the brokers are running and that --kafka lists host:port addresses this node can reach.`
          : `Kafka at ${this.#brokers.join(',')} failed while ${step}: ${messageOf(error)}`,
        unreachable || isRetriable(error),
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
      await admin.disconnect().catch(() => {});
    }
  }

  /** Says what Kafka refused and which settings to check; never the password (kafkajs's messages hold none). */
  #refusalMessage(refusal: 'sasl' | 'tls', error: unknown): string {
    const at = this.#brokers.join(',');
    if (refusal === 'tls') {
      const advice = 'give the CA that signed it with kafkaSslCaFile, and name the host it was issued for in --kafka';
      return `the TLS certificate of Kafka at ${at} was not accepted (${messageOf(error)}): ${advice}`;
    }
    const sasl = this.#client?.sasl;
    const user = sasl !== undefined && 'username' in sasl ? ` of user "${sasl.username}"` : '';
    const mechanism = sasl === undefined ? '' : ` (mechanism ${sasl.mechanism})`;
    const advice = 'Check kafkaSaslMechanism, kafkaSaslUsername and kafkaSaslPassword.';
    return `Kafka at ${at} refused the SASL login${user}${mechanism}: ${messageOf(error)}. ${advice}`;
  }

  /**
   * Where the group starts on partitions it never committed: the end of the log as of now for `fromEnd` topics,
   * else the oldest retained record (a native topic: its history is then in the store, records written before
   * Stompede ran included). Records before the end are history only (the subscriber that named the topic did not
   * ask for its past); with `liveSince` (a topic found by #discover), only those written before then: a topic found
   * some seconds after an outside producer created it still delivers its records to the subscribers that were
   * waiting for them (a wildcard subscription).
   */
  async #freshPartitionEnds(
    admin: Admin,
    topics: readonly string[],
    fromEnd: (topic: string) => boolean,
    liveSince?: number,
  ): Promise<PartitionOffset[]> {
    const fresh: PartitionOffset[] = [];
    for (const { topic, partitions } of await admin.fetchOffsets({ groupId: this.groupId, topics: [...topics] })) {
      const never = new Set(partitions.filter((p) => p.offset === '-1').map((p) => p.partition));
      if (never.size === 0) continue;
      const live = new Map<number, string>();
      if (liveSince !== undefined && !fromEnd(topic))
        for (const at of await settled(() => admin.fetchTopicOffsetsByTimestamp(topic, liveSince))) live.set(at.partition, at.offset);
      for (const end of await settled(() => admin.fetchTopicOffsets(topic)))
        if (never.has(end.partition)) {
          const start = fromEnd(topic) ? end.high : end.low;
          const liveFrom = Number(live.get(end.partition) ?? end.high);
          fresh.push({ topic, partition: end.partition, offset: start });
          if (liveFrom > Number(start)) this.#catchUp.set(`${topic}-${end.partition}`, liveFrom);
        }
    }
    return fresh;
  }

  /**
   * A record written before this node started reading its topic (see #freshPartitionEnds): it goes to history, not
   * to live subscribers, who did not ask for the past. The last such record of a partition ends its catch-up.
   */
  #historyOnly(envelope: PublishInput): boolean {
    if (this.#catchUp.size === 0 || envelope.position === undefined || envelope.id === undefined) return false;
    const key = envelope.id.slice(0, envelope.id.lastIndexOf('-'));
    const high = this.#catchUp.get(key);
    if (high === undefined) return false;
    if (envelope.position >= high - 1) this.#catchUp.delete(key);
    return envelope.position < high;
  }

  #liveFanout(envelope: PublishInput): Promise<void> {
    if (this.#historyOnly(envelope) || this.#fanout === undefined) return Promise.resolve();
    return this.#fanout.publish(envelope);
  }

  /** Resolves once every partition of `topic` has caught up (see #historyOnly), or after `timeoutMs`. */
  async #caughtUp(topic: string, timeoutMs: number): Promise<void> {
    const prefix = `${topic}-`;
    const giveUpAt = Date.now() + timeoutMs;
    const pending = (): boolean => [...this.#catchUp.keys()].some((k) => k.startsWith(prefix) && /^\d+$/.test(k.slice(prefix.length)));
    while (pending() && Date.now() < giveUpAt && this.#state === 'running') await sleep(50);
  }

  /** Replicas of a topic this bus creates: the configured number, else min(3, brokers in the cluster). */
  async #replicationFactor(admin: Admin): Promise<number> {
    return this.#o.replicationFactor > 0
      ? this.#o.replicationFactor
      : autoReplicationFactor((await admin.describeCluster()).brokers.length);
  }

  #addKnown(topic: string): void {
    this.#topics.push(topic);
    this.#topicSet.add(topic);
  }

  /** Starts consuming a topic a client named (creating it when missing and allowed) before its frame goes on. */
  #addTopic(topic: string): Promise<void> {
    return this.#addTopics([topic], true).catch((error: unknown) => {
      throw new BridgeError(
        KAFKA_ERRORS.ERR_KAFKA_TOPIC,
        `could not start consuming Kafka topic "${topic}": ${messageOf(error)}`,
        isRetriable(error),
        {
          cause: error,
        },
      );
    });
  }

  /**
   * Starts consuming topics while running: one change at a time, each a re-subscription (one rebalance for all of
   * `wanted`). `named`: a client's frame waits on it, so a missing topic is created (where allowed) and its past is
   * let into the store first; otherwise (found by #discover or handed over by the group) missing topics are left out.
   * A topic added so starts, on partitions the group never committed, at its oldest record (native) or its end.
   */
  #addTopics(wanted: readonly string[], named: boolean, liveSince?: number): Promise<void> {
    const next = this.#adding.then(async () => {
      let topics = wanted.filter((t) => !this.#topicSet.has(t));
      if (topics.length === 0 || this.#kafka === undefined || this.#state !== 'running') return;
      const kafka = this.#kafka;
      const admin = kafka.admin({ retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 } });
      let fresh: PartitionOffset[];
      try {
        await admin.connect();
        const existing = new Set(await admin.listTopics());
        const missing = topics.filter((t) => !existing.has(t));
        if (missing.length > 0 && !named) topics = topics.filter((t) => existing.has(t));
        else if (missing.length > 0) {
          // A client naming a topic creates it only where the operator allows topic creation at all.
          if (!this.#autoCreateTopics)
            throw new BridgeError(
              KAFKA_ERRORS.ERR_KAFKA_TOPIC,
              `the Kafka topic "${missing.join('", "')}" does not exist and topic creation is off (kafkaAutoCreateTopics)`,
              false,
            );
          const replicationFactor = await this.#replicationFactor(admin);
          await admin.createTopics({
            waitForLeaders: true,
            topics: missing.map((topic) => ({ topic, numPartitions: this.#o.partitions, replicationFactor })),
          });
        }
        if (topics.length === 0) return;
        // From its start, for history: what is older is stored, not delivered live (#historyOnly).
        fresh = await this.#freshPartitionEnds(admin, topics, (t) => this.#mapping?.isPrivate(t) !== false, liveSince);
      } finally {
        await admin.disconnect().catch(() => {});
      }
      for (const topic of topics) this.#addKnown(topic);
      this.#logger.info({ topics, named }, 'consuming further Kafka topics (re-subscribing)');
      if (this.#topics.length === topics.length) await this.#consumer.start(kafka, fresh, this.#deliver ?? (() => {}));
      else await this.#consumer.resubscribe(kafka, fresh);
      // A SUBSCRIBE asking for history reads it once this returns: let the store have the topic's past first.
      if (named) for (const topic of topics) await this.#caughtUp(topic, CATCH_UP_WAIT_MS);
    });
    this.#adding = next.catch(() => {});
    return next;
  }

  /**
   * Looks for topics created since the last look that fit a template route: an outside producer may create one at
   * any time, and wildcard subscribers on every node wait for its records. Only topics this node's own routes map
   * are taken: a topic another node reads under a route this node lacks (its config changed first, in a rolling
   * change) would be read here under the wrong destination. A `/kafka/<name>` topic is read by every node where a
   * client names it, which is every node that has a subscriber for it.
   */
  async #discover(): Promise<void> {
    if (this.#discovering || this.#state !== 'running' || this.#kafka === undefined) return;
    this.#discovering = true;
    try {
      const admin = (this.#admin ??= this.#kafka.admin({ retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 } }));
      await admin.connect();
      const lookingAt = Date.now();
      const found = (await admin.listTopics()).filter((t) => !this.#topicSet.has(t) && this.#fitsTemplate(t));
      if (found.length > 0 && this.#state === 'running') await this.#addTopics(found, false, this.#lookedAt);
      this.#lookedAt = lookingAt;
    } catch (error) {
      this.#logDiscovery(error);
    } finally {
      this.#discovering = false;
    }
  }

  #fitsTemplate(topic: string): boolean {
    // Every caller has the topic from Kafka (a listing, an assignment): its name is valid; `__*` are Kafka's own.
    return !topic.startsWith('__') && (this.#mapping?.templateTopics ?? []).some((t) => t.test(topic));
  }

  #logDiscovery(error: unknown): void {
    if (this.#state === 'running') this.#logger.warn({ err: error }, `could not look for further Kafka topics: ${messageOf(error)}`);
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

  // ---- publish --------------------------------------------------------------------------------------------

  /** The fan-out carries this bus's records to the nodes: its link is this bus's link. */
  setLinkListener(listener: LinkListener): void {
    this.#fanout?.setLinkListener?.(listener);
  }

  publish(input: PublishInput): Promise<void> {
    if (this.#state !== 'running') {
      return Promise.reject(
        new BridgeError(
          KAFKA_ERRORS.ERR_KAFKA_NOT_RUNNING,
          `the Kafka bus is ${this.#state === 'new' || this.#state === 'starting' ? 'not started' : this.#state}`,
          this.#state !== 'closed',
        ),
      );
    }
    let topic: string;
    let record: EncodedRecord;
    try {
      topic = this.#topicFor(input.destination);
      record = this.#mapping !== undefined ? this.#mapping.encode(input) : encodeRecord(input);
    } catch (error) {
      return Promise.reject(
        new BridgeError(KAFKA_ERRORS.ERR_KAFKA_TOPIC, `no Kafka record for ${input.destination}: ${messageOf(error)}`, false, {
          cause: error,
        }),
      );
    }
    if (!this.#topicSet.has(topic) && this.#mapping !== undefined && validKafkaTopic(topic))
      return this.#addTopic(topic).then(() => this.#batcher.add(topic, record.message, record.bytes));
    if (!this.#topicSet.has(topic)) {
      return Promise.reject(
        new BridgeError(
          KAFKA_ERRORS.ERR_KAFKA_TOPIC,
          `${input.destination} maps to Kafka topic "${topic}", which this bus does not consume (${this.#topics.join(', ')})`,
          false,
        ),
      );
    }
    return this.#batcher.add(topic, record.message, record.bytes);
  }

  /**
   * One batch to Kafka, acknowledged by all in-sync replicas within publishTimeoutMs. Throws the error every
   * publish of the batch is rejected with, after replacing the producer.
   */
  async #send(batch: ReadonlyArray<Queued<Message>>, bytes: number): Promise<void> {
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
        await Promise.race([
          sent,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new PublishTimeout(this.#o.publishTimeoutMs)), this.#o.publishTimeoutMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      this.#producerOk = false;
      const e = new BridgeError(
        KAFKA_ERRORS.ERR_KAFKA_PUBLISH,
        `Kafka at ${this.#brokers.join(',')} did not acknowledge the message: ${messageOf(error)}`,
        isRetriable(error),
        { cause: error },
      );
      this.#replaceProducer();
      throw e;
    }
    this.#producerOk = true;
    this.#stats.published += batch.length;
    this.#stats.batches++;
    if (this.events.listenerCount('batch') > 0)
      this.events.emit('batch', { messages: batch.length, bytes, durationMs: performance.now() - started });
  }

  /**
   * After a failed batch the outcome of its records is unknown (a timeout may hide a write). A fresh idempotent
   * producer gets a new producer id, so no later batch can be mistaken by the broker for a retry of that one.
   */
  #replaceProducer(): void {
    const old = this.#producer;
    if (this.#kafka === undefined || old === undefined) return;
    this.#producer = this.#createProducer(this.#kafka);
    this.#producerConnected = false;
    void old.disconnect().catch(() => {});
  }

  // ---- watch, close ---------------------------------------------------------------------------------------

  async watch(vhost: string, destination: string): Promise<void> {
    // A subscriber on a topic not consumed yet: consume it (a wildcard subscription names no one topic).
    const topic = this.#mapping?.topicFor(destination);
    if (topic !== undefined && !this.#topicSet.has(topic) && validKafkaTopic(topic)) await this.#addTopic(topic);
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
      await this.#batcher.drain();
      this.#consumer.pause();
      // Batches in hand stop at their next retry; one waiting on a fanout that never answers is not waited for.
      const giveUpAt = Date.now() + this.#o.closeTimeoutMs;
      await this.#consumer.idle(this.#o.closeTimeoutMs);
      await this.#historyWriter.drained(Math.max(0, giveUpAt - Date.now()));
      // flush() commits twice on purpose (see OffsetCommits.flush). A commit during a group rebalance is retried by
      // kafkajs for up to half a minute: it gets the time left, and what it leaves uncommitted is consumed again
      // by the partition's next owner (at-least-once).
      const committed = this.#consumer.offsets.flush();
      await Promise.race([committed, sleep(Math.max(0, giveUpAt - Date.now()), undefined, { ref: false })]);
    }
    clearInterval(this.#commitTimer);
    this.#state = 'closed';
    this.#historyWriter.close();
    this.#batcher.rejectQueued(new BridgeError(KAFKA_ERRORS.ERR_KAFKA_NOT_RUNNING, 'the Kafka bus closed', false));
    await this.#disconnectAll();
  }

  async #disconnectAll(): Promise<void> {
    clearInterval(this.#discoveryTimer);
    const left = Promise.all([
      this.#consumer.disconnect(),
      this.#producer?.disconnect().catch(() => {}),
      this.#admin?.disconnect().catch(() => {}),
    ]);
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

/**
 * A metadata read right after topics were created can meet partitions whose leader is still being elected
 * ("not the leader for that topic-partition"): asked again a few times, with backoff, before giving up.
 */
async function settled<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (attempt >= 8 || !isRetriable(error)) throw error;
      await sleep(backoffMs(attempt));
    }
  }
}

class PublishTimeout extends Error {
  readonly retriable = true;
  constructor(ms: number) {
    super(`no acknowledgement within ${ms} ms; the message may or may not have been stored`);
    this.name = 'PublishTimeout';
  }
}

/** Node's TLS codes for a server certificate the client does not accept. */
const CERTIFICATE_REFUSED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * `sasl` when Kafka refused the login, `tls` when its certificate was refused, anywhere down the cause chain
 * (kafkajs wraps the connection error in KafkaJSNumberOfRetriesExceeded); undefined for anything worth retrying.
 */
function refusalOf(error: unknown): 'sasl' | 'tls' | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e.name === 'KafkaJSSASLAuthenticationError') return 'sasl';
    const code: unknown = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CERTIFICATE_REFUSED.has(code)) return 'tls';
  }
  return undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error && !error.message.includes(error.cause.message) ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
