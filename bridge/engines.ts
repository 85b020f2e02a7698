import type { ClusterBus } from '../broker/ports/bus.js';
import type { HistoryRetention, HistoryStore } from '../broker/ports/history.js';
import type { Logger } from '../broker/ports/logger.js';
import type { SharedQueues } from '../broker/ports/queues.js';
import type { RouteTable } from '../broker/ports/routes.js';
import type { KafkaSecurity } from './kafka/client-config.js';
import type { RedisTarget } from './redis-client.js';

export interface Engines {
  fanout?: ClusterBus;
  queues?: SharedQueues;
  log?: ClusterBus;
  history?: HistoryStore;
}

/**
 * What the engines need to know, in their own terms: the composition root (broker/server.ts) derives it from the
 * broker's config, so the adapters never read that config themselves.
 */
export interface EngineSettings {
  readonly clusterName: string;
  /** This node's id, already chosen (never empty): it names Kafka consumer groups and Redis consumers. */
  readonly nodeId: string;
  /** Engine addresses; empty: not used. */
  readonly redis: string;
  readonly kafka: string;
  readonly mongo: string;
  readonly retention: HistoryRetention;
  /** Most recent messages per destination kept in Redis in front of MongoDB (0: no cache). */
  readonly historyCacheSize: number;
  /** The node's one route table, as the broker routes with it: Kafka topics come from its kafka routes. */
  readonly routes: RouteTable;
  /**
   * Kafka consumer-group liveness: a node silent this long loses its partitions to the others, which is how long a
   * crashed node's destinations wait; and how often a node says it is alive (well below the session timeout).
   */
  readonly kafkaSessionTimeoutMs: number;
  readonly kafkaHeartbeatIntervalMs: number;
  /** How to reach Redis beyond its URL (`redis`): Sentinel or Cluster, credentials, TLS. */
  readonly redisTarget?: Omit<RedisTarget, 'url'> | undefined;
  /** Production Kafka: TLS and SASL, client id, topic creation. */
  readonly kafkaSecurity?: KafkaSecurity | undefined;
  readonly kafkaClientId?: string | undefined;
  readonly kafkaAutoCreateTopics?: boolean | undefined;
  readonly kafkaTopicPartitions?: number | undefined;
  /** 0: min(3, brokers). */
  readonly kafkaReplicationFactor?: number | undefined;
  /** How often a running node looks for topics none of its clients named (0: never). */
  readonly kafkaTopicDiscoveryMs?: number | undefined;
}

/**
 * Builds the cluster engines the settings name, and the history store every node has (in memory unless MongoDB is
 * configured). Each client library is imported only here and only when its engine is configured, so a single node
 * on the in-memory bus loads none of them. Engines in `given` are used as they are, and not built.
 */
export async function createEngines(
  settings: EngineSettings,
  logger: Logger,
  given: Engines = {},
): Promise<Engines & { history: HistoryStore }> {
  const out: Engines = {};
  const common = { clusterName: settings.clusterName, nodeId: settings.nodeId };
  const redis: RedisTarget = { ...settings.redisTarget, url: settings.redis };
  if (settings.redis !== '' && given.fanout === undefined) {
    const { RedisBus } = await import('./redis-bus.js');
    const { routeChannels } = await import('./redis-channels.js');
    const { RedisSharedQueues } = await import('./redis-queues.js');
    out.fanout = new RedisBus({
      url: redis,
      ...common,
      logger: logger.child({ engine: 'redis' }),
      channels: routeChannels(settings.routes),
    });
    if (given.queues === undefined) {
      out.queues = new RedisSharedQueues({ url: redis, ...common, logger: logger.child({ engine: 'redis-queues' }) });
    }
  }
  let history = given.history;
  if (history === undefined && settings.mongo !== '') {
    const { MongoHistoryStore } = await import('./mongo-history.js');
    const inner = new MongoHistoryStore({
      url: settings.mongo,
      collectionPrefix: `${settings.clusterName}_`,
      retention: settings.retention,
      logger: logger.child({ engine: 'mongo' }),
    });
    let store: HistoryStore = inner;
    if (settings.redis !== '' && settings.historyCacheSize > 0) {
      const { CachedHistoryStore } = await import('./cached-history.js');
      store = new CachedHistoryStore({
        url: redis,
        clusterName: settings.clusterName,
        cacheSize: settings.historyCacheSize,
        inner,
        retention: settings.retention,
        logger: logger.child({ engine: 'history-cache' }),
      });
    }
    history = store;
    out.history = store;
  }
  if (history === undefined) {
    const { InMemoryHistoryStore } = await import('./memory-history.js');
    history = new InMemoryHistoryStore(settings.retention);
    out.history = history;
  }
  if (settings.kafka !== '' && given.log === undefined) {
    const { KafkaBus } = await import('./kafka-bus.js');
    const { kafkaClientSecurity } = await import('./kafka/client-config.js');
    const { RecordRouter } = await import('./kafka/inward.js');
    // Literal targets are known now; a template's topics when they exist at start or a destination names them.
    const mapping = new RecordRouter(settings.routes, logger.child({ engine: 'kafka' }));
    const fanout = given.fanout ?? out.fanout;
    const queues = given.queues ?? out.queues;
    out.log = new KafkaBus({
      brokers: settings.kafka.split(',').map((b) => b.trim()),
      ...common,
      topicFor: (destination: string) => mapping.topicFor(destination),
      topics: mapping.literalTopics,
      mapping,
      ...(fanout !== undefined ? { fanout } : {}),
      ...(queues !== undefined ? { queues } : {}),
      history,
      sessionTimeoutMs: settings.kafkaSessionTimeoutMs,
      heartbeatIntervalMs: settings.kafkaHeartbeatIntervalMs,
      client: kafkaClientSecurity(settings.kafkaSecurity ?? {}),
      clientId: settings.kafkaClientId,
      autoCreateTopics: settings.kafkaAutoCreateTopics,
      partitions: settings.kafkaTopicPartitions,
      replicationFactor: settings.kafkaReplicationFactor,
      topicDiscoveryMs: settings.kafkaTopicDiscoveryMs,
      logger: logger.child({ engine: 'kafka' }),
    });
  }
  return { ...out, history };
}
