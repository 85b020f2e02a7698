/**
 * The composition root: the one module in broker/ that wires concrete pieces together — config, authenticator,
 * the cluster engines of bridge/, the Broker, and the listeners. The Broker opens no socket and the transports know
 * no broker (only broker/connection.ts); everything else in broker/ knows the engines only through the ports in
 * broker/ports/, so this is also the one module of broker/ allowed to import bridge/. Nothing imports this module
 * but bin/, broker/index.ts, the specs' support code and programs that embed a node.
 */
import { randomBytes } from 'node:crypto';
import { createEngines, type EngineSettings } from '../bridge/engines.js';
import { allowAll, UsersFileAuthenticator, type Authenticator } from './auth.js';
import { Broker } from './broker.js';
import { historyRetention, loadConfig, type BrokerConfig, type ConfigInput } from './config.js';
import { brokerHttpHandler, composeHttpHandlers, opsHttpHandler } from './http.js';
import { managementHttpHandler } from './management.js';
import type { ClusterBus } from './ports/bus.js';
import type { HistoryStore } from './ports/history.js';
import { silentLogger, type Logger } from './ports/logger.js';
import type { SharedQueues } from './ports/queues.js';
import { effectiveRoutes, RouteTable, type Route } from './ports/routes.js';
import { EitherAuthenticator, TokenAuthenticator } from './tokens.js';
import { listenTransports, type HttpHandler, type Listeners, type ListenTarget } from './transports/listen.js';

export type { ListenAddresses, Listeners, HttpHandler } from './transports/listen.js';

export interface BrokerOptions {
  /** Settings on top of the defaults; a loaded config (from `loadConfig`) is used as it is. */
  config?: ConfigInput;
  authenticator?: Authenticator;
  logger?: Logger;
  /** Engine of `redis` routes: cross-node pub/sub (a RedisBus, or a shared MemoryBus in tests). */
  fanout?: ClusterBus;
  /** Engine of `kafka` routes: the durable ordered log. */
  log?: ClusterBus;
  /** Queues shared across nodes, for queue destinations on redis and kafka routes. */
  queues?: SharedQueues;
  /** Topic history; in memory by default (MongoDB when the config names one). */
  history?: HistoryStore;
  /** Overrides the routes of the config, for the Broker and the engines alike. */
  routes?: readonly Route[];
}

/** A node id for a node configured without one: new at every start (the only place one is made up). */
function randomNodeId(): string {
  return randomBytes(4).toString('hex');
}

/**
 * The config with its node id chosen: as configured, else a random one. The CLI calls it before making its logger,
 * so every log line carries the node id even when it was generated; `createBroker` keeps an id already chosen.
 */
export function withNodeId(config: Readonly<BrokerConfig>): Readonly<BrokerConfig> {
  return config.nodeId === '' ? Object.freeze({ ...config, nodeId: randomNodeId() }) : config;
}

/**
 * The node's one route table, handed to the Broker and to the engines: `routes` given in the options, else the
 * config's, else the defaults for the engines there are (given ones, or ones the config names).
 */
export function routeTable(config: Readonly<BrokerConfig>, options: Pick<BrokerOptions, 'routes' | 'fanout' | 'log'> = {}): RouteTable {
  const engines = { redis: options.fanout !== undefined || config.redis !== '', kafka: options.log !== undefined || config.kafka !== '' };
  // Given routes replace the configured ones; `/kafka/**` and `/redis/**` come first either way.
  return new RouteTable(effectiveRoutes(options.routes ?? config.routes, engines));
}

/** What the engines take from the config, in their own terms (bridge/ never reads the broker's config). */
export function engineSettings(config: Readonly<BrokerConfig>, routes: RouteTable): EngineSettings {
  return {
    clusterName: config.clusterName,
    nodeId: config.nodeId,
    redis: config.redis,
    kafka: config.kafka,
    mongo: config.mongo,
    retention: historyRetention(config),
    historyCacheSize: config.historyCacheSize,
    routes,
    kafkaSessionTimeoutMs: config.kafkaSessionTimeoutMs,
    kafkaHeartbeatIntervalMs: config.kafkaHeartbeatIntervalMs,
    redisTarget: {
      mode: config.redisMode,
      sentinelMaster: config.redisSentinelMaster,
      username: config.redisUsername,
      password: config.redisPassword,
      tlsCaFile: config.redisTlsCaFile,
    },
    kafkaSecurity: {
      ssl: config.kafkaSsl,
      sslCaFile: config.kafkaSslCaFile,
      sslCertFile: config.kafkaSslCertFile,
      sslKeyFile: config.kafkaSslKeyFile,
      saslMechanism: config.kafkaSaslMechanism,
      saslUsername: config.kafkaSaslUsername,
      saslPassword: config.kafkaSaslPassword,
    },
    kafkaClientId: config.kafkaClientId,
    kafkaAutoCreateTopics: config.kafkaAutoCreateTopics,
    kafkaTopicPartitions: config.kafkaTopicPartitions,
    kafkaReplicationFactor: config.kafkaReplicationFactor,
    kafkaTopicDiscoveryMs: config.kafkaTopicDiscoveryMs,
  };
}

/**
 * The authenticator the config asks for: the users file (watched for changes), bearer tokens, both (a passcode
 * that looks like a JWT goes to the tokens), or nobody checked at all.
 */
async function configuredAuthenticator(config: Readonly<BrokerConfig>, logger: Logger): Promise<Authenticator> {
  const tokens = config.jwksFile !== '' || config.jwksUrl !== '' ? await TokenAuthenticator.open(config) : undefined;
  let users: UsersFileAuthenticator | undefined;
  if (config.usersFile !== '') {
    users = await UsersFileAuthenticator.open(config.usersFile, logger);
    users.watch();
  }
  if (tokens === undefined && users === undefined) return allowAll;
  if (tokens === undefined) return users as UsersFileAuthenticator;
  return new EitherAuthenticator(users, tokens);
}

/**
 * Builds a broker from options: loads the config, chooses the node id when none is configured, builds the route
 * table once, the engines the config names (client libraries loaded only when configured), and the users file or
 * token keys when configured.
 */
export async function createBroker(options: BrokerOptions = {}): Promise<Broker> {
  const config = withNodeId(loadConfig({ overrides: options.config ?? {} }));
  const { config: _c, authenticator: _a, logger = silentLogger, routes: _r, ...given } = options;
  const authenticator = options.authenticator ?? (await configuredAuthenticator(config, logger));
  const routes = routeTable(config, options);
  const engines = await createEngines(engineSettings(config, routes), logger, given);
  return new Broker(config, authenticator, logger, { ...engines, ...given, routes });
}

export interface ListenOptions {
  /** Plain-HTTP handlers on the WebSocket port, tried in order after /healthz, /readyz and /metrics (e.g. a web page). */
  readonly httpHandlers?: readonly HttpHandler[];
}

/**
 * Opens the ops listener (when `opsPort` is set; `/readyz` answers 503 `starting` meanwhile), starts the broker's
 * engines, then opens the TCP, WebSocket and TLS listeners its config asks for, each handing connections to
 * `broker.handle`. `broker.close()` stops them all: it closes the listeners first.
 */
export async function listen(broker: Broker, options: ListenOptions = {}): Promise<Listeners> {
  const target: ListenTarget = {
    config: broker.config,
    limitHit: (limit) => broker.stats.limitHit(limit),
    accept: (connection) => broker.handle(connection),
  };
  const listeners = await listenTransports(target, {
    web: brokerHttpHandler(broker, options.httpHandlers ?? []),
    // The management API only ever on the ops listener: operators' port, never the one clients reach.
    ops: broker.config.opsPort >= 0 ? composeHttpHandlers([opsHttpHandler(broker), managementHttpHandler(broker)]) : undefined,
    beforeClients: () => broker.start(),
  });
  broker.attach(listeners);
  return listeners;
}
