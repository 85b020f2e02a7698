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
import { decodeNative, encodeNative, type NativeFormat, type NativeMessage, type RedisDropReason } from './redis-formats.js';
import { silentLogger, type Logger } from '../broker/ports/logger.js';

/** How a message sits on a Redis channel: Stompede's envelope, or one of the native formats (bridge/redis-formats.ts). */
export type RedisFormat = 'stompede' | NativeFormat;

/** A channel of the team's own (a route's channel template filled in), and the format of its messages. */
export interface NativeChannel {
  readonly channel: string;
  readonly format: RedisFormat;
}

/**
 * Which destinations live on named channels instead of the cluster's private ones, and back: the composition root
 * builds it from the route table (bridge/redis-channels.ts). Destinations it does not name use private channels.
 */
export interface RedisChannels {
  /** The named channel a destination of a vhost is published on, or undefined: the private channel. */
  outward(vhost: string, destination: string): NativeChannel | undefined;
  /** The channel glob a wildcard subscription watches (a superset; the broker filters exactly), or undefined. */
  pattern(vhost: string, destination: string): string | undefined;
  /**
   * Where a message on a named channel goes (from the mapping, never from the payload): every destination that
   * routes to this channel (`/redis/news.sports` and a mapped `/topic/news.sports` share `news.sports`), the
   * message's own id going to the first; empty when none does.
   */
  inward(channel: string): readonly InwardTarget[];
}

export interface InwardTarget {
  readonly vhost: string;
  readonly destination: string;
  readonly format: RedisFormat;
}

export interface RedisBusOptions {
  /** A URL, or a target naming a Sentinel or Cluster deployment and its credentials. */
  readonly url: RedisEndpoint;
  readonly clusterName: string;
  readonly nodeId: string;
  readonly logger?: Logger;
  readonly connectTimeoutMs?: number;
  /** Named channels of the routes that have a channel template; without it every destination is private. */
  readonly channels?: RedisChannels | undefined;
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

type Listener = (message: Buffer, channel: Buffer) => void;

/** One Redis subscription of this node: how many watches share it, when Redis confirmed it, who hears it. */
interface Interest {
  count: number;
  ready: Promise<void>;
  readonly listener: Listener;
}

/** Inward drops of one reason are logged at most this often (each one is counted). */
const DROP_LOG_INTERVAL_MS = 60_000;

/** `*` and `#` are STOMP topic wildcards; everything else in a Redis glob must be taken literally. */
export function escapeGlob(text: string): string {
  return text.replace(/[\\*?[\]]/g, '\\$&');
}

/**
 * Cross-node pub/sub through Redis channels: one channel per destination, `<cluster>:t:<vhost>:<destination>`.
 * A node subscribes only to channels it has local subscribers for (reference counted), and a wildcard STOMP
 * subscription becomes a pattern subscription whose glob is a superset; the broker filters exactly.
 *
 * Destinations of routes with a channel template (`/topic/news.*=redis:news.{1};format=raw`) use that channel
 * instead, exactly as named, in the route's format, so other programs can PUBLISH and SUBSCRIBE there. Messages
 * arriving on such a channel are delivered once per node even when an exact and a pattern subscription (or two
 * patterns) of this node both match it: Redis sends the copies of one PUBLISH to a connection one after another,
 * so a copy that follows another of the same channel and payload through a subscription the first did not come
 * through is the same PUBLISH (a second PUBLISH of the same bytes comes through the first subscription again).
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
  #interest = new Map<string, Interest>();
  #seq = 0;
  /** Unique across restarts of the node: other nodes drop ids they saw recently as duplicates. */
  #idPrefix: string;
  #link: LinkListener | undefined;
  #linkDown = false;
  /** Sharded pub/sub: the connection is a Redis Cluster. */
  #sharded = false;
  #channels: RedisChannels | undefined;
  #dropped = new Map<RedisDropReason, number>();
  /** When each drop reason was last logged, and how many went unlogged since. */
  #dropLog = new Map<RedisDropReason, { at: number; since: number }>();
  /** The last message from a named channel: its channel, payload and the subscriptions its copies came through. */
  #last: { channel: string; payload: Buffer; via: string[] } | undefined;
  #listener: Listener = (message: Buffer): void => {
    const envelope = decodeEnvelope(message);
    if (envelope !== undefined) this.#deliver?.(envelope);
  };

  constructor(options: RedisBusOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#idPrefix = `${options.nodeId}.${Date.now().toString(36)}-r`;
    this.#channels = options.channels;
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

  /** Inward messages not delivered, by reason (`json-invalid`, `envelope-invalid`, `unmapped`). */
  get droppedRecords(): ReadonlyMap<string, number> {
    return this.#dropped;
  }

  #down(): void {
    this.#last = undefined;
    if (this.#linkDown) return;
    this.#linkDown = true;
    this.#link?.down();
  }

  /** Subscribes every watched channel again and waits for Redis to confirm each (same listener: no duplicates). */
  async #resubscribe(): Promise<void> {
    const sub = this.#sub;
    if (sub === undefined) return;
    await Promise.allSettled([...this.#interest].map(([key, { listener }]) => this.#subscribe(sub, key, listener)));
  }

  /** `p:` and `q:` keys are patterns (private, named), `c:` and `n:` channels. */
  #subscribe(sub: RedisClient, key: string, listener: Listener): Promise<void> {
    const target = key.slice(2);
    if (isPatternKey(key)) return sub.pSubscribe(target, listener, true);
    // A Redis Cluster shards channels (private and named alike): each lives on the master of its slot.
    return this.#sharded && sub.sSubscribe !== undefined ? sub.sSubscribe(target, listener, true) : sub.subscribe(target, listener, true);
  }

  /** A message on a named channel, heard through the subscription `key`. */
  #inward(key: string, payload: Buffer, channelBytes: Buffer): void {
    const channel = channelBytes.toString();
    const last = this.#last;
    if (last !== undefined && last.channel === channel && !last.via.includes(key) && last.payload.equals(payload)) {
      last.via.push(key);
      return;
    }
    this.#last = { channel, payload, via: [key] };
    const targets = this.#channels?.inward(channel) ?? [];
    if (targets.length === 0) return this.#drop('unmapped', channel);
    let index = 0;
    for (const to of targets) {
      const message = this.#read(to.format, payload);
      if (typeof message === 'string') {
        this.#drop(message, channel);
        continue;
      }
      const id = message.id ?? `${this.#options.nodeId}-i${(++this.#seq).toString(36)}`;
      this.#deliver?.({
        // One message per destination: ids differ, or the broker would take the second for a repeat of the first.
        id: index++ === 0 ? id : `${id}-d${index}`,
        origin: message.origin ?? '',
        vhost: to.vhost,
        destination: to.destination,
        headers: message.headers,
        body: message.body,
        time: message.time ?? Date.now(),
      });
    }
  }

  #read(format: RedisFormat, payload: Buffer): (NativeMessage & { origin?: string; time?: number }) | RedisDropReason {
    if (format !== 'stompede') return decodeNative(format, payload);
    // The envelope's id, origin and time are kept; its vhost and destination are not: the channel's mapping decides.
    const envelope = decodeEnvelope(payload);
    return envelope ?? 'envelope-invalid';
  }

  /** Counted every time; logged the first time and then at most once a minute per reason. */
  #drop(reason: RedisDropReason, channel: string): void {
    this.#dropped.set(reason, (this.#dropped.get(reason) ?? 0) + 1);
    const now = Date.now();
    const logged = this.#dropLog.get(reason);
    if (logged !== undefined && now - logged.at < DROP_LOG_INTERVAL_MS) {
      logged.since++;
      return;
    }
    this.#dropLog.set(reason, { at: now, since: 0 });
    this.#log.warn(
      { reason, channel: channel.slice(0, 256), droppedSinceLastLog: logged?.since ?? 0 },
      reason === 'unmapped'
        ? 'dropped a Redis message: its channel maps to no destination of this route table'
        : `dropped a Redis message that is not valid for its route's format (${reason})`,
    );
  }

  #channel(vhost: string, destination: string): string {
    return `${this.#options.clusterName}:t:${vhost}:${destination}`;
  }

  async publish(input: PublishInput): Promise<void> {
    const envelope: BusEnvelope = { ...input, id: input.id ?? this.#idPrefix + (++this.#seq).toString(36) };
    const pub = this.#pub;
    if (pub === undefined) throw new BridgeError('ERR_BUS_NOT_STARTED', 'redis bus not started', false);
    const named = this.#channels?.outward(envelope.vhost, envelope.destination);
    try {
      const channel = named === undefined ? this.#channel(envelope.vhost, envelope.destination) : named.channel;
      const payload = named === undefined || named.format === 'stompede' ? encodeEnvelope(envelope) : encodeNative(named.format, envelope);
      await (this.#sharded && pub.sPublish !== undefined ? pub.sPublish(channel, payload) : pub.publish(channel, payload));
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
      this.#deliver?.(named === undefined || named.format === 'stompede' ? envelope : asCarried(named.format, envelope));
    }
  }

  /**
   * `c:<channel>` for a destination, `p:<glob>` for a wildcard one (a superset; the broker filters exactly); `n:` and
   * `q:` for the same on named channels.
   */
  #subscriptionKey(vhost: string, destination: string): string {
    const wildcard = destination.includes('*') || destination.includes('#');
    if (wildcard) {
      const glob = this.#channels?.pattern(vhost, destination);
      if (glob !== undefined) return `q:${glob}`;
      return `p:${escapeGlob(this.#channel(vhost, ''))}${escapeGlob(destination).replace(/\\\*|\.?#\.?/g, '*')}`;
    }
    const named = this.#channels?.outward(vhost, destination);
    return named !== undefined ? `n:${named.channel}` : `c:${this.#channel(vhost, destination)}`;
  }

  /** Resolves once Redis has confirmed the subscription, so a SUBSCRIBE RECEIPT means "live cluster-wide". */
  watch(vhost: string, destination: string): Promise<void> {
    const key = this.#subscriptionKey(vhost, destination);
    if (isPatternKey(key) && this.#sharded) {
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
    const listener: Listener =
      key.startsWith('n:') || key.startsWith('q:') ? (message, channel) => this.#inward(key, message, channel) : this.#listener;
    const ready = this.#subscribe(sub, key, listener).catch((error: unknown) => {
      // Redis down: node-redis resubscribes on reconnect; the subscriber still gets this node's messages meanwhile.
      this.#log.debug({ err: error, target: key.slice(2) }, 'redis subscribe deferred until reconnect');
    });
    this.#interest.set(key, { count: 1, ready, listener });
    return ready;
  }

  unwatch(vhost: string, destination: string): void {
    const key = this.#subscriptionKey(vhost, destination);
    const entry = this.#interest.get(key);
    if (entry === undefined) return;
    if (--entry.count > 0) return;
    this.#interest.delete(key);
    const target = key.slice(2);
    const sub = this.#sub;
    const { listener } = entry;
    if (sub === undefined) return;
    const leaving = isPatternKey(key)
      ? sub.pUnsubscribe(target, listener, true)
      : this.#sharded && sub.sUnsubscribe !== undefined
        ? sub.sUnsubscribe(target, listener, true)
        : sub.unsubscribe(target, listener, true);
    void leaving.catch(() => {});
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
    this.#last = undefined;
    await Promise.allSettled([this.#pub?.close(), this.#sub?.close()]);
  }
}

function isPatternKey(key: string): boolean {
  return key.startsWith('p:') || key.startsWith('q:');
}

/** What subscribers get of a message that went through a named channel in a native format (headers and id as read back). */
function asCarried(format: NativeFormat, envelope: BusEnvelope): BusEnvelope {
  const read = decodeNative(format, encodeNative(format, envelope));
  return typeof read === 'string' ? envelope : { ...envelope, headers: read.headers, body: read.body };
}
