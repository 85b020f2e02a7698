import { backoffMs } from '../broker/ports/bus.js';
import type { Logger } from '../broker/ports/logger.js';

/** The part of a node-redis client we use, typed narrowly at the boundary. */
export interface RedisClient {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready' | 'end' | 'reconnecting', listener: () => void): unknown;
  duplicate(): RedisClient;
  publish(channel: string, message: Buffer): Promise<number>;
  subscribe(channel: string, listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<void>;
  unsubscribe(channel: string, listener?: (message: Buffer, channel: Buffer) => void, bufferMode?: true): Promise<void>;
  pSubscribe(pattern: string, listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<void>;
  pUnsubscribe(pattern: string, listener?: (message: Buffer, channel: Buffer) => void, bufferMode?: true): Promise<void>;
  sendCommand(args: (string | Buffer)[], options?: object): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
}

/** Redis answers `$` bulk strings as Buffers with this mapping, so binary entries survive. */
export const BUFFERS = { typeMapping: { 36: Buffer } };

/**
 * Connects with exponential backoff on every drop, rejecting commands while disconnected (no offline queue: a
 * publish during an outage must fail at once so the caller can fall back, not pile up in memory).
 */
export async function connectRedis(url: string, logger: Logger, role: string, connectTimeoutMs = 5_000): Promise<RedisClient> {
  const { createClient } = await import('redis');
  let warned = false;
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: connectTimeoutMs, reconnectStrategy: (retries: number) => backoffMs(Math.min(retries, 10)) },
  }) as unknown as RedisClient;
  client.on('error', (error) => {
    // One line per outage, not one per reconnect attempt.
    if (!warned) logger.warn({ err: error.message, role }, 'redis connection lost; reconnecting');
    warned = true;
  });
  client.on('ready', () => {
    if (warned) logger.info({ role }, 'redis connection restored');
    warned = false;
  });
  await withTimeout(client.connect(), connectTimeoutMs, () => {
    client.destroy();
    return new Error(`cannot reach Redis at ${url} within ${connectTimeoutMs} ms: start Redis there or fix --redis`);
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
