import { BridgeError, backoffMs } from '../broker/ports/bus.js';
import { decodeEnvelope, encodeEnvelope } from './envelope-codec.js';
import { recordPosition } from './kafka-codec.js';
import type { HistoryQuery, HistoryRecord, HistoryRetention, HistoryStore } from '../broker/ports/history.js';
import { BUFFERS, connectRedis, withTimeout, type RedisClient, type RedisEndpoint } from './redis-client.js';
import { silentLogger, type Logger } from '../broker/ports/logger.js';

/** What `stageMany` did with a record: staged ahead of the inner store, or found stored there already. */
export type Staged = 'staged' | 'stored';

export interface CachedHistoryOptions {
  /** The store of record; every append goes there first, every read the cache cannot answer goes there. */
  readonly inner: HistoryStore;
  /**
   * Redis URL or target (Sentinel, Cluster); the store owns the connection it opens. Exactly one of `url` and
   * `client`. Each command touches one destination's key, so a Redis Cluster needs no hash tags here.
   */
  readonly url?: RedisEndpoint;
  /** A connected client the caller owns (and closes). */
  readonly client?: RedisClient;
  readonly clusterName: string;
  /** Most recent records kept per destination; `last` reads of up to this many are answered from Redis. */
  readonly cacheSize: number;
  /** The inner store's retention, applied to cached records too (default: the inner store's `retention`). */
  readonly retention?: HistoryRetention;
  readonly logger?: Logger;
  /** Longest a cache command may take before the inner store answers instead. */
  readonly commandTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** A destination's cache expires after this long without appends (without an age limit to expire by). */
  readonly idleTtlMs?: number;
}

export const CACHED_HISTORY_DEFAULTS = Object.freeze({
  commandTimeoutMs: 1_000,
  connectTimeoutMs: 5_000,
  idleTtlMs: 24 * 60 * 60 * 1000,
  /** Destinations remembered for repair after failed cache writes; past that, the oldest are forgotten. */
  maxUntrustedKeys: 100_000,
  /**
   * Fewest ids of stored records remembered per destination (at least 10 times the cache size), so that a partition's
   * new owner, which reads again everything after the last commit, does not append those again.
   */
  minStoredMarks: 1_000,
});

/**
 * The cache's bounds, applied after an add (Lua, shared by ADD and STAGE): keeps the newest ARGV[1] members of KEYS[1]
 * and, with a byte cap ARGV[3] (0: none), the newest that fit in it; refreshes its expiry (ARGV[2] ms).
 */
const TRIM = `
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 1))
local maxBytes = tonumber(ARGV[3])
if maxBytes > 0 then
  local total = 0
  for i, member in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
    total = total + #member
    if total > maxBytes then
      redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -i)
      break
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
`;

/**
 * Adds records to a destination's sorted set (score: position), keeps the newest `cap` entries (and, with a
 * byte cap, the newest that fit in it) and refreshes the expiry, atomically. KEYS[1] the set; ARGV: cap, ttl ms,
 * byte cap (0: none), then score/member pairs. The empty member at -inf marks a set holding every retained
 * record of its destination; it is the first to go when the set is full. The byte walk reads at most `cap`
 * members, the cache's own small bound.
 */
const ADD = `
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
${TRIM}return 1`;

/**
 * Stages records (`stageMany`): each goes to the destination's ahead set (never trimmed) and to its cache (then trimmed
 * as by ADD), unless the cache holds that very record (same encoded bytes) while the ahead set does not: it is stored
 * in the inner store already (the cache takes records only once stored, or staged into both at once, and a staged
 * record leaves the ahead set only once stored), as when a partition's new owner reads again what the old one stored.
 * Its id marked in the stored set (SETTLE) says the same. KEYS[1] the cache, KEYS[2] the ahead set, KEYS[3] the
 * stored set; ARGV as for ADD but with position/member/id triples. Returns one flag per record: 1 stored already, 0
 * staged.
 */
const STAGE = `
local flags = {}
for i = 4, #ARGV, 3 do
  local m = ARGV[i + 1]
  if redis.call('ZSCORE', KEYS[3], ARGV[i + 2]) or (not redis.call('ZSCORE', KEYS[2], m) and redis.call('ZSCORE', KEYS[1], m)) then
    flags[#flags + 1] = 1
  else
    redis.call('ZADD', KEYS[2], ARGV[i], m)
    redis.call('ZADD', KEYS[1], ARGV[i], m)
    flags[#flags + 1] = 0
  end
end
${TRIM}if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return flags`;

/**
 * Records now stored in the inner store: removes them from the ahead set and marks their ids in the "stored" set
 * (score: position; the newest ARGV[1] kept, 0: marks none), which STAGE consults, so a partition's new owner does
 * not append again what the old one stored, also beyond what the cache holds. KEYS[1] the ahead set, KEYS[2] the
 * stored set; ARGV: marks kept, ttl ms, then position/id pairs.
 */
const SETTLE = `
local keep = tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i])
  if keep > 0 then redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
if keep > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(keep + 1))
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1`;

const COMPLETE = Buffer.alloc(0);
/** What close() gives a repair in progress and the Redis client's own close before moving on. */
const CLOSE_WAIT_MS = 1_000;

/**
 * A HistoryStore in front of another (MongoDB), keeping each destination's most recent `cacheSize` records in
 * Redis, key `<clusterName>:recent:<vhost>:<destination>`, so the common SUBSCRIBE (`x-history: N`, the last N
 * messages) costs one Redis round trip and keeps working while the inner store is down.
 *
 * The cache is a sorted set scored by position rather than a list: members are the encoded records, so the
 * same record appended twice (a retry, or every node appending what Kafka delivered) is held once, and records
 * appended out of order by different nodes still come back in position order. Writes are a single script
 * (add, trim, expire), so a reader never sees a half-written cache.
 *
 * A `last` read is answered from Redis only when the cache holds enough records, or is marked as holding all
 * of the destination's records (written when a read of the inner store found fewer than it asked for). An
 * `afterId` read (`x-resume-after`) is answered from Redis when the cache still holds that id. Every other read,
 * and every Redis failure, goes to the inner store, and a `last` miss fills the cache from the answer.
 *
 * An append goes to the inner store, then to Redis; a Redis failure never fails it. The destination is then
 * repaired, never read across the gap: this node stops reading its cache, and once Redis answers again it
 * re-adds the destination's newest records from the inner store (a union, so nothing another node added is lost).
 */
export class CachedHistoryStore implements HistoryStore {
  readonly name: string;
  readonly inner: HistoryStore;
  #options: CachedHistoryOptions;
  #log: Logger;
  #retention: HistoryRetention;
  /** Entries kept per destination: the cache size, or fewer if retention keeps fewer. */
  #cap: number;
  #ttlMs: number;
  /** Ids kept per destination in its stored set (see SETTLE). */
  #storedMarks: number;
  #timeoutMs: number;
  #client: RedisClient | undefined;
  #ownsClient: boolean;
  #connectTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #cacheDown = false;
  /** Destinations whose cache may lack records this node appended (oldest first), to repair from the inner store. */
  #untrusted = new Map<string, { vhost: string; destination: string; mark: number }>();
  #marks = 0;
  #repairing: Promise<void> | undefined;
  /** Per cache key, the ids of the records this node staged (`stageMany`) and has not yet stored in the inner store. */
  #owed = new Map<string, Set<string>>();

  constructor(options: CachedHistoryOptions) {
    if ((options.url === undefined) === (options.client === undefined)) {
      throw new TypeError('CachedHistoryStore needs exactly one of `url` and `client`');
    }
    if (!Number.isSafeInteger(options.cacheSize) || options.cacheSize < 1) throw new TypeError('cacheSize must be an integer >= 1');
    this.#options = options;
    this.inner = options.inner;
    this.name = `cached-${options.inner.name}`;
    this.#log = options.logger ?? silentLogger;
    this.#retention = options.retention ?? retentionOf(options.inner) ?? { maxPerDestination: 0, maxAgeMs: 0 };
    const max = this.#retention.maxPerDestination;
    this.#cap = max > 0 ? Math.min(max, options.cacheSize) : options.cacheSize;
    this.#ttlMs = this.#retention.maxAgeMs > 0 ? this.#retention.maxAgeMs : (options.idleTtlMs ?? CACHED_HISTORY_DEFAULTS.idleTtlMs);
    this.#timeoutMs = options.commandTimeoutMs ?? CACHED_HISTORY_DEFAULTS.commandTimeoutMs;
    this.#storedMarks = Math.max(10 * this.#cap, CACHED_HISTORY_DEFAULTS.minStoredMarks);
    this.#ownsClient = options.client === undefined;
    if (options.client !== undefined) this.#client = options.client;
    else this.#connect(options.url as RedisEndpoint, 0);
  }

  /** Connects in the background, retrying with backoff: until then every read goes to the inner store. */
  #connect(url: RedisEndpoint, attempt: number): void {
    const timeout = this.#options.connectTimeoutMs ?? CACHED_HISTORY_DEFAULTS.connectTimeoutMs;
    connectRedis(url, this.#log, 'history-cache', timeout).then(
      async (client) => {
        if (this.#closed) {
          await client.close();
          return;
        }
        this.#client = client;
        this.#repairSoon();
      },
      (error: unknown) => {
        if (attempt === 0) this.#log.warn({ err: error }, 'history cache: redis not reachable; reading from the inner store meanwhile');
        if (this.#closed) return;
        this.#connectTimer = setTimeout(() => this.#connect(url, attempt + 1), backoffMs(Math.min(attempt, 10)));
        this.#connectTimer.unref();
      },
    );
  }

  get healthy(): boolean {
    return this.inner.healthy;
  }

  /** True while the cache answers (the store works without it, more slowly). */
  get cacheHealthy(): boolean {
    return this.#client?.isReady === true && !this.#cacheDown;
  }

  /** Destinations whose cache this node does not read until it has repaired them (after Redis failures). */
  get repairsPending(): number {
    return this.#untrusted.size;
  }

  nextPosition(vhost: string, destination: string): number | Promise<number> {
    return this.inner.nextPosition(vhost, destination);
  }

  #key(vhost: string, destination: string): string {
    return `${this.#options.clusterName}:recent:${vhost}:${destination}`;
  }

  /** The ids of the newest records the Kafka consumer stored (`appendMany`), for STAGE. */
  #storedKey(vhost: string, destination: string): string {
    return `${this.#options.clusterName}:stored:${vhost}:${destination}`;
  }

  /** Where records staged ahead of the inner store wait for it (a sorted set by position, never trimmed). */
  #aheadKey(vhost: string, destination: string): string {
    return `${this.#options.clusterName}:ahead:${vhost}:${destination}`;
  }

  async appendMany(records: readonly HistoryRecord[]): Promise<number> {
    const stored = await this.inner.appendMany(records);
    const byKey = this.#byKey(records.slice(0, stored));
    await Promise.all([
      this.#settle(byKey, true),
      ...[...byKey].map(async ([key, list]) => {
        const first = list[0] as HistoryRecord;
        if (!(await this.#add(key, list, false))) this.#distrust(key, first.vhost, first.destination);
      }),
    ]);
    return stored;
  }

  async append(record: HistoryRecord): Promise<void> {
    const key = this.#key(record.vhost, record.destination);
    try {
      await this.inner.append(record);
    } catch (error) {
      // Refused for good (too large, say): its writer drops it, so it is not kept ahead of the inner store either.
      if (error instanceof BridgeError && !error.retriable) await this.#settle(new Map([[key, [record]]]));
      throw error;
    }
    await Promise.all([
      this.#settle(new Map([[key, [record]]])),
      this.#add(key, [record], false).then((ok) => ok || this.#distrust(key, record.vhost, record.destination)),
    ]);
  }

  /**
   * Cache first: puts one consumed batch of records into Redis only, so that they can be delivered at once, while
   * the inner store (MongoDB: seconds when loaded, as when a node died and the new owners of its partitions send
   * its backlog there all at once) gets them afterwards, through `append`/`appendMany`. Returns an outcome for each
   * record from the first on that Redis took (none when it is down; fewer than all when a destination's cache is
   * not trusted here: those are then written to the inner store first): `staged`, or `stored` when the inner store
   * has it already (see STAGE; a partition's new owner reading again what the old one stored).
   *
   * Each record goes to the destination's cache (so `x-history: N` and `x-resume-after` over recent messages are
   * answered from Redis as usual) and to its "ahead" set, which keeps it, untrimmed, until the inner store has it.
   * Every read the inner store answers is completed from that set (`#withAhead`), so a record is readable on every
   * node from the moment it is staged: `x-history`, `x-resume-after` and `x-stream-offset` stay exact, as when the
   * inner store is written first. A node that dies with records staged leaves them in the set; the partition's next
   * owner reads them again from the last commit (which never passes a record not yet in the inner store), stages
   * them again and clears them once stored. What no one clears expires like the cache.
   */
  async stageMany(records: readonly HistoryRecord[]): Promise<Staged[]> {
    const client = this.#client;
    if (records.length === 0 || client?.isReady !== true || this.#cacheDown) return [];
    let count = 0;
    while (count < records.length) {
      const r = records[count] as HistoryRecord;
      if (this.#untrusted.has(this.#key(r.vhost, r.destination))) break;
      count++;
    }
    if (count === 0) return [];
    const byKey = this.#byKey(records.slice(0, count));
    // Owed before the writes are sent: an append of the same records finishing meanwhile clears them.
    for (const [key, list] of byKey) {
      let owed = this.#owed.get(key);
      if (owed === undefined) this.#owed.set(key, (owed = new Set()));
      for (const r of list) owed.add(r.id);
    }
    const outcome = new Map<HistoryRecord, Staged>();
    const lost = new Set<string>();
    await Promise.all(
      [...byKey].map(async ([key, list]) => {
        const flags = await this.#stage(key, list);
        if (flags === undefined) lost.add(key);
        else list.forEach((r, k) => outcome.set(r, flags[k] === 1 ? 'stored' : 'staged'));
      }),
    );
    const result: Staged[] = [];
    for (const r of records.slice(0, count)) {
      const o = outcome.get(r);
      // A destination Redis did not take is not staged (the inner store gets it first): the batch stops before it.
      if (o === undefined) break;
      if (o === 'stored') this.#owed.get(this.#key(r.vhost, r.destination))?.delete(r.id);
      result.push(o);
    }
    for (const [key, owed] of [...this.#owed]) if (owed.size === 0) this.#owed.delete(key);
    return result;
  }

  /** Records this node staged and has not yet stored in the inner store. */
  get ahead(): number {
    let n = 0;
    for (const owed of this.#owed.values()) n += owed.size;
    return n;
  }

  #byKey(records: readonly HistoryRecord[]): Map<string, HistoryRecord[]> {
    const byKey = new Map<string, HistoryRecord[]>();
    for (const r of records) {
      const key = this.#key(r.vhost, r.destination);
      let list = byKey.get(key);
      if (list === undefined) byKey.set(key, (list = []));
      list.push(r);
    }
    return byKey;
  }

  /** Runs STAGE for one destination's records: a flag per record (1: stored already), or undefined when Redis failed. */
  async #stage(key: string, records: readonly HistoryRecord[]): Promise<number[] | undefined> {
    const client = this.#client;
    const first = records[0];
    if (client?.isReady !== true || first === undefined) return undefined;
    const args: (string | Buffer)[] = [
      'EVAL',
      STAGE,
      '3',
      key,
      this.#aheadKey(first.vhost, first.destination),
      this.#storedKey(first.vhost, first.destination),
      String(this.#cap),
      String(this.#ttlMs),
      String(this.#retention.maxBytesPerDestination ?? 0),
    ];
    for (const r of records) args.push(String(r.position), encodeEnvelope(r), r.id);
    try {
      const reply = await this.#command(client, args);
      if (!Array.isArray(reply) || reply.length !== records.length) return undefined;
      return reply.map((flag) => Number(flag));
    } catch (error) {
      this.#failed(error);
      return undefined;
    }
  }

  /**
   * Records now in the inner store: cleared from their ahead sets, if this node staged them, and with `mark` (the
   * Kafka consumer's bulk appends) marked stored for STAGE. A failure leaves them in the ahead set, harmless (a read
   * counts each id once) until it expires, and unmarked (appended again after a rebalance: idempotent, only slower).
   */
  async #settle(byKey: ReadonlyMap<string, readonly HistoryRecord[]>, mark = false): Promise<void> {
    const client = this.#client;
    await Promise.all(
      [...byKey].map(async ([key, list]) => {
        const owed = this.#owed.get(key);
        const clear = owed === undefined ? [] : list.filter((r) => owed.delete(r.id));
        if (owed?.size === 0) this.#owed.delete(key);
        const done = mark ? list : clear;
        const first = done[0];
        if (first === undefined || client?.isReady !== true) return;
        const args = [
          'EVAL',
          SETTLE,
          '2',
          this.#aheadKey(first.vhost, first.destination),
          this.#storedKey(first.vhost, first.destination),
          String(mark ? this.#storedMarks : 0),
          String(this.#ttlMs),
        ];
        for (const r of done) args.push(String(r.position), r.id);
        await this.#command(client, args).catch((error: unknown) => this.#failed(error));
      }),
    );
  }

  /** Writes records to a destination's cache; false (never a rejection) when Redis did not take them. */
  async #add(key: string, records: readonly HistoryRecord[], complete: boolean): Promise<boolean> {
    const client = this.#client;
    if (client?.isReady !== true) return false;
    const args: (string | Buffer)[] = [
      'EVAL',
      ADD,
      '1',
      key,
      String(this.#cap),
      String(this.#ttlMs),
      String(this.#retention.maxBytesPerDestination ?? 0),
    ];
    if (complete) args.push('-inf', COMPLETE);
    for (const r of records) args.push(String(r.position), encodeEnvelope(r));
    try {
      await this.#command(client, args);
      return true;
    } catch (error) {
      this.#failed(error);
      return false;
    }
  }

  async #command(client: RedisClient, args: (string | Buffer)[]): Promise<unknown> {
    const result = await withTimeout(
      client.sendCommand(args, BUFFERS),
      this.#timeoutMs,
      () => new Error(`history cache: redis did not answer within ${this.#timeoutMs} ms`),
    );
    if (this.#cacheDown) {
      this.#cacheDown = false;
      this.#log.info({}, 'history cache: redis answering again');
      this.#repairSoon();
    }
    return result;
  }

  #failed(error: unknown): void {
    if (!this.#cacheDown) this.#log.warn({ err: error }, 'history cache: redis failed; using the inner store');
    this.#cacheDown = true;
  }

  /** The cache of this destination may lack records: not read here until repaired. */
  #distrust(key: string, vhost: string, destination: string): void {
    this.#untrusted.delete(key);
    this.#untrusted.set(key, { vhost, destination, mark: ++this.#marks });
    // A bound even for an outage touching more destinations than that: the oldest marks go first.
    if (this.#untrusted.size > CACHED_HISTORY_DEFAULTS.maxUntrustedKeys) {
      const oldest = this.#untrusted.keys().next().value;
      if (oldest !== undefined) this.#untrusted.delete(oldest);
    }
  }

  /**
   * Re-adds a destination's newest records from the inner store and returns them. The union keeps what others
   * added meanwhile; everything the inner store held when it answered is in, so the cache has no gap below it.
   */
  async #repair(key: string, vhost: string, destination: string): Promise<HistoryRecord[]> {
    const mark = this.#untrusted.get(key)?.mark;
    const records = await this.inner.read(vhost, destination, { last: this.#cap }, this.#cap);
    // A failure to append during the repair marked the key again: that one needs a repair of its own.
    if ((await this.#add(key, records, records.length < this.#cap)) && this.#untrusted.get(key)?.mark === mark) this.#untrusted.delete(key);
    return records;
  }

  /** Repairs every distrusted destination in the background, one at a time, once Redis answers. */
  #repairSoon(): void {
    if (this.#untrusted.size === 0 || this.#repairing !== undefined) return;
    this.#repairing = (async () => {
      // After the current turn: a read repairing one inline right now should not be repeated.
      await new Promise((resolve) => setImmediate(resolve));
      for (const [key, { vhost, destination }] of [...this.#untrusted]) {
        if (this.#closed || !this.cacheHealthy) break;
        if (this.#untrusted.has(key)) await this.#repair(key, vhost, destination);
      }
    })()
      .catch((error: unknown) => {
        this.#log.warn({ err: error }, 'history cache: repair stopped; retrying when redis answers again');
      })
      .finally(() => {
        this.#repairing = undefined;
      });
  }

  async read(vhost: string, destination: string, query: HistoryQuery, limit: number): Promise<HistoryRecord[]> {
    if ('afterId' in query) {
      const cached = await this.#cachedAfter(vhost, destination, query.afterId, limit);
      return cached ?? this.#withAhead(vhost, destination, query, limit, await this.inner.read(vhost, destination, query, limit));
    }
    if (!('last' in query))
      return this.#withAhead(vhost, destination, query, limit, await this.inner.read(vhost, destination, query, limit));
    const max = this.#retention.maxPerDestination;
    const want = Math.min(query.last, limit, max > 0 ? max : Infinity);
    if (want <= 0) return [];
    const key = this.#key(vhost, destination);
    if (want <= this.#cap && this.#client?.isReady === true) {
      if (this.#untrusted.has(key)) return (await this.#repair(key, vhost, destination)).slice(-want);
      const cached = await this.#cached(key, vhost, destination, want);
      if (cached !== undefined) return cached;
    }
    const records = await this.#withAhead(vhost, destination, query, limit, await this.inner.read(vhost, destination, query, limit));
    // Fill the cache from the answer (fewer than asked for: that is everything), unless it is being repaired.
    if (!this.#untrusted.has(key)) void this.#add(key, records.slice(-this.#cap), records.length < want);
    return records;
  }

  /**
   * The records after `afterId` from Redis, or undefined (ask the inner store) when the cache no longer holds
   * that record, is not trusted here, or Redis fails. A resuming client (`x-resume-after` after its node
   * stopped) missed only the last few messages, and a rolling restart sends every client of a node at once:
   * answered here, that burst costs one ZRANGE each instead of range reads that MongoDB (or a FerretDB that scans)
   * would serve one after another. The cache drops its oldest entries only, so when it still holds `afterId` it
   * holds everything appended after it. What it lacks arrives live: the Kafka engine appends before fan-out (while
   * history fails, it fans out first, and then the inner store lacks those records as well).
   */
  async #cachedAfter(vhost: string, destination: string, afterId: string, limit: number): Promise<HistoryRecord[] | undefined> {
    const client = this.#client;
    const key = this.#key(vhost, destination);
    if (client?.isReady !== true || limit <= 0 || this.#untrusted.has(key)) return undefined;
    // A Kafka id names its position: only the entries from there on are read (the cache may hold large bodies).
    const from = recordPosition(afterId);
    let reply: unknown;
    try {
      reply = await this.#command(client, from === undefined ? ['ZRANGE', key, '0', '-1'] : ['ZRANGEBYSCORE', key, String(from), '+inf']);
    } catch (error) {
      this.#failed(error);
      return undefined;
    }
    if (!Array.isArray(reply)) return undefined;
    const entries: unknown[] = reply;
    const cutoff = this.#retention.maxAgeMs > 0 ? Date.now() - this.#retention.maxAgeMs : -Infinity;
    const seen = new Set<string>();
    const records: HistoryRecord[] = [];
    let found = false;
    for (const entry of entries) {
      if (!Buffer.isBuffer(entry)) return undefined;
      if (entry.length === 0) continue; // the "holds every record" mark
      const e = decodeEnvelope(entry);
      if (e === undefined || e.position === undefined || e.vhost !== vhost || e.destination !== destination) return undefined;
      if (!found) {
        found = e.id === afterId;
        seen.add(e.id);
        continue;
      }
      // As the inner store's read: retention applies exactly, and one record counts once.
      if (seen.has(e.id) || e.time < cutoff) continue;
      seen.add(e.id);
      records.push({ ...e, position: e.position });
      if (records.length >= limit) break;
    }
    return found ? records : undefined;
  }

  /**
   * An answer of the inner store completed with the records staged ahead of it (`stageMany`, by any node) that match
   * the query and that it lacks, so they are readable before they are stored there. Any Redis failure leaves
   * `found` as it is.
   */
  async #withAhead(
    vhost: string,
    destination: string,
    query: HistoryQuery,
    limit: number,
    found: HistoryRecord[],
  ): Promise<HistoryRecord[]> {
    const client = this.#client;
    if (client?.isReady !== true || limit <= 0) return found;
    let accept: (r: HistoryRecord) => boolean;
    if ('afterId' in query) {
      const from = recordPosition(query.afterId);
      if (from === undefined) return found;
      accept = (r) => r.position > from;
    } else if ('fromPosition' in query) {
      const from = query.fromPosition;
      accept = (r) => r.position >= from;
    } else if ('fromTime' in query) {
      const from = query.fromTime;
      accept = (r) => r.time >= from;
    } else accept = () => true;
    const key = this.#aheadKey(vhost, destination);
    const from = 'afterId' in query ? recordPosition(query.afterId) : 'fromPosition' in query ? query.fromPosition : undefined;
    let reply: unknown;
    try {
      reply = await this.#command(client, from === undefined ? ['ZRANGE', key, '0', '-1'] : ['ZRANGEBYSCORE', key, String(from), '+inf']);
    } catch (error) {
      this.#failed(error);
      return found;
    }
    if (!Array.isArray(reply)) return found;
    const entries: unknown[] = reply;
    const cutoff = this.#retention.maxAgeMs > 0 ? Date.now() - this.#retention.maxAgeMs : -Infinity;
    const byId = new Map(found.map((r) => [r.id, r]));
    let added = false;
    for (const entry of entries) {
      if (!Buffer.isBuffer(entry)) return found;
      const e = decodeEnvelope(entry);
      if (e === undefined || e.position === undefined || e.vhost !== vhost || e.destination !== destination) return found;
      if (e.time < cutoff || byId.has(e.id)) continue;
      const record: HistoryRecord = { ...e, position: e.position };
      if (!accept(record)) continue;
      byId.set(e.id, record);
      added = true;
    }
    if (!added) return found;
    const merged = [...byId.values()].sort((a, b) => a.position - b.position);
    if (!('last' in query)) return merged.slice(0, limit);
    const max = this.#retention.maxPerDestination;
    return merged.slice(-Math.min(query.last, limit, max > 0 ? max : Infinity));
  }

  /** The newest `want` records from Redis, or undefined when Redis cannot answer that exactly. */
  async #cached(key: string, vhost: string, destination: string, want: number): Promise<HistoryRecord[] | undefined> {
    const client = this.#client;
    if (client === undefined) return undefined;
    let reply: unknown;
    try {
      reply = await this.#command(client, ['ZRANGE', key, String(-(want + 1)), '-1']);
    } catch (error) {
      this.#failed(error);
      return undefined;
    }
    if (!Array.isArray(reply)) return undefined;
    const entries: unknown[] = reply;
    let complete = false;
    const seen = new Set<string>();
    const records: HistoryRecord[] = [];
    const cutoff = this.#retention.maxAgeMs > 0 ? Date.now() - this.#retention.maxAgeMs : -Infinity;
    for (const entry of entries) {
      if (!Buffer.isBuffer(entry)) return undefined;
      if (entry.length === 0) {
        complete = true;
        continue;
      }
      const e = decodeEnvelope(entry);
      if (e === undefined || e.position === undefined || e.vhost !== vhost || e.destination !== destination) return undefined;
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      // Expired: everything older is too (records age in position order), so what is left is all there is.
      if (e.time < cutoff) {
        complete = true;
        continue;
      }
      records.push({ ...e, position: e.position });
    }
    if (records.length >= want) return records.slice(records.length - want);
    return complete ? records : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#connectTimer);
    // A repair in progress stops at its next key; the one read in flight may wait on a store that is going away.
    await withTimeout(this.#repairing ?? Promise.resolve(), CLOSE_WAIT_MS, () => new Error('repair still running')).catch(() => undefined);
    const client = this.#client;
    this.#client = undefined;
    try {
      // node-redis's close() waits for replies to commands in flight; a client that lost Redis (restarted under
      // it) may never get them, so after a short wait the socket is simply destroyed: the cache is only a cache.
      if (this.#ownsClient && client !== undefined) {
        await withTimeout(client.close(), CLOSE_WAIT_MS, () => new Error('redis close timed out')).catch(() => client.destroy());
      }
    } finally {
      await this.inner.close();
    }
  }
}

/** The retention of an inner store that exposes it (MongoHistoryStore does), checked at the boundary. */
function retentionOf(store: HistoryStore): HistoryRetention | undefined {
  const r: unknown = (store as { retention?: unknown }).retention;
  if (typeof r !== 'object' || r === null) return undefined;
  const { maxPerDestination, maxAgeMs } = r as Record<string, unknown>;
  return typeof maxPerDestination === 'number' && typeof maxAgeMs === 'number' ? { maxPerDestination, maxAgeMs } : undefined;
}
