import {
  Binary,
  MongoBulkWriteError,
  MongoClient,
  MongoError,
  MongoNetworkError,
  MongoServerSelectionError,
  type Collection,
  type Db,
  type Filter,
  type FindOptions,
} from 'mongodb';
import { BridgeError } from '../broker/ports/bus.js';
import type { HistoryQuery, HistoryRecord, HistoryRetention, HistoryStore } from '../broker/ports/history.js';
import { silentLogger, type Logger } from '../broker/ports/logger.js';

export interface MongoHistoryOptions {
  /** `mongodb://…` URL; the store owns the client it creates. Exactly one of `url` and `db`. */
  readonly url?: string;
  /** A database of a client the caller owns (and closes). */
  readonly db?: Db;
  /** Database for `url` (default: the one the URL names, else `stompede`). */
  readonly dbName?: string;
  /** The collection is `<collectionPrefix>history` (default prefix: none). */
  readonly collectionPrefix?: string;
  readonly retention: HistoryRetention;
  readonly logger?: Logger;
  /** How often retention is enforced by deleting old documents (0: only when `prune()` is called). */
  readonly pruneIntervalMs?: number;
  /** How long an operation waits for a reachable server before it fails (a down MongoDB fails fast). */
  readonly serverSelectionTimeoutMs?: number;
  /** How often the driver checks the server; `healthy` follows these checks. */
  readonly heartbeatMs?: number;
  /** Longest a socket may stay silent during an operation (a hung server, not a dead one). */
  readonly socketTimeoutMs?: number;
}

export const MONGO_HISTORY_DEFAULTS = Object.freeze({
  dbName: 'stompede',
  pruneIntervalMs: 60_000,
  serverSelectionTimeoutMs: 5_000,
  heartbeatMs: 5_000,
  socketTimeoutMs: 30_000,
});

/**
 * One stored message. Headers are flattened to `[name, value, name, value, …]`: FerretDB 1.24 rejects nested
 * arrays ("nested arrays are not supported"), and a flat array keeps the order and repeats just as well.
 */
interface HistoryDocument {
  _id: string;
  vhost: string;
  destination: string;
  position: number;
  origin: string;
  headers: string[];
  body: Binary;
  time: Date;
}

/** Kafka-route message ids: `<topic>-<partition>-<offset>`, the offset being the record's position. */
const KAFKA_ID = /^.+-\d{1,10}-(\d{1,16})$/;

/** Server error codes that mean "try again": the server is going away, stepping down, or a socket failed. */
const RETRIABLE_CODES: ReadonlySet<number> = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

const DUPLICATE_KEY = 11000;

/** Fewest appends to one destination between two count prunes of it (reads apply retention exactly anyway). */
const PRUNE_AFTER_APPENDS = 64;

/** Destinations whose next local position is remembered (`nextPosition`); one forgotten is looked up again. */
const MAX_TRACKED_DESTINATIONS = 100_000;

/**
 * History in a MongoDB collection (or a server speaking its protocol, such as FerretDB), shared by every node.
 *
 * - Documents are keyed by message id, so `append` is idempotent: a second insert of the same id fails with a
 *   duplicate-key error, which is ignored.
 * - Range reads are shaped for the `{ vhost, destination, position }` index (MongoDB uses it; FerretDB 1.24 on
 *   SQLite scans the collection whatever the filter, which retention keeps small).
 * - Retention is applied exactly on every read (records beyond the count or older than the age are never
 *   returned), and enforced in storage by `deleteMany`: every `pruneIntervalMs`, and for one destination after
 *   an eighth of its count limit in appends (at least 64), never per append. No TTL index: FerretDB rejects them.
 * - `nextPosition` numbers the messages of a route that has no positions of its own (the local route) in this
 *   process: on from the highest position stored for the destination, looked up once (so a restarted node goes on
 *   where it stopped), then counted here. Routes that share history across nodes (Kafka) bring their own.
 */
export class MongoHistoryStore implements HistoryStore {
  readonly name = 'mongo';
  readonly retention: HistoryRetention;
  #client: MongoClient;
  #ownsClient: boolean;
  #db: Db;
  #collectionName: string;
  #log: Logger;
  #ready: Promise<Collection<HistoryDocument>> | undefined;
  #healthy = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #pruning: Promise<void> | undefined;
  /** Destinations appended to since their last prune, with how many appends. */
  #dirty = new Map<string, { vhost: string; destination: string; appends: number }>();
  #prunesInFlight = new Set<string>();
  /** The next position of each destination numbered here, once looked up in storage. */
  #next = new Map<string, number>();
  /** Destinations whose highest stored position is being looked up; callers meanwhile queue behind it, in order. */
  #seeding = new Map<string, Promise<void>>();
  #unsubscribe: () => void;

  constructor(options: MongoHistoryOptions) {
    if ((options.url === undefined) === (options.db === undefined)) {
      throw new TypeError('MongoHistoryStore needs exactly one of `url` and `db`');
    }
    const r = options.retention;
    if (!Number.isSafeInteger(r.maxPerDestination) || r.maxPerDestination < 0 || !Number.isSafeInteger(r.maxAgeMs) || r.maxAgeMs < 0) {
      throw new TypeError('retention.maxPerDestination and retention.maxAgeMs must be integers >= 0');
    }
    this.retention = Object.freeze({ maxPerDestination: r.maxPerDestination, maxAgeMs: r.maxAgeMs });
    this.#log = options.logger ?? silentLogger;
    this.#collectionName = `${options.collectionPrefix ?? ''}history`;
    if (options.db !== undefined) {
      this.#db = options.db;
      this.#client = options.db.client;
      this.#ownsClient = false;
    } else {
      const url = options.url as string;
      this.#client = new MongoClient(url, {
        serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? MONGO_HISTORY_DEFAULTS.serverSelectionTimeoutMs,
        heartbeatFrequencyMS: options.heartbeatMs ?? MONGO_HISTORY_DEFAULTS.heartbeatMs,
        socketTimeoutMS: options.socketTimeoutMs ?? MONGO_HISTORY_DEFAULTS.socketTimeoutMs,
        connectTimeoutMS: options.serverSelectionTimeoutMs ?? MONGO_HISTORY_DEFAULTS.serverSelectionTimeoutMs,
      });
      this.#db = this.#client.db(options.dbName ?? databaseInUrl(url) ?? MONGO_HISTORY_DEFAULTS.dbName);
      this.#ownsClient = true;
    }
    this.#unsubscribe = this.#watchConnection();
    const interval = options.pruneIntervalMs ?? MONGO_HISTORY_DEFAULTS.pruneIntervalMs;
    if (interval > 0 && (r.maxAgeMs > 0 || r.maxPerDestination > 0)) {
      this.#timer = setInterval(() => {
        this.prune().catch((error: unknown) => this.#log.warn({ err: error }, 'history prune failed; retrying at the next interval'));
      }, interval);
      this.#timer.unref();
    }
    // Connect now, so `healthy` says something before the first message; failures surface on first use.
    this.#collection().catch((error: unknown) =>
      this.#log.warn({ err: error }, 'mongodb not reachable yet; history operations will retry'),
    );
  }

  get healthy(): boolean {
    return this.#healthy && !this.#closed;
  }

  /** Healthy follows the driver's own server monitoring, and the outcome of every operation. */
  #watchConnection(): () => void {
    const client = this.#client;
    const up = (): void => this.#setHealthy(true);
    const down = (): void => this.#setHealthy(false);
    const changed = (event: { newDescription: { type: string } }): void => this.#setHealthy(event.newDescription.type !== 'Unknown');
    client.on('serverHeartbeatSucceeded', up);
    client.on('serverHeartbeatFailed', down);
    client.on('serverDescriptionChanged', changed);
    client.on('topologyClosed', down);
    return () => {
      client.off('serverHeartbeatSucceeded', up);
      client.off('serverHeartbeatFailed', down);
      client.off('serverDescriptionChanged', changed);
      client.off('topologyClosed', down);
    };
  }

  #setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    if (healthy) this.#log.info({ collection: this.#collectionName }, 'mongodb history reachable');
    else if (!this.#closed) this.#log.warn({ collection: this.#collectionName }, 'mongodb history unreachable');
  }

  /** The collection, once connected and indexed; a failed attempt is forgotten so the next call tries again. */
  #collection(): Promise<Collection<HistoryDocument>> {
    if (this.#closed) return Promise.reject(new BridgeError('ERR_HISTORY_CLOSED', 'mongodb history store is closed', false));
    this.#ready ??= (async () => {
      try {
        if (this.#ownsClient) await this.#client.connect();
        const collection = this.#db.collection<HistoryDocument>(this.#collectionName);
        try {
          await collection.createIndex({ vhost: 1, destination: 1, position: 1 });
        } catch (error) {
          // Reads work without it, only slower (an existing index under another name, say, or no privilege).
          if (isRetriable(error)) throw error;
          this.#log.warn({ err: error, collection: this.#collectionName }, 'could not create the history index; reads will scan');
        }
        this.#setHealthy(true);
        return collection;
      } catch (error) {
        this.#ready = undefined;
        throw this.#wrap(error, 'connect');
      }
    })();
    return this.#ready;
  }

  /** Runs one operation, keeping `healthy` in step and every failure a BridgeError. */
  async #run<T>(action: string, operation: (collection: Collection<HistoryDocument>) => Promise<T>): Promise<T> {
    const collection = await this.#collection();
    try {
      const result = await operation(collection);
      this.#setHealthy(true);
      return result;
    } catch (error) {
      throw this.#wrap(error, action);
    }
  }

  #wrap(error: unknown, action: string): BridgeError {
    if (error instanceof BridgeError) return error;
    const retriable = !this.#closed && isRetriable(error);
    if (retriable) this.#setHealthy(false);
    const message = error instanceof Error ? error.message : String(error);
    return new BridgeError(
      retriable ? 'ERR_HISTORY_UNAVAILABLE' : 'ERR_HISTORY_FAILED',
      `mongodb history ${action} failed: ${message}`,
      retriable,
      { cause: error },
    );
  }

  /**
   * Synchronous once the destination's highest stored position is known; the first calls for a destination wait
   * for that one lookup, and get their positions in call order (the continuations of one Promise run in order).
   */
  nextPosition(vhost: string, destination: string): number | Promise<number> {
    const key = streamKey(vhost, destination);
    const next = this.#next.get(key);
    if (next !== undefined) {
      this.#next.set(key, next + 1);
      return next;
    }
    let seeding = this.#seeding.get(key);
    if (seeding === undefined) {
      seeding = this.#positionOf({ vhost, destination }, { sort: { position: -1 } })
        .then((last) => this.#seed(key, last === undefined ? 0 : last + 1))
        .finally(() => this.#seeding.delete(key));
      this.#seeding.set(key, seeding);
    }
    return seeding.then(() => this.nextPosition(vhost, destination));
  }

  #seed(key: string, next: number): void {
    this.#next.set(key, next);
    // Bounded like every per-destination map: the destination first numbered is forgotten (and looked up) first.
    if (this.#next.size > MAX_TRACKED_DESTINATIONS) {
      const oldest = this.#next.keys().next().value;
      if (oldest !== undefined) this.#next.delete(oldest);
    }
  }

  async appendMany(records: readonly HistoryRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    const documents = records.map(toDocument);
    let stored = 0;
    try {
      await this.#run('append', async (c) => {
        // Ordered inserts stop at the first failure, so what is stored is always a prefix of the list; an id
        // stored before (a replayed Kafka record) is skipped and the rest inserted.
        while (stored < documents.length) {
          try {
            await c.insertMany(documents.slice(stored), { ordered: true });
            stored = documents.length;
          } catch (error) {
            const first = firstWriteError(error);
            if (first === undefined) throw error;
            stored += first.index;
            if (first.code !== DUPLICATE_KEY) throw error;
            stored += 1;
            // A replayed batch (a partition's new owner reading again from the last commit after a node died)
            // starts with a run of records stored before: skip that run with one query, not one failed insert each.
            stored += await storedRun(c, documents, stored);
          }
        }
      });
    } catch (error) {
      if (stored === 0) throw error;
    }
    for (const r of records.slice(0, stored)) this.#appended(r.vhost, r.destination);
    return stored;
  }

  async append(record: HistoryRecord): Promise<void> {
    const document = toDocument(record);
    await this.#run('append', async (c) => {
      try {
        await c.insertOne(document);
      } catch (error) {
        if (!(error instanceof MongoError && error.code === DUPLICATE_KEY)) throw error;
      }
    });
    this.#appended(record.vhost, record.destination);
  }

  #appended(vhost: string, destination: string): void {
    const max = this.retention.maxPerDestination;
    if (max === 0) return;
    const key = streamKey(vhost, destination);
    let dirty = this.#dirty.get(key);
    if (dirty === undefined) {
      dirty = { vhost, destination, appends: 0 };
      this.#dirty.set(key, dirty);
    }
    // Outgrown by an eighth (as the in-memory store trims, but never per append): prune it now, in the background.
    if (++dirty.appends >= Math.max(PRUNE_AFTER_APPENDS, max >> 3) && !this.#prunesInFlight.has(key)) {
      this.#dirty.delete(key);
      this.#prunesInFlight.add(key);
      this.#pruneCount(vhost, destination)
        .catch((error: unknown) => {
          this.#markDirty(key, vhost, destination);
          this.#log.warn({ err: error, vhost, destination }, 'history prune failed; retrying later');
        })
        .finally(() => this.#prunesInFlight.delete(key));
    }
  }

  #markDirty(key: string, vhost: string, destination: string): void {
    if (!this.#dirty.has(key)) this.#dirty.set(key, { vhost, destination, appends: 0 });
  }

  /**
   * Enforces retention in storage now: deletes every document older than `maxAgeMs`, and for each destination
   * appended to since the last prune, every document below its `maxPerDestination` newest.
   */
  prune(): Promise<void> {
    this.#pruning ??= this.#pruneAll().finally(() => {
      this.#pruning = undefined;
    });
    return this.#pruning;
  }

  async #pruneAll(): Promise<void> {
    const { maxAgeMs } = this.retention;
    if (maxAgeMs > 0) {
      const cutoff = new Date(Date.now() - maxAgeMs);
      await this.#run('prune', (c) => c.deleteMany({ time: { $lt: cutoff } }));
    }
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    for (let i = 0; i < dirty.length; i++) {
      const [key, d] = dirty[i] as [string, { vhost: string; destination: string }];
      try {
        await this.#pruneCount(d.vhost, d.destination);
      } catch (error) {
        for (const [k, rest] of dirty.slice(i)) this.#markDirty(k, rest.vhost, rest.destination);
        this.#markDirty(key, d.vhost, d.destination);
        throw error;
      }
    }
  }

  async #pruneCount(vhost: string, destination: string): Promise<void> {
    const floor = await this.#countFloor(vhost, destination);
    if (floor === undefined) return;
    await this.#run('prune', (c) => c.deleteMany({ vhost, destination, position: { $lt: floor } }));
  }

  /** The position of the `maxPerDestination`-th newest record: nothing below it is retained. */
  async #countFloor(vhost: string, destination: string): Promise<number | undefined> {
    const max = this.retention.maxPerDestination;
    if (max === 0) return undefined;
    return this.#positionOf({ vhost, destination }, { sort: { position: -1 }, skip: max - 1 });
  }

  async read(vhost: string, destination: string, query: HistoryQuery, limit: number): Promise<HistoryRecord[]> {
    if (limit <= 0) return [];
    const base: Filter<HistoryDocument> = { vhost, destination };
    const { maxAgeMs, maxPerDestination } = this.retention;
    if (maxAgeMs > 0) base.time = { $gte: new Date(Date.now() - maxAgeMs) };

    if ('last' in query) {
      let n = Math.min(query.last, limit);
      if (maxPerDestination > 0) n = Math.min(n, maxPerDestination);
      if (n <= 0) return [];
      const newest = await this.#find(base, { sort: { position: -1 }, limit: n });
      return newest.reverse();
    }

    const floor = await this.#countFloor(vhost, destination);
    const conditions: Filter<HistoryDocument>[] = [base];
    if (floor !== undefined) conditions.push({ position: { $gte: floor } });
    if ('afterId' in query) {
      const after = await this.#afterPosition(vhost, destination, query.afterId);
      if (after !== undefined) conditions.push({ position: { $gt: after } });
    } else if ('fromPosition' in query) {
      conditions.push({ position: { $gte: query.fromPosition } });
    } else if ('fromTime' in query) {
      // As selectRecords: from the first record (in position order) accepted at or after the time, onwards.
      const first = await this.#positionOf(
        { $and: [...conditions, { time: { $gte: new Date(query.fromTime) } }] },
        { sort: { position: 1 } },
      );
      if (first === undefined) return [];
      conditions.push({ position: { $gte: first } });
    } else if (!('all' in query)) {
      const never: never = query;
      throw new TypeError(`unknown history query ${JSON.stringify(never)}`);
    }
    return this.#find(conditions.length === 1 ? base : { $and: conditions }, { sort: { position: 1 }, limit });
  }

  /**
   * The position after which an `afterId` read starts: the record's own, if stored; the offset of a Kafka id
   * (`<topic>-<partition>-<offset>`) we no longer hold; otherwise undefined (everything retained).
   */
  async #afterPosition(vhost: string, destination: string, id: string): Promise<number | undefined> {
    const at = await this.#positionOf({ _id: id, vhost, destination }, {});
    if (at !== undefined) return at;
    const kafka = KAFKA_ID.exec(id);
    return kafka === null ? undefined : Number(kafka[1]);
  }

  /** The position of the first document the filter and order select, if any. */
  async #positionOf(filter: Filter<HistoryDocument>, options: FindOptions): Promise<number | undefined> {
    const found = await this.#run('read', (c) => c.find(filter, { ...options, limit: 1, projection: { position: 1 } }).toArray());
    const position: unknown = found[0]?.position;
    return typeof position === 'number' ? position : undefined;
  }

  async #find(filter: Filter<HistoryDocument>, options: FindOptions): Promise<HistoryRecord[]> {
    const documents = await this.#run('read', (c) => c.find(filter, options).toArray());
    const records: HistoryRecord[] = [];
    for (const document of documents) {
      const record = toRecord(document);
      if (record === undefined) {
        this.#log.warn({ id: String(document._id) }, 'skipped a malformed history document');
        continue;
      }
      records.push(record);
    }
    return records;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#pruning?.catch(() => undefined);
    this.#unsubscribe();
    this.#healthy = false;
    if (this.#ownsClient) await this.#client.close();
  }
}

function streamKey(vhost: string, destination: string): string {
  return `${vhost}\u0000${destination}`;
}

/** Documents come from the network: checked field by field before they become records. */
function toRecord(document: unknown): HistoryRecord | undefined {
  if (typeof document !== 'object' || document === null) return undefined;
  const d = document as Partial<Record<keyof HistoryDocument, unknown>>;
  if (
    typeof d._id !== 'string' ||
    typeof d.vhost !== 'string' ||
    typeof d.destination !== 'string' ||
    typeof d.position !== 'number' ||
    typeof d.origin !== 'string' ||
    !(d.time instanceof Date) ||
    !(d.body instanceof Binary) ||
    !Array.isArray(d.headers) ||
    d.headers.length % 2 !== 0
  )
    return undefined;
  const flat: unknown[] = d.headers;
  const headers: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i];
    const value = flat[i + 1];
    if (typeof name !== 'string' || typeof value !== 'string') return undefined;
    headers.push([name, value]);
  }
  const bytes = d.body.buffer;
  return {
    id: d._id,
    origin: d.origin,
    vhost: d.vhost,
    destination: d.destination,
    position: d.position,
    headers,
    body: Buffer.from(bytes.buffer, bytes.byteOffset, d.body.position),
    time: d.time.getTime(),
  };
}

/** Network failures, servers that are not reachable or are going away: worth retrying with backoff. */
function isRetriable(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (!(error instanceof MongoError)) return false;
  if (error.hasErrorLabel('RetryableWriteError') || error.hasErrorLabel('ResetPool')) return true;
  // FerretDB on SQLite answers concurrent writers with an InternalError "database is locked (5) (SQLITE_BUSY)":
  // contention, not a bad record, so worth another try (otherwise the record is dropped from history for good).
  if (/SQLITE_BUSY|database is locked/.test(error.message)) return true;
  return typeof error.code === 'number' && RETRIABLE_CODES.has(error.code);
}

/** The database a `mongodb://host/db?…` URL names, if any. */
function databaseInUrl(url: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?#]+)/.exec(url);
  return m?.[1] === undefined ? undefined : decodeURIComponent(m[1]);
}

function toDocument(record: HistoryRecord): HistoryDocument {
  const flat: string[] = [];
  for (const [name, value] of record.headers) flat.push(name, value);
  return {
    _id: record.id,
    vhost: record.vhost,
    destination: record.destination,
    position: record.position,
    origin: record.origin,
    headers: flat,
    body: new Binary(record.body),
    time: new Date(record.time),
  };
}

/** How many of `documents`, from index `from` on, are stored already, counted up to the first one that is not. */
async function storedRun(c: Collection<HistoryDocument>, documents: readonly HistoryDocument[], from: number): Promise<number> {
  const ids = documents.slice(from).map((d) => d._id);
  if (ids.length === 0) return 0;
  const found = new Set<string>();
  for await (const d of c.find({ _id: { $in: ids } }, { projection: { _id: 1 } })) found.add(d._id);
  let run = 0;
  while (run < ids.length && found.has(ids[run] as string)) run++;
  return run;
}

/** The first failed write of an ordered bulk insert: its index in the batch and its code. */
function firstWriteError(error: unknown): { index: number; code: number | undefined } | undefined {
  if (!(error instanceof MongoBulkWriteError)) return undefined;
  // writeErrors is typed one-or-many; flat() gives WriteError[] where Array.isArray would give any[].
  const first = [error.writeErrors].flat()[0];
  if (first === undefined) return undefined;
  return { index: first.index, code: typeof first.code === 'number' ? first.code : undefined };
}
