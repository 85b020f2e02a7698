import {
  BridgeError,
  type BusCapabilities,
  type BusEnvelope,
  type ClusterBus,
  type Deliver,
  type LinkListener,
  type PublishInput,
} from '../broker/ports/bus.js';
import { decodeEnvelope, encodeEnvelope } from './envelope-codec.js';
import { connectRedis, type RedisClient, type RedisEndpoint } from './redis-client.js';
import { silentLogger, type Logger } from '../broker/ports/logger.js';

export interface RedisBusOptions {
  /** A URL, or a target naming a Sentinel or Cluster deployment and its credentials. */
  readonly url: RedisEndpoint;
  readonly clusterName: string;
  readonly nodeId: string;
  readonly logger?: Logger;
  readonly connectTimeoutMs?: number;
}

/**
 * The next position of a destination: KEYS[1] its counter; ARGV[1] the floor (the caller's next position by its
 * history store, which survives a Redis restart that the counter may not); ARGV[2] the counter's idle expiry (ms).
 */
const SEQUENCE = `
local n = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if n < floor then
  n = floor
  redis.call('SET', KEYS[1], n)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n`;

/** A counter idle this long is forgotten; the next message's floor (from the history store) takes it up again. */
const SEQUENCE_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** `*` and `#` are STOMP topic wildcards; everything else in a Redis glob must be taken literally. */
function escapeGlob(text: string): string {
  return text.replace(/[\\*?[\]]/g, '\\$&');
}

/**
 * Cross-node pub/sub through Redis channels: one channel per destination, `<cluster>:t:<vhost>:<destination>`.
 * A node subscribes only to channels it has local subscribers for (reference counted), and a wildcard STOMP
 * subscription becomes a pattern subscription whose glob is a superset; the broker filters exactly.
 *
 * A node delivers its own messages when Redis echoes them, so every node sees one order per destination. While
 * Redis is unreachable, publish delivers on this node only and resolves: the redis route is fast, not durable.
 *
 * On a Redis Cluster, channels are sharded (`SPUBLISH` / `SSUBSCRIBE`, Redis 7+): each destination's channel lives
 * on the master of its slot, so fan-out spreads over the masters instead of every message crossing every one.
 * Sharded pub/sub has no pattern variant, so a wildcard subscription on a redis route is refused there
 * (`ERR_REDIS_CLUSTER_WILDCARD`): route wildcard destinations to `local` or `kafka`, or leave `redisMode`
 * standalone or sentinel.
 */
export class RedisBus implements ClusterBus {
  readonly name = 'redis';
  readonly capabilities: BusCapabilities = { ordered: true, durable: false, crossNode: true };
  #options: RedisBusOptions;
  #log: Logger;
  #pub: RedisClient | undefined;
  #sub: RedisClient | undefined;
  #deliver: Deliver | undefined;
  #interest = new Map<string, { count: number; ready: Promise<void> }>();
  #seq = 0;
  /** Unique across restarts of the node: other nodes drop ids they saw recently as duplicates. */
  #idPrefix: string;
  #link: LinkListener | undefined;
  #linkDown = false;
  /** Sharded pub/sub: the connection is a Redis Cluster. */
  #sharded = false;
  #listener = (message: Buffer): void => {
    const envelope = decodeEnvelope(message);
    if (envelope !== undefined) this.#deliver?.(envelope);
  };

  constructor(options: RedisBusOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#idPrefix = `${options.nodeId}.${Date.now().toString(36)}-r`;
  }

  get healthy(): boolean {
    return this.#pub?.isReady === true && this.#sub?.isReady === true;
  }

  async start(deliver: Deliver): Promise<void> {
    this.#deliver = deliver;
    this.#pub = await connectRedis(this.#options.url, this.#log, 'publish', this.#options.connectTimeoutMs);
    const sub = await connectRedis(this.#options.url, this.#log, 'subscribe', this.#options.connectTimeoutMs);
    this.#sub = sub;
    this.#sharded = sub.mode === 'cluster';
    // Messages published while this connection was down (or before node-redis resubscribed) never reach this
    // node: say so, and say when every channel is confirmed again, so that subscribers can catch up from history.
    sub.on('error', () => this.#down());
    sub.on('end', () => this.#down());
    sub.on('ready', () => {
      if (!this.#linkDown) return;
      void this.#resubscribe().then(() => {
        this.#linkDown = false;
        this.#link?.up();
      });
    });
  }

  setLinkListener(listener: LinkListener): void {
    this.#link = listener;
  }

  #down(): void {
    if (this.#linkDown) return;
    this.#linkDown = true;
    this.#link?.down();
  }

  /** Subscribes every watched channel again and waits for Redis to confirm each (same listener: no duplicates). */
  async #resubscribe(): Promise<void> {
    const sub = this.#sub;
    if (sub === undefined) return;
    await Promise.allSettled(
      [...this.#interest.keys()].map((key) => {
        const target = key.slice(2);
        return key.startsWith('p:') ? sub.pSubscribe(target, this.#listener, true) : this.#subscribe(sub, target);
      }),
    );
  }

  #channel(vhost: string, destination: string): string {
    return `${this.#options.clusterName}:t:${vhost}:${destination}`;
  }

  async publish(input: PublishInput): Promise<void> {
    const envelope: BusEnvelope = { ...input, id: input.id ?? this.#idPrefix + (++this.#seq).toString(36) };
    const pub = this.#pub;
    if (pub === undefined) throw new BridgeError('ERR_BUS_NOT_STARTED', 'redis bus not started', false);
    try {
      const channel = this.#channel(envelope.vhost, envelope.destination);
      await (this.#sharded && pub.sPublish !== undefined
        ? pub.sPublish(channel, encodeEnvelope(envelope))
        : pub.publish(channel, encodeEnvelope(envelope)));
    } catch (error) {
      // A relayed envelope (its id given by the caller: a Kafka record fanned out by its partition owner) is durable
      // elsewhere and its relay retries until Redis takes it; delivering it here only would make the other nodes
      // miss it for good (the relay would count it as done and commit its offset). So it fails, retriably.
      if (input.id !== undefined) {
        throw new BridgeError('ERR_REDIS', `redis publish failed: ${error instanceof Error ? error.message : String(error)}`, true, {
          cause: error,
        });
      }
      // Redis is down: this node's own subscribers still get the message; other nodes cannot.
      this.#log.debug({ err: error }, 'redis publish failed; delivered locally only');
      this.#deliver?.(envelope);
    }
  }

  /** `c:<channel>` for a destination, `p:<glob>` for a wildcard one (a superset; the broker filters exactly). */
  #subscriptionKey(vhost: string, destination: string): { key: string; wildcard: boolean } {
    const wildcard = destination.includes('*') || destination.includes('#');
    const key = wildcard
      ? `p:${escapeGlob(this.#channel(vhost, ''))}${escapeGlob(destination).replace(/\\\*|\.?#\.?/g, '*')}`
      : `c:${this.#channel(vhost, destination)}`;
    return { key, wildcard };
  }

  /** Resolves once Redis has confirmed the subscription, so a SUBSCRIBE RECEIPT means "live cluster-wide". */
  watch(vhost: string, destination: string): Promise<void> {
    const { key, wildcard } = this.#subscriptionKey(vhost, destination);
    if (wildcard && this.#sharded) {
      return Promise.reject(
        new BridgeError(
          'ERR_REDIS_CLUSTER_WILDCARD',
          `wildcard subscriptions cannot use a Redis Cluster (sharded pub/sub has no patterns): route ${destination} to local or kafka, or set redisMode standalone or sentinel`,
          false,
        ),
      );
    }
    const existing = this.#interest.get(key);
    if (existing !== undefined) {
      existing.count++;
      return existing.ready;
    }
    const sub = this.#sub;
    if (sub === undefined) return Promise.reject(new BridgeError('ERR_BUS_NOT_STARTED', 'redis bus not started', false));
    const target = key.slice(2);
    const ready = (wildcard ? sub.pSubscribe(target, this.#listener, true) : this.#subscribe(sub, target)).catch((error: unknown) => {
      // Redis down: node-redis resubscribes on reconnect; the subscriber still gets this node's messages meanwhile.
      this.#log.debug({ err: error, target }, 'redis subscribe deferred until reconnect');
    });
    this.#interest.set(key, { count: 1, ready });
    return ready;
  }

  unwatch(vhost: string, destination: string): void {
    const { key, wildcard } = this.#subscriptionKey(vhost, destination);
    const entry = this.#interest.get(key);
    if (entry === undefined) return;
    if (--entry.count > 0) return;
    this.#interest.delete(key);
    const target = key.slice(2);
    const sub = this.#sub;
    if (sub === undefined) return;
    void (wildcard ? sub.pUnsubscribe(target, this.#listener, true) : this.#unsubscribe(sub, target)).catch(() => {});
  }

  /** A destination's channel: sharded on a Redis Cluster, classic otherwise. */
  #subscribe(sub: RedisClient, channel: string): Promise<void> {
    return this.#sharded && sub.sSubscribe !== undefined
      ? sub.sSubscribe(channel, this.#listener, true)
      : sub.subscribe(channel, this.#listener, true);
  }

  #unsubscribe(sub: RedisClient, channel: string): Promise<void> {
    return this.#sharded && sub.sUnsubscribe !== undefined
      ? sub.sUnsubscribe(channel, this.#listener, true)
      : sub.unsubscribe(channel, this.#listener, true);
  }

  /**
   * Numbers a destination's messages cluster-wide, for history: one atomic script on the counter
   * `<cluster>:seq:<vhost>:<destination>` (INCR, raised to `floor` when Redis lost it, expiry refreshed).
   */
  async sequence(vhost: string, destination: string, floor: number): Promise<number> {
    const pub = this.#pub;
    if (pub === undefined) throw new BridgeError('ERR_BUS_NOT_STARTED', 'redis bus not started', false);
    const key = `${this.#options.clusterName}:seq:${vhost}:${destination}`;
    const reply = await pub.sendCommand(['EVAL', SEQUENCE, '1', key, String(floor), String(SEQUENCE_TTL_MS)]);
    if (typeof reply !== 'number') throw new BridgeError('ERR_REDIS', `redis sequence answered ${typeof reply}`, true);
    return reply;
  }

  /** The publishing connection, shared with the queue and history-cache code of the same node. */
  get client(): RedisClient | undefined {
    return this.#pub;
  }

  async close(): Promise<void> {
    this.#deliver = undefined;
    this.#interest.clear();
    await Promise.allSettled([this.#pub?.close(), this.#sub?.close()]);
  }
}
