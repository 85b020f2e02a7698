import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_FRAME_LIMITS } from '../frames/index.js';
import type { HistoryRetention } from './ports/history.js';
import { parseRoutes, validateRoutes, type RouteKind } from './ports/routes.js';

/**
 * Every setting of a node, with units in the names. Each key also has a flag (`--ws-port`) and an environment
 * variable (`STOMPEDE_WS_PORT`), both derived from the key, so the three can never drift apart.
 */
export const DEFAULT_CONFIG = {
  /** Interface every listener binds to. */
  host: '127.0.0.1',
  /** STOMP over TCP (0 picks a free port). */
  port: 61613,
  /** STOMP over WebSocket (0 picks a free port; -1 disables). */
  wsPort: 15674,
  wsPath: '/ws',
  /**
   * A separate plain-HTTP listener for `/metrics`, `/healthz` and `/readyz` (0 picks a free port). -1: none, and
   * those endpoints stay on the WebSocket port. When set, they answer only here (404 on the WebSocket port), so
   * an operator can keep metrics internal (a port the firewall keeps in) while the WebSocket port faces the world.
   */
  opsPort: -1,
  /** TLS and WSS listen only when both a certificate and a key are configured. */
  tlsPort: 61614,
  wssPort: 15673,
  tlsCertFile: '',
  tlsKeyFile: '',
  /** Names this node in logs, message ids and the cluster; random when empty. */
  nodeId: '',
  /** JSON users file with scrypt password hashes and permissions, reloaded on SIGHUP and on change. */
  usersFile: '',
  /** Bearer tokens: a passcode that is a JWT is verified against this JWKS file or URL (set at most one). */
  jwksFile: '',
  jwksUrl: '',
  /** Required `iss` and `aud` of tokens; empty: not checked. */
  jwtIssuer: '',
  jwtAudience: '',
  /** Token claim holding the login, and the claim holding the rights (`{"vhosts": {...}}`, as in the users file). */
  jwtUserClaim: 'sub',
  jwtPermissionsClaim: 'stompede',
  /** Delay before the next attempt after a failed login, per remote address and per login; doubles per failure. */
  authFailureDelayMs: 100,
  /** Cap of that delay. */
  authFailureDelayMaxMs: 5_000,
  /** Failures are forgiven after this long without another. */
  authFailureForgetMs: 60_000,
  /** Password checks (scrypt, ~30 ms of CPU each) running at once, node-wide; more wait in a queue. */
  maxConcurrentAuthChecks: 2,
  logLevel: 'info',
  /**
   * Virtual hosts a client may name in CONNECT `host`, besides the default `/` (which the names of this machine and
   * no header at all mean). Empty: every host value means `/`; set: any other name is refused.
   */
  virtualHosts: [] as string[],
  /** What we offer in CONNECTED `heart-beat`: how often we can send, how often we want to hear from the client. */
  heartbeatSendMs: 10_000,
  heartbeatReceiveMs: 10_000,
  /**
   * Floor of negotiated heart-beats, both directions: a client asking for beats more often than this gets this
   * (a client asking for 0 gets none in that direction).
   */
  heartbeatMinMs: 1_000,
  /** A client silent for its negotiated interval times this factor is disconnected (Artemis uses 2). */
  heartbeatGrace: 2,
  /** A connection that has not sent CONNECT by then is closed (RabbitMQ's login_timeout is 10 s). */
  connectTimeoutMs: 10_000,
  maxFrameBytes: DEFAULT_FRAME_LIMITS.maxFrameBytes,
  maxBodyBytes: DEFAULT_FRAME_LIMITS.maxBodyBytes,
  maxHeaders: DEFAULT_FRAME_LIMITS.maxHeaders,
  maxHeaderLineBytes: DEFAULT_FRAME_LIMITS.maxHeaderLineBytes,
  /** Frame limit before a client has authenticated (RabbitMQ uses 64 KiB too). */
  maxFrameBytesUnauthenticated: 64 * 1024,
  /** A session whose unsent bytes pass this is a slow consumer and is disconnected. */
  maxOutboundBytes: 16 * 1024 * 1024,
  /** Queue deliveries pause for a session once this many bytes wait on its socket. */
  outboundHighWaterBytes: 1024 * 1024,
  /** Bounds on what a queue holds while nobody consumes it; a SEND past either gets an ERROR. */
  maxQueueMessages: 100_000,
  maxQueueBytes: 256 * 1024 * 1024,
  /**
   * Open connections per node, counted from accept (before CONNECT). One more gets an ERROR and is closed. Keep it
   * below the process's file-descriptor limit (`ulimit -n`): the node warns at start when it leaves no headroom.
   */
  maxConnections: 65_536,
  /**
   * CONNECTed sessions per login at once, checked at CONNECTED time (only then is the login known). Applies when
   * clients authenticate (a users file or an authenticator); without authentication everyone is `anonymous`.
   */
  maxConnectionsPerUser: 20_000,
  /** Subscriptions one connection may hold at once (NATS's max_subscriptions plays this role). */
  maxSubscriptionsPerConnection: 1000,
  /** Transactions one connection may have open at once (BEGIN without COMMIT or ABORT yet). */
  maxTransactionsPerConnection: 100,
  /** Bytes of SEND, ACK and NACK frames held in all of one connection's open transactions until COMMIT. */
  maxTransactionBytes: 16 * 1024 * 1024,
  /**
   * Unacknowledged messages per client-ack subscription, also without `prefetch-count`: a queue stops handing
   * more to that subscription; a topic subscription past it is disconnected.
   */
  maxUnackedPerSubscription: 1000,
  /** A CONNECTed session with no bytes in either direction for this long is closed (0: never). */
  idleTimeoutMs: 300_000,
  /** Deliveries of one queue message before it moves to `<queue>.dlq` (0 never dead-letters). */
  maxDeliveries: 5,
  /**
   * Distinct destinations one virtual host may hold state for: queues, topics with history in memory, topics
   * with subscribers. A SUBSCRIBE or SEND that would create one more gets an ERROR.
   */
  maxDestinationsPerVhost: 10_000,
  /**
   * Resident memory (RSS, bytes) above which the node refuses every SEND with ERROR "broker low on memory",
   * sampled every 500 ms. 0: 40% of the machine's memory (or of the cgroup limit), as RabbitMQ's
   * vm_memory_high_watermark 0.4.
   */
  memoryHighWatermarkBytes: 0,
  /**
   * On SIGTERM, how long `/readyz` answers 503 while the listeners still serve, so a load balancer stops sending
   * new clients here before they are closed.
   */
  shutdownDrainMs: 5_000,
  /** After ERROR or on shutdown, how long a peer gets to read what we sent before the socket is destroyed. */
  closeTimeoutMs: 2_000,
  /** Names the cluster: the Kafka consumer group and the prefix of every Redis key and channel. */
  clusterName: 'stompede',
  /** Cluster engines (empty: not used): a Redis URL, Kafka brokers `host:port[,host:port]`, a MongoDB URL. */
  redis: '',
  kafka: '',
  mongo: '',
  /**
   * Which engine carries which destinations, first match wins; empty means the defaults (everything local; with
   * Redis, topics and queues through Redis; with Kafka, through Kafka). Flag/env form:
   * `/topic/chat.**=kafka:chat,/topic/**=redis,/queue/**=local`.
   */
  routes: [] as { pattern: string; kind: string; kafkaTopic?: string | undefined }[],
  /**
   * Kafka consumer-group liveness, which bounds failover: a node silent this long loses its partitions to the
   * others, so a crashed node's destinations stand still about this long (plus a few hundred ms to rejoin). The
   * Kafka brokers must allow it: their group.min.session.timeout.ms defaults to 6000, so set it to 2000 or lower
   * there (a node refused at start says so). Lower is quicker failover, but a node whose event loop stalls this
   * long is taken for dead (its partitions move, and come back when it rejoins).
   */
  kafkaSessionTimeoutMs: 2_000,
  /** How often a node tells the Kafka group coordinator it is alive; below a third of kafkaSessionTimeoutMs. */
  kafkaHeartbeatIntervalMs: 300,
  /** Topic history kept for `x-history` / `x-resume-after` / `x-stream-offset` (0: no limit on that axis). */
  historyMaxPerDestination: 1000,
  historyMaxAgeMs: 7 * 24 * 3600 * 1000,
  /** Bytes of history kept per topic (oldest dropped first; a larger message is delivered but not kept); 0: no limit. */
  historyMaxBytesPerDestination: 16 * 1024 * 1024,
  /** Bytes of history this node keeps in memory across all topics, oldest dropped first; 0: no limit. */
  historyMaxBytes: 256 * 1024 * 1024,
  /** Most recent messages per destination also kept in a Redis list for fast `x-history` reads. */
  historyCacheSize: 100,
};

export type BrokerConfig = typeof DEFAULT_CONFIG;

/**
 * File descriptors a node needs besides its client connections: listeners, engine clients, log files, and the
 * sockets of connections being refused. maxConnections should leave this much below the soft RLIMIT_NOFILE.
 */
export const FD_HEADROOM = 64;

/** The history retention the config asks for, as every HistoryStore takes it. */
export function historyRetention(c: Readonly<BrokerConfig>): HistoryRetention {
  return {
    maxPerDestination: c.historyMaxPerDestination,
    maxAgeMs: c.historyMaxAgeMs,
    maxBytesPerDestination: c.historyMaxBytesPerDestination,
    maxBytes: c.historyMaxBytes,
  };
}
export type ConfigInput = { -readonly [K in keyof BrokerConfig]?: BrokerConfig[K] | undefined };

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const KEYS = Object.keys(DEFAULT_CONFIG) as (keyof BrokerConfig)[];

/** `wsPort` → `STOMPEDE_WS_PORT`. */
export function envName(key: string): string {
  return 'STOMPEDE_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** `wsPort` → `ws-port`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** Converts text (from the environment or a flag) to the type of the key's default. */
function fromText(key: keyof BrokerConfig, text: string, problems: string[]): unknown {
  const sample = DEFAULT_CONFIG[key];
  if (typeof sample === 'number') {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) problems.push(`${key}: "${text}" is not a number`);
    return n;
  }
  if (key === 'routes') return parseRoutes(text);
  if (Array.isArray(sample))
    return text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  return text;
}

/** A config file's object, parsed as YAML (`.yaml`, `.yml`) or JSON (`.json`) by its extension. */
function readConfigFile(file: string): object {
  const format = /\.ya?ml$/i.test(file) ? 'YAML' : /\.json$/i.test(file) ? 'JSON' : undefined;
  if (format === undefined) throw new ConfigError([`config file ${file}: name it *.yaml, *.yml or *.json, so its format is known`]);
  let parsed: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    parsed = format === 'YAML' ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`config file ${file}: ${(error as Error).message}`]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`config file ${file}: expected a ${format} ${format === 'YAML' ? 'mapping' : 'object'} of settings`]);
  }
  return parsed;
}

export interface ConfigSources {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Already-typed overrides, as commander or a test passes them. */
  overrides?: ConfigInput;
}

/** Layers defaults, the config file (YAML or JSON), `STOMPEDE_*` variables and overrides; validates once; freezes. */
export function loadConfig(sources: ConfigSources = {}): Readonly<BrokerConfig> {
  const problems: string[] = [];
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG };
  if (sources.file !== undefined && sources.file !== '') {
    const parsed = readConfigFile(sources.file);
    for (const [key, value] of Object.entries(parsed)) {
      if (!(key in DEFAULT_CONFIG)) problems.push(`config file: unknown key "${key}"`);
      else merged[key] = value;
    }
  }
  const env = sources.env ?? {};
  for (const key of KEYS) {
    const text = env[envName(key)];
    if (text !== undefined) merged[key] = fromText(key, text, problems);
  }
  for (const [key, value] of Object.entries(sources.overrides ?? {})) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_CONFIG)) problems.push(`unknown setting "${key}"`);
    else
      merged[key] =
        typeof value === 'string' && typeof DEFAULT_CONFIG[key as keyof BrokerConfig] !== 'string'
          ? fromText(key as keyof BrokerConfig, value, problems)
          : value;
  }
  problems.push(...validate(merged));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(merged) as Readonly<BrokerConfig>;
}

function validate(c: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const key of KEYS) {
    const expected = Array.isArray(DEFAULT_CONFIG[key]) ? 'array' : typeof DEFAULT_CONFIG[key];
    const actual = Array.isArray(c[key]) ? 'array' : typeof c[key];
    if (expected !== actual) problems.push(`${key}: expected a ${expected}, got ${actual}`);
  }
  if (problems.length > 0) return problems;
  const port = (key: string, min: number) => {
    const v = c[key] as number;
    if (!Number.isInteger(v) || v < min || v > 65535) problems.push(`${key}: ${v} is not a port (${min}..65535)`);
  };
  port('port', 0);
  port('wsPort', -1);
  port('tlsPort', 0);
  port('wssPort', -1);
  port('opsPort', -1);
  // Caught here rather than as EADDRINUSE at listen time, so the message names both settings.
  if (typeof c.opsPort === 'number' && c.opsPort > 0) {
    // The TLS ports only count when TLS listens (a certificate is configured).
    const listeners = c.tlsCertFile !== '' ? ['port', 'wsPort', 'tlsPort', 'wssPort'] : ['port', 'wsPort'];
    for (const key of listeners)
      if (c[key] === c.opsPort) problems.push(`opsPort: ${c.opsPort} is also ${key}; give the ops listener a port of its own`);
  }
  const positive = [
    'heartbeatGrace',
    'maxFrameBytes',
    'maxBodyBytes',
    'maxHeaders',
    'maxHeaderLineBytes',
    'maxFrameBytesUnauthenticated',
    'maxOutboundBytes',
    'outboundHighWaterBytes',
    'maxQueueMessages',
    'maxQueueBytes',
    'maxConnections',
    'maxConnectionsPerUser',
    'maxSubscriptionsPerConnection',
    'maxTransactionsPerConnection',
    'maxTransactionBytes',
    'maxUnackedPerSubscription',
    'maxDestinationsPerVhost',
    'kafkaSessionTimeoutMs',
    'kafkaHeartbeatIntervalMs',
  ];
  for (const key of positive) if (!((c[key] as number) > 0)) problems.push(`${key}: must be greater than 0`);
  const sessionMs = c.kafkaSessionTimeoutMs as number;
  if ((c.kafkaHeartbeatIntervalMs as number) >= sessionMs)
    problems.push(`kafkaHeartbeatIntervalMs: must be below kafkaSessionTimeoutMs (${sessionMs}); a third of it at most is advised`);
  if (Array.isArray(c.routes)) {
    const engines = { redis: c.redis !== '', kafka: c.kafka !== '' };
    problems.push(...validateRoutes(c.routes as { pattern: string; kind: RouteKind }[], engines));
  }
  // Checked here, with every other problem, rather than when the node starts: it names Kafka groups and Redis keys.
  if (typeof c.nodeId === 'string' && c.nodeId !== '' && !/^[A-Za-z0-9._-]{1,64}$/.test(c.nodeId)) {
    problems.push(`nodeId: "${c.nodeId}" may use only letters, digits, ".", "_" and "-" (at most 64)`);
  }
  if (typeof c.clusterName === 'string' && !/^[A-Za-z0-9._-]{1,100}$/.test(c.clusterName)) {
    problems.push(`clusterName: "${c.clusterName}" may use only letters, digits, ".", "_" and "-"`);
  }
  if (typeof c.kafka === 'string' && c.kafka !== '') {
    for (const b of c.kafka.split(',')) if (!/^[^:\s]+:\d{1,5}$/.test(b.trim())) problems.push(`kafka: "${b}" is not host:port`);
  }
  for (const key of ['redis', 'mongo'] as const) {
    const v = c[key];
    if (typeof v === 'string' && v !== '' && !/^[a-z+]+:\/\//.test(v))
      problems.push(`${key}: "${v}" is not a URL (e.g. ${key === 'redis' ? 'redis://127.0.0.1:6379' : 'mongodb://127.0.0.1:27017'})`);
  }
  if (c.jwksFile !== '' && c.jwksUrl !== '') problems.push('jwksFile and jwksUrl: set at most one');
  if (typeof c.jwksUrl === 'string' && c.jwksUrl !== '' && !/^https?:\/\//.test(c.jwksUrl))
    problems.push(`jwksUrl: "${c.jwksUrl}" is not an http(s) URL`);
  for (const key of ['jwtUserClaim', 'jwtPermissionsClaim'] as const) if (c[key] === '') problems.push(`${key}: must name a claim`);
  if (!Number.isInteger(c.maxConcurrentAuthChecks) || (c.maxConcurrentAuthChecks as number) < 1)
    problems.push('maxConcurrentAuthChecks: must be an integer of 1 or more');
  if ((c.authFailureDelayMaxMs as number) < (c.authFailureDelayMs as number))
    problems.push('authFailureDelayMaxMs: must not be less than authFailureDelayMs');
  const nonNegative = [
    'authFailureDelayMs',
    'authFailureDelayMaxMs',
    'authFailureForgetMs',
    'historyMaxPerDestination',
    'historyMaxAgeMs',
    'historyCacheSize',
    'historyMaxBytesPerDestination',
    'historyMaxBytes',
    'memoryHighWatermarkBytes',
    'heartbeatSendMs',
    'heartbeatReceiveMs',
    'heartbeatMinMs',
    'shutdownDrainMs',
    'connectTimeoutMs',
    'maxDeliveries',
    'closeTimeoutMs',
    'idleTimeoutMs',
  ];
  for (const key of nonNegative) if (!((c[key] as number) >= 0)) problems.push(`${key}: must be 0 or more`);
  // Counts compare against integers: a fraction would silently round one way or the other.
  const counts = [
    'maxConnections',
    'maxConnectionsPerUser',
    'maxSubscriptionsPerConnection',
    'maxTransactionsPerConnection',
    'maxUnackedPerSubscription',
  ];
  for (const key of counts) if (!Number.isInteger(c[key])) problems.push(`${key}: must be a whole number`);
  if (typeof c.wsPath === 'string' && !c.wsPath.startsWith('/')) problems.push(`wsPath: "${c.wsPath}" must start with /`);
  if ((c.tlsCertFile === '') !== (c.tlsKeyFile === '')) problems.push('tlsCertFile and tlsKeyFile must be given together');
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(c.logLevel as string)) {
    problems.push(`logLevel: "${String(c.logLevel)}" is not one of trace, debug, info, warn, error, fatal, silent`);
  }
  return problems;
}
