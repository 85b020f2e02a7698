import { historyRetention, type BrokerConfig } from '../broker/config.js';
import type { Logger } from '../broker/logger.js';
import type { ClusterBus } from './bus.js';
import type { HistoryStore } from './history.js';
import type { SharedQueues } from './queues.js';
import { defaultRoutes, RouteTable, type Route } from './routes.js';

export interface Engines {
  fanout?: ClusterBus;
  queues?: SharedQueues;
  log?: ClusterBus;
  history?: HistoryStore;
}

/**
 * Builds the cluster engines the config names. Each client library is imported only here and only when its
 * engine is configured, so a single node on the in-memory bus loads none of them.
 */
export async function createEngines(config: Readonly<BrokerConfig>, logger: Logger, given: Engines = {}): Promise<Engines> {
  const out: Engines = {};
  const common = { clusterName: config.clusterName, nodeId: config.nodeId };
  if (config.redis !== '' && given.fanout === undefined) {
    const { RedisBus } = await import('./redis-bus.js');
    const { RedisSharedQueues } = await import('./redis-queues.js');
    out.fanout = new RedisBus({ url: config.redis, ...common, logger: logger.child({ engine: 'redis' }) });
    if (given.queues === undefined) out.queues = new RedisSharedQueues({ url: config.redis, ...common, logger: logger.child({ engine: 'redis-queues' }) });
  }
  let history = given.history;
  if (history === undefined && config.mongo !== '') {
    const { MongoHistoryStore } = await import('./mongo-history.js');
    const inner = new MongoHistoryStore({
      url: config.mongo,
      collectionPrefix: `${config.clusterName}_`,
      retention: { maxPerDestination: config.historyMaxPerDestination, maxAgeMs: config.historyMaxAgeMs },
      logger: logger.child({ engine: 'mongo' }),
    });
    let store: HistoryStore = inner;
    if (config.redis !== '' && config.historyCacheSize > 0) {
      const { CachedHistoryStore } = await import('./cached-history.js');
      store = new CachedHistoryStore({
        url: config.redis, clusterName: config.clusterName, cacheSize: config.historyCacheSize, inner,
        retention: historyRetention(config), logger: logger.child({ engine: 'history-cache' }),
      });
    }
    history = store;
    out.history = store;
  }
  if (config.kafka !== '' && given.log === undefined) {
    const { KafkaBus } = await import('./kafka-bus.js');
    const engines = { redis: config.redis !== '', kafka: true };
    const table = new RouteTable(config.routes.length > 0 ? config.routes as Route[] : defaultRoutes(engines));
    const topics = [...new Set(table.routes.filter((r) => r.kind === 'kafka').map((r) => r.kafkaTopic ?? ''))].filter((t) => t !== '');
    const { InMemoryHistoryStore } = await import('./history.js');
    if (history === undefined) {
      history = new InMemoryHistoryStore(historyRetention(config));
      out.history = history;
    }
    const fanout = given.fanout ?? out.fanout;
    const queues = given.queues ?? out.queues;
    out.log = new KafkaBus({
      brokers: config.kafka.split(',').map((b) => b.trim()),
      ...common,
      topicFor: (destination: string) => table.route(destination).kafkaTopic ?? topics[0] ?? `${config.clusterName}.messages`,
      topics,
      ...(fanout !== undefined ? { fanout } : {}),
      ...(queues !== undefined ? { queues } : {}),
      history,
      logger: logger.child({ engine: 'kafka' }),
    });
  }
  return out;
}
