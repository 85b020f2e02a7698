/**
 * Prometheus metrics, read at scrape time. The hot path only bumps the plain counters of `BrokerStats`; here
 * `collect` hooks copy them into prom-client metrics when `/metrics` is scraped, so nothing is added to the
 * per-message path, and a scrape costs one pass over the counters and the open sessions.
 *
 * One registry per broker (several brokers can share a process, as the specs do); the process metrics of
 * prom-client (CPU, memory, event loop lag, GC) live in one registry per process and are merged in at scrape.
 */
import { Counter, Gauge, Histogram as PromHistogram, Registry, collectDefaultMetrics } from 'prom-client';
import { queueViews, type QueueAdminSource, type QueueView } from './queue-admin.js';
import { Histogram, type BrokerStats } from './stats.js';
import { SERVER_VERSION } from './version.js';

/** What the metrics read of a broker at scrape time (a `Broker` is one): counters, sessions, engine health. */
export interface MetricsSource extends QueueAdminSource {
  readonly nodeId: string;
  readonly config: { readonly clusterName: string };
  readonly stats: BrokerStats;
  readonly sessions: Iterable<{
    readonly connected: boolean;
    readonly version: string;
    readonly connection: { readonly transport: string };
  }>;
  readiness(): { readonly engines: Record<string, boolean> };
}

export interface BrokerMetrics {
  /** This broker's metrics (the process metrics are not in it; `scrape` adds them). */
  readonly registry: Registry;
  /** The Content-Type of `scrape`'s text. */
  readonly contentType: string;
  /** Prometheus text exposition of this broker's metrics and the process metrics. */
  scrape(): Promise<string>;
}

/** Prometheus buckets are in seconds; ours are in milliseconds. */
const BUCKETS_S: readonly number[] = Histogram.BUCKETS_MS.map((ms) => ms / 1000);

/** One exported sample, in the shape prom-client's registry formats. */
interface Sample {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly sharedLabels: Record<string, string>;
  readonly metricName: string;
}

/**
 * A prom-client histogram whose buckets are not observed through prom-client but copied from one of our
 * `Histogram`s when scraped. prom-client's Registry and `Histogram#get` read a histogram through its
 * `getForPromString()`; this class answers that from the stats, so the text and the JSON forms both hold the
 * exact counts (spec/ops/metrics.spec.ts checks the text).
 */
class StatsHistogram extends PromHistogram {
  readonly #name: string;
  readonly #help: string;
  readonly #source: Histogram;

  constructor(registry: Registry, name: string, help: string, source: Histogram) {
    super({ name, help, buckets: [...BUCKETS_S], registers: [registry] });
    this.#name = name;
    this.#help = help;
    this.#source = source;
  }

  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Sample[] }> {
    const h = this.#source;
    const values: Sample[] = [];
    let cumulative = 0;
    BUCKETS_S.forEach((le, i) => {
      cumulative += h.counts[i] ?? 0;
      values.push({ value: cumulative, labels: { le }, sharedLabels: {}, metricName: `${this.#name}_bucket` });
    });
    values.push(
      { value: h.count, labels: { le: '+Inf' }, sharedLabels: {}, metricName: `${this.#name}_bucket` },
      { value: h.sum / 1000, labels: {}, sharedLabels: {}, metricName: `${this.#name}_sum` },
      { value: h.count, labels: {}, sharedLabels: {}, metricName: `${this.#name}_count` },
    );
    return { name: this.#name, help: this.#help, type: 'histogram', aggregator: 'sum', values };
  }
}

/** A counter whose values are copied from a map of the stats at each scrape. */
function mapCounter(registry: Registry, name: string, help: string, label: string, read: () => Iterable<readonly [string, number]>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, n] of read()) this.inc({ [label]: value }, n);
    },
  });
}

/** A counter without labels copied from one number of the stats. */
function plainCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * Queues exported per scrape, deepest first: queue names come from clients, and although each virtual host holds at
 * most maxDestinationsPerVhost of them, a shared queue engine remembers every name the cluster has seen. Past this
 * many, the shallowest queues are left out of the per-queue series (the API still lists them all).
 */
export const MAX_QUEUE_SERIES = 500;

/** The per-queue series: each gauge reads one field of the views the scrape fetched once. */
const QUEUE_GAUGES = [
  ['stompede_queue_messages', 'Messages waiting in a queue (cluster-wide for shared queues).', 'depth'],
  ['stompede_queue_bytes', 'Bytes of the waiting messages of a queue (for shared queues, Redis memory of the list).', 'bytes'],
  ['stompede_queue_consumers', 'Consumers of a queue (cluster-wide for shared queues).', 'consumers'],
  ['stompede_queue_unacked', 'Messages of a queue delivered (or taken by a node) and not yet acknowledged.', 'unacked'],
  ['stompede_queue_dlq_messages', 'Messages waiting in the dead-letter queue <queue>.dlq.', 'dlqDepth'],
] as const;
const QUEUE_COUNTERS = [
  ['stompede_queue_deliveries_total', 'Messages of a queue delivered to consumers on this node.', 'deliveries'],
  [
    'stompede_queue_redeliveries_total',
    'Deliveries on this node that were redeliveries (after NACK, disconnect or a node failure).',
    'redeliveries',
  ],
] as const;

let processRegistry: Registry | undefined;

/** prom-client's default process metrics, registered once per process, on first use. */
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

function createMetrics(broker: MetricsSource): BrokerMetrics {
  const registry = new Registry();
  const stats = broker.stats;
  const shared = processMetrics();
  /** Read once per scrape (one pass over the shared queue engine), then copied into every per-queue series. */
  let queues: readonly QueueView[] = [];

  for (const [name, help, field] of QUEUE_GAUGES) {
    new Gauge({
      name,
      help,
      labelNames: ['vhost', 'queue'],
      registers: [registry],
      collect() {
        this.reset();
        for (const q of queues) this.set({ vhost: q.vhost, queue: q.name }, q[field]);
      },
    });
  }
  for (const [name, help, field] of QUEUE_COUNTERS) {
    new Counter({
      name,
      help,
      labelNames: ['vhost', 'queue'],
      registers: [registry],
      collect() {
        this.reset();
        for (const q of queues) if (q[field] > 0) this.inc({ vhost: q.vhost, queue: q.name }, q[field]);
      },
    });
  }

  new Gauge({
    name: 'stompede_info',
    help: 'Always 1; the labels name this node and its version.',
    labelNames: ['node', 'version', 'cluster'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ node: broker.nodeId, version: SERVER_VERSION, cluster: broker.config.clusterName }, 1);
    },
  });
  new Gauge({
    name: 'stompede_connections',
    help: 'Open client connections (CONNECTed or not yet), by transport.',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const s of broker.sessions) counts.set(s.connection.transport, (counts.get(s.connection.transport) ?? 0) + 1);
      for (const [transport, n] of counts) this.set({ transport }, n);
    },
  });
  new Gauge({
    name: 'stompede_sessions',
    help: 'CONNECTed STOMP sessions, by transport and negotiated protocol version.',
    labelNames: ['transport', 'version'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, { transport: string; version: string; n: number }>();
      for (const s of broker.sessions) {
        if (!s.connected) continue;
        const key = `${s.connection.transport} ${s.version}`;
        const entry = counts.get(key);
        if (entry === undefined) counts.set(key, { transport: s.connection.transport, version: s.version, n: 1 });
        else entry.n++;
      }
      for (const { transport, version, n } of counts.values()) this.set({ transport, version }, n);
    },
  });
  new Gauge({
    name: 'stompede_engine_up',
    help: 'Whether each configured cluster engine is connected (1) or not (0); see /readyz.',
    labelNames: ['engine'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [engine, healthy] of Object.entries(broker.readiness().engines)) this.set({ engine }, healthy ? 1 : 0);
    },
  });

  mapCounter(
    registry,
    'stompede_frames_received_total',
    'STOMP frames received from clients, by command.',
    'command',
    () => stats.framesIn,
  );
  mapCounter(registry, 'stompede_frames_sent_total', 'STOMP frames sent to clients, by command.', 'command', () => stats.framesOut);
  plainCounter(registry, 'stompede_received_bytes_total', 'Bytes received from clients (frames and heart-beats).', () => stats.bytesIn);
  plainCounter(registry, 'stompede_sent_bytes_total', 'Bytes sent to clients (frames and heart-beats).', () => stats.bytesOut);
  mapCounter(
    registry,
    'stompede_messages_routed_total',
    'Messages accepted from clients (SEND), by the kind of route that carried them.',
    'route',
    () => Object.entries(stats.routed),
  );
  mapCounter(
    registry,
    'stompede_bridge_records_dropped_total',
    'Records from Kafka or Redis (or parts: a header that is not UTF-8) not delivered, by reason.',
    'reason',
    () => {
      const sum = new Map<string, number>();
      for (const bus of [broker.engines.log, broker.engines.fanout])
        for (const [reason, n] of bus?.droppedRecords ?? []) sum.set(reason, (sum.get(reason) ?? 0) + n);
      return sum;
    },
  );
  mapCounter(registry, 'stompede_errors_total', 'ERROR frames sent to clients, by error code.', 'code', () => stats.errors);
  plainCounter(
    registry,
    'stompede_slow_consumer_disconnects_total',
    'Sessions disconnected because too many bytes waited to be sent to them.',
    () => stats.slowConsumerDisconnects,
  );
  mapCounter(
    registry,
    'stompede_limit_hits_total',
    'Frames, connections or sessions refused by a resource limit or a defence, by limit.',
    'limit',
    () => stats.limitHits,
  );

  new StatsHistogram(
    registry,
    'stompede_delivery_latency_seconds',
    'From SEND accepted on one node to delivery on this node, for messages that crossed a bus.',
    stats.deliveryLatency,
  );
  new StatsHistogram(
    registry,
    'stompede_bus_publish_latency_seconds',
    'Time a bus (Redis, Kafka) took to accept a publish.',
    stats.busLatency,
  );
  new StatsHistogram(
    registry,
    'stompede_history_read_latency_seconds',
    'Time a history read took for a replaying SUBSCRIBE.',
    stats.historyLatency,
  );

  return {
    registry,
    contentType: registry.contentType,
    scrape: async () => {
      // An engine that cannot answer (Redis down) leaves the per-queue series out rather than failing the scrape.
      const views = await queueViews(broker).catch(() => []);
      queues = views.length <= MAX_QUEUE_SERIES ? views : [...views].sort((a, b) => b.depth - a.depth).slice(0, MAX_QUEUE_SERIES);
      return Registry.merge([shared, registry]).metrics();
    },
  };
}

const byBroker = new WeakMap<MetricsSource, BrokerMetrics>();

/** The metrics of a broker, created on first use and then the same for its lifetime. */
export function brokerMetrics(broker: MetricsSource): BrokerMetrics {
  let metrics = byBroker.get(broker);
  if (metrics === undefined) {
    metrics = createMetrics(broker);
    byBroker.set(broker, metrics);
  }
  return metrics;
}
