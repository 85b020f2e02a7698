import { readFileSync } from 'node:fs';
import { backoffMs } from '../broker/ports/bus.js';
import type { Logger } from '../broker/ports/logger.js';
import { maskSecrets } from '../broker/ports/secrets.js';

type Listener = (message: Buffer, channel: Buffer) => void;

/** The part of a node-redis client we use, typed narrowly at the boundary. */
export interface RedisClient {
  readonly isReady: boolean;
  /** How this client reaches Redis; `cluster` clients publish and subscribe with sharded pub/sub. */
  readonly mode?: RedisMode;
  connect(): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready' | 'end' | 'reconnecting', listener: () => void): unknown;
  duplicate(): RedisClient;
  publish(channel: string, message: Buffer): Promise<number>;
  subscribe(channel: string, listener: Listener, bufferMode: true): Promise<void>;
  unsubscribe(channel: string, listener?: Listener, bufferMode?: true): Promise<void>;
  pSubscribe(pattern: string, listener: Listener, bufferMode: true): Promise<void>;
  pUnsubscribe(pattern: string, listener?: Listener, bufferMode?: true): Promise<void>;
  /** Sharded pub/sub (Redis 7+): only on cluster clients. */
  sPublish?(channel: string, message: Buffer): Promise<number>;
  sSubscribe?(channel: string, listener: Listener, bufferMode: true): Promise<void>;
  sUnsubscribe?(channel: string, listener?: Listener, bufferMode?: true): Promise<void>;
  sendCommand(args: (string | Buffer)[], options?: object): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
}

/** Redis answers `$` bulk strings as Buffers with this mapping, so binary entries survive. */
export const BUFFERS = { typeMapping: { 36: Buffer } };

export const REDIS_MODES = ['standalone', 'sentinel', 'cluster'] as const;
export type RedisMode = (typeof REDIS_MODES)[number];

/**
 * Where Redis is and how to log in: what the composition root derives from the `redis*` settings. `url` is one
 * `redis://` / `rediss://` URL, or (sentinel, cluster) a comma-separated list of them: the sentinels, or the seed
 * nodes of the cluster. `rediss://` means TLS, verified against `tlsCaFile` when given (else the system CAs).
 * `username` / `password`, when given, win over the ones in the URLs.
 */
export interface RedisTarget {
  readonly url: string;
  readonly mode?: RedisMode | undefined;
  /** The master's name as the sentinels know it (sentinel mode). */
  readonly sentinelMaster?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly tlsCaFile?: string | undefined;
}

/** A Redis address as the engines take it: a plain URL (a single server) or a full target. */
export type RedisEndpoint = string | RedisTarget;

export function targetOf(endpoint: RedisEndpoint): RedisTarget {
  return typeof endpoint === 'string' ? { url: endpoint } : endpoint;
}

/** The URLs of a target's list, parsed; a bad one is a TypeError naming it (masked). */
export function redisNodes(url: string): { host: string; port: number; tls: boolean; username: string; password: string }[] {
  return url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((entry) => {
      let u: URL;
      try {
        u = new URL(entry);
      } catch {
        throw new TypeError(
          `"${maskSecrets(entry)}" is not a Redis URL (redis://host:port or rediss://host:port; percent-encode a password's / @ : ? #, or set redisPassword)`,
        );
      }
      if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
        throw new TypeError(`"${maskSecrets(entry)}" is not a Redis URL (redis://host:port or rediss://host:port)`);
      }
      return {
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port === '' ? 6379 : Number(u.port),
        tls: u.protocol === 'rediss:',
        username: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
      };
    });
}

/** The node-redis socket and credential options of a target (TLS from `rediss://`, the CA file read once). */
function clientOptions(target: RedisTarget, connectTimeoutMs: number): Record<string, unknown> {
  const [first] = redisNodes(target.url);
  if (first === undefined) throw new TypeError('no Redis URL given');
  const username = target.username !== undefined && target.username !== '' ? target.username : first.username;
  const password = target.password !== undefined && target.password !== '' ? target.password : first.password;
  const tls = first.tls || (target.tlsCaFile !== undefined && target.tlsCaFile !== '');
  const socket: Record<string, unknown> = {
    connectTimeout: connectTimeoutMs,
    reconnectStrategy: (retries: number) => backoffMs(Math.min(retries, 10)),
  };
  if (tls) {
    socket.tls = true;
    if (target.tlsCaFile !== undefined && target.tlsCaFile !== '') socket.ca = readFileSync(target.tlsCaFile);
  }
  return {
    ...(username !== '' ? { username } : {}),
    ...(password !== '' ? { password } : {}),
    disableOfflineQueue: true,
    socket,
  };
}

/**
 * The first key of a command, which a cluster routes by: the key after EVAL's script and key count (none: any
 * node), the second word of `MEMORY USAGE key`, else the first argument.
 */
export function firstKeyOf(args: readonly (string | Buffer)[]): string | Buffer | undefined {
  const name = String(args[0] ?? '').toUpperCase();
  if (name === 'EVAL' || name === 'EVALSHA' || name === 'FCALL') return Number(String(args[2])) > 0 ? args[3] : undefined;
  if (name === 'MEMORY' || name === 'OBJECT' || name === 'XINFO') return args[2];
  return args[1];
}

/** The cluster client of node-redis, typed as we use it. */
interface NodeRedisCluster {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  on(event: string, listener: (...args: never[]) => void): unknown;
  duplicate(): NodeRedisCluster;
  publish(channel: string, message: Buffer): Promise<number>;
  sPublish(channel: string, message: Buffer): Promise<number>;
  subscribe(channel: string, listener: Listener, bufferMode: true): Promise<void>;
  unsubscribe(channel: string, listener?: Listener, bufferMode?: true): Promise<void>;
  pSubscribe(pattern: string, listener: Listener, bufferMode: true): Promise<void>;
  pUnsubscribe(pattern: string, listener?: Listener, bufferMode?: true): Promise<void>;
  sSubscribe(channel: string, listener: Listener, bufferMode: true): Promise<void>;
  sUnsubscribe(channel: string, listener?: Listener, bufferMode?: true): Promise<void>;
  sendCommand(firstKey: string | Buffer | undefined, isReadonly: boolean, args: (string | Buffer)[], options?: object): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
}

/** A cluster behind the one-server interface: commands go to the master of their first key's slot. */
function asClient(cluster: NodeRedisCluster): RedisClient {
  let ready = false;
  cluster.on('connect', () => (ready = true));
  cluster.on('disconnect', () => (ready = false));
  return {
    mode: 'cluster',
    get isReady() {
      return ready && cluster.isOpen;
    },
    connect: async () => {
      await cluster.connect();
      ready = true;
    },
    on: (event: string, listener: (...args: never[]) => void) =>
      cluster.on(
        event === 'ready' ? 'connect' : event === 'end' ? 'disconnect' : event === 'reconnecting' ? 'node-reconnecting' : event,
        listener,
      ),
    duplicate: () => asClient(cluster.duplicate()),
    publish: (channel, message) => cluster.publish(channel, message),
    sPublish: (channel, message) => cluster.sPublish(channel, message),
    subscribe: (channel, listener, bufferMode) => cluster.subscribe(channel, listener, bufferMode),
    unsubscribe: (channel, listener, bufferMode) => cluster.unsubscribe(channel, listener, bufferMode),
    pSubscribe: (pattern, listener, bufferMode) => cluster.pSubscribe(pattern, listener, bufferMode),
    pUnsubscribe: (pattern, listener, bufferMode) => cluster.pUnsubscribe(pattern, listener, bufferMode),
    sSubscribe: (channel, listener, bufferMode) => cluster.sSubscribe(channel, listener, bufferMode),
    sUnsubscribe: (channel, listener, bufferMode) => cluster.sUnsubscribe(channel, listener, bufferMode),
    sendCommand: (args, options) => cluster.sendCommand(firstKeyOf(args), false, args, options),
    close: () => cluster.close(),
    destroy: () => cluster.destroy(),
  };
}

/** The sentinel-backed client of node-redis, typed as we use it (it follows failovers of the master). */
interface NodeRedisSentinel extends Omit<RedisClient, 'sendCommand' | 'duplicate' | 'mode' | 'destroy'> {
  duplicate(): NodeRedisSentinel;
  sendCommand(isReadonly: boolean, args: (string | Buffer)[], options?: object): Promise<unknown>;
  destroy(): Promise<unknown>;
}

function sentinelAsClient(sentinel: NodeRedisSentinel): RedisClient {
  return {
    mode: 'sentinel',
    get isReady() {
      return sentinel.isReady;
    },
    connect: () => sentinel.connect(),
    on: (event: never, listener: never) => sentinel.on(event, listener),
    duplicate: () => sentinelAsClient(sentinel.duplicate()),
    publish: (channel: string, message: Buffer) => sentinel.publish(channel, message),
    subscribe: sentinel.subscribe.bind(sentinel),
    unsubscribe: sentinel.unsubscribe.bind(sentinel),
    pSubscribe: sentinel.pSubscribe.bind(sentinel),
    pUnsubscribe: sentinel.pUnsubscribe.bind(sentinel),
    sendCommand: (args: (string | Buffer)[], options?: object) => sentinel.sendCommand(false, args, options),
    close: () => sentinel.close(),
    destroy: () => void sentinel.destroy().catch(() => {}),
  };
}

/** Builds (does not connect) the client a target asks for. */
async function createFor(target: RedisTarget, connectTimeoutMs: number): Promise<RedisClient> {
  const redis = await import('redis');
  const options = clientOptions(target, connectTimeoutMs);
  const mode = target.mode ?? 'standalone';
  switch (mode) {
    case 'standalone': {
      // node-redis reads the rest of the URL itself (a database number, say); our options win over its parts.
      return redis.createClient({ url: target.url.trim(), ...options });
    }
    case 'cluster': {
      const rootNodes = redisNodes(target.url).map((n) => ({ socket: { host: n.host, port: n.port } }));
      // Commands to the slots of a master that is down fail at once (no offline queue), the others go on.
      const cluster = redis.createCluster({ rootNodes, defaults: options, useReplicas: false });
      return asClient(cluster as unknown as NodeRedisCluster);
    }
    case 'sentinel': {
      const sentinelRootNodes = redisNodes(target.url).map((n) => ({ host: n.host, port: n.port }));
      const sentinel = redis.createSentinel({
        name: target.sentinelMaster ?? 'mymaster',
        sentinelRootNodes,
        nodeClientOptions: options,
        sentinelClientOptions: options,
      });
      return sentinelAsClient(sentinel as unknown as NodeRedisSentinel);
    }
    default: {
      const never: never = mode;
      throw new TypeError(`unknown Redis mode ${String(never)}`);
    }
  }
}

/**
 * Connects with exponential backoff on every drop, rejecting commands while disconnected (no offline queue: a
 * publish during an outage must fail at once so the caller can fall back, not pile up in memory).
 */
export async function connectRedis(endpoint: RedisEndpoint, logger: Logger, role: string, connectTimeoutMs = 5_000): Promise<RedisClient> {
  const target = targetOf(endpoint);
  const where = maskSecrets(target.url);
  const client = await createFor(target, connectTimeoutMs);
  let warned = false;
  client.on('error', (error) => {
    // One line per outage, not one per reconnect attempt.
    if (!warned)
      logger.warn(
        { err: maskSecrets(error instanceof Error ? error.message : String(error)), role },
        'redis connection lost; reconnecting',
      );
    warned = true;
  });
  client.on('ready', () => {
    if (warned) logger.info({ role }, 'redis connection restored');
    warned = false;
  });
  const mode = target.mode ?? 'standalone';
  const setting = mode === 'standalone' ? '--redis' : `--redis and --redis-mode ${mode}`;
  const what = mode === 'standalone' ? 'Redis' : `Redis (${mode})`;
  await withTimeout(client.connect(), connectTimeoutMs, () => {
    client.destroy();
    return new Error(`cannot reach ${what} at ${where} within ${connectTimeoutMs} ms: start Redis there or fix ${setting}`);
  }).catch((error: unknown) => {
    if (error instanceof Error && error.message.startsWith('cannot reach Redis')) throw error;
    client.destroy();
    throw new Error(
      `cannot connect to ${what} at ${where} (${setting}): ${maskSecrets(error instanceof Error ? error.message : String(error))}`,
      {
        cause: error,
      },
    );
  });
  return client;
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
