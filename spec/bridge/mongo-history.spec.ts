import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Binary, MongoClient } from 'mongodb';
import { silentLogger } from '../../broker/ports/logger.js';
import { BridgeError, backoffMs } from '../../broker/ports/bus.js';
import { CachedHistoryStore } from '../../bridge/cached-history.js';
import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import type { HistoryQuery, HistoryRecord, HistoryRetention, HistoryStore } from '../../broker/ports/history.js';
import { MongoHistoryStore, type MongoHistoryOptions } from '../../bridge/mongo-history.js';
import { connectRedis, type RedisClient } from '../../bridge/redis-client.js';
import { startBroker, uniqueName } from '../support/broker.js';
import { connectedTcp } from '../support/raw.js';
import { expectQuiet, nextMessage, publish, subscribe } from '../broker/harness.js';
import { requireService } from '../support/services.js';
import { historyConformance } from './history-conformance.js';

const MONGO_URL = process.env.STOMPEDE_TEST_MONGO_URL;
const REDIS_URL = process.env.STOMPEDE_TEST_REDIS_URL;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SERVICES = process.env.STOMPEDE_TEST_SERVICES_SCRIPT ?? resolve(ROOT, 'infra/services.sh');
const NO_LIMITS: HistoryRetention = { maxPerDestination: 0, maxAgeMs: 0 };

/** One collection per run (dropped after), one Redis key space per run (deleted after). */
const PREFIX = `t${process.pid.toString(36)}${Date.now().toString(36)}_`;
const CLUSTER = `hist${process.pid.toString(36)}${Date.now().toString(36)}`;
const DB_NAME = 'stompede_test';

function mongoStore(options: Partial<MongoHistoryOptions> = {}): MongoHistoryStore {
  return new MongoHistoryStore({
    url: MONGO_URL as string,
    dbName: DB_NAME,
    collectionPrefix: PREFIX,
    retention: NO_LIMITS,
    pruneIntervalMs: 0,
    ...options,
  });
}

/** A cached store whose Redis connection is up, so reads really try the cache. */
async function cachedStore(inner: HistoryStore, cacheSize = 8): Promise<CachedHistoryStore> {
  const store = new CachedHistoryStore({ url: REDIS_URL as string, clusterName: CLUSTER, cacheSize, inner });
  await until(() => store.cacheHealthy, 5_000, 'the history cache to connect to Redis');
  return store;
}

async function deleteRedisKeys(url: string, pattern: string): Promise<void> {
  const client = await connectRedis(url, silentLogger, 'spec-cleanup');
  try {
    let cursor = '0';
    do {
      const reply = (await client.sendCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000'])) as [string, string[]];
      cursor = reply[0];
      if (reply[1].length > 0) await client.sendCommand(['DEL', ...reply[1]]);
    } while (cursor !== '0');
  } finally {
    await client.close();
  }
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function services(verb: 'kill' | 'start', name: 'mongo'): Promise<void> {
  await promisify(execFile)(SERVICES, [verb, name], { cwd: ROOT, timeout: 120_000 });
}

/** Retries a retriable failure with the project's backoff until it succeeds or the time is up. */
async function eventually<T>(operation: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!(error instanceof BridgeError && error.retriable) || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, backoffMs(Math.min(attempt, 4))));
    }
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function record(destination: string, position: number, over: Partial<HistoryRecord> = {}): HistoryRecord {
  return {
    id: uniqueName('m'),
    origin: 'node-a',
    vhost: '/',
    destination,
    position,
    headers: [['n', String(position)]],
    body: Buffer.from(`body ${position}`),
    time: Date.now(),
    ...over,
  };
}

/** An inner store that counts the reads it answers. */
class CountingStore implements HistoryStore {
  readonly name = 'counting';
  readonly inner = new InMemoryHistoryStore(NO_LIMITS);
  reads = 0;
  get healthy(): boolean {
    return true;
  }
  append(r: HistoryRecord): Promise<void> {
    return this.inner.append(r);
  }
  appendMany(records: readonly HistoryRecord[]): Promise<number> {
    return this.inner.appendMany(records);
  }
  read(vhost: string, destination: string, query: HistoryQuery, limit: number): Promise<HistoryRecord[]> {
    this.reads++;
    return this.inner.read(vhost, destination, query, limit);
  }
  nextPosition(vhost: string, destination: string): number {
    return this.inner.nextPosition(vhost, destination);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A Redis client that can be made to fail every command, as during an outage, without stopping Redis. */
function flaky(real: RedisClient): RedisClient & { failing: boolean } {
  const client = {
    failing: false,
    get isReady() {
      return real.isReady;
    },
    connect: () => real.connect(),
    on: (event: never, listener: never) => real.on(event, listener),
    duplicate: () => real.duplicate(),
    publish: (channel: string, message: Buffer) => real.publish(channel, message),
    subscribe: real.subscribe.bind(real),
    unsubscribe: real.unsubscribe.bind(real),
    pSubscribe: real.pSubscribe.bind(real),
    pUnsubscribe: real.pUnsubscribe.bind(real),
    sendCommand: (args: (string | Buffer)[], options?: object) =>
      client.failing ? Promise.reject(new Error('simulated redis outage')) : real.sendCommand(args, options),
    close: () => real.close(),
    destroy: () => real.destroy(),
  };
  return client;
}

describe('bridge › history › mongo', function () {
  this.timeout(30_000);

  before(() => {
    requireService('mongo');
  });

  after(async () => {
    if (MONGO_URL === undefined) return;
    const client = new MongoClient(MONGO_URL, { serverSelectionTimeoutMS: 5_000 });
    try {
      await client
        .db(DB_NAME)
        .collection(`${PREFIX}history`)
        .drop()
        .catch(() => undefined);
    } finally {
      await client.close();
    }
    if (REDIS_URL !== undefined) await deleteRedisKeys(REDIS_URL, `${CLUSTER}:*`);
  });

  historyConformance('MongoHistoryStore', async (retention = NO_LIMITS) => mongoStore({ retention }), {
    persistent: true,
    resumesKafkaIds: true,
    prune: (store) => (store instanceof MongoHistoryStore ? store.prune() : Promise.resolve()),
  });

  describe('MongoHistoryStore', () => {
    const opened: HistoryStore[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });
    const open = (options: Partial<MongoHistoryOptions> = {}): MongoHistoryStore => {
      const store = mongoStore(options);
      opened.push(store);
      return store;
    };

    it('rejects options without exactly one of url and db', () => {
      expect(() => new MongoHistoryStore({ retention: NO_LIMITS })).to.throw(TypeError, /exactly one of `url` and `db`/);
      const client = new MongoClient(MONGO_URL as string);
      expect(() => new MongoHistoryStore({ url: MONGO_URL as string, db: client.db('x'), retention: NO_LIMITS })).to.throw(TypeError);
      expect(() => new MongoHistoryStore({ url: MONGO_URL as string, retention: { maxPerDestination: -1, maxAgeMs: 0 } })).to.throw(
        TypeError,
      );
    });

    it('stores one document per message: _id the message id, headers flat, body binary, time a date, and an index for range reads', async () => {
      const store = open();
      const destination = `/topic/${uniqueName()}`;
      const r = record(destination, 3, {
        headers: [
          ['b', '1'],
          ['a', '2'],
        ],
        body: Buffer.from([0, 1, 2]),
        time: 1_700_000_000_123,
      });
      await store.append(r);
      await store.append(r);
      const client = new MongoClient(MONGO_URL as string);
      try {
        const collection = client.db(DB_NAME).collection(`${PREFIX}history`);
        const docs = await collection.find({ destination }).toArray();
        expect(docs).to.have.length(1);
        const doc = docs[0] as Record<string, unknown>;
        expect(doc._id).to.equal(r.id);
        expect(doc.headers).to.deep.equal(['b', '1', 'a', '2']);
        expect(doc.body).to.be.instanceOf(Binary);
        expect(doc.time).to.be.instanceOf(Date);
        expect((doc.time as Date).getTime()).to.equal(r.time);
        expect(Object.keys(doc).sort()).to.deep.equal(['_id', 'body', 'destination', 'headers', 'origin', 'position', 'time', 'vhost']);
        const indexes = await collection.indexes();
        expect(indexes.map((i) => i.key)).to.deep.include({ vhost: 1, destination: 1, position: 1 });
      } finally {
        await client.close();
      }
    });

    it('prune() deletes the documents beyond the count limit and older than the age limit, and nothing else', async () => {
      const store = open({ retention: { maxPerDestination: 4, maxAgeMs: 60_000 } });
      const now = Date.now();
      const full = `/topic/${uniqueName()}`;
      const aged = `/topic/${uniqueName()}`;
      const kept = `/topic/${uniqueName()}`;
      for (let p = 0; p < 10; p++) await store.append(record(full, p, { time: now }));
      for (let p = 0; p < 3; p++) await store.append(record(aged, p, { time: now - 600_000 + p }));
      await store.append(record(aged, 3, { time: now }));
      for (let p = 0; p < 2; p++) await store.append(record(kept, p, { time: now }));
      const client = new MongoClient(MONGO_URL as string);
      try {
        const collection = client.db(DB_NAME).collection(`${PREFIX}history`);
        const count = async (destination: string): Promise<number[]> =>
          (await collection.find({ destination }).sort({ position: 1 }).toArray()).map((d) => d.position as number);
        expect(await count(full)).to.have.length(10);
        await store.prune();
        expect(await count(full)).to.deep.equal([6, 7, 8, 9]);
        expect(await count(aged)).to.deep.equal([3]);
        expect(await count(kept)).to.deep.equal([0, 1]);
      } finally {
        await client.close();
      }
    });

    it('prunes on its timer', async () => {
      const store = open({ retention: { maxPerDestination: 2, maxAgeMs: 0 }, pruneIntervalMs: 100 });
      const destination = `/topic/${uniqueName()}`;
      for (let p = 0; p < 6; p++) await store.append(record(destination, p));
      const client = new MongoClient(MONGO_URL as string);
      try {
        const collection = client.db(DB_NAME).collection(`${PREFIX}history`);
        const deadline = Date.now() + 5_000;
        while ((await collection.countDocuments({ destination })) > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(await collection.countDocuments({ destination })).to.equal(2);
      } finally {
        await client.close();
      }
    });

    it('works on a database of a client the caller owns, and leaves that client open', async () => {
      const client = new MongoClient(MONGO_URL as string);
      try {
        const store = new MongoHistoryStore({ db: client.db(DB_NAME), collectionPrefix: PREFIX, retention: NO_LIMITS, pruneIntervalMs: 0 });
        const destination = `/topic/${uniqueName()}`;
        await store.append(record(destination, 0));
        expect(await store.read('/', destination, { all: true }, 10)).to.have.length(1);
        expect(store.healthy).to.equal(true);
        await store.close();
        expect(await client.db(DB_NAME).collection(`${PREFIX}history`).countDocuments({ destination })).to.equal(1);
      } finally {
        await client.close();
      }
    });

    it('fails with a non-retriable BridgeError once closed', async () => {
      const store = open();
      await store.close();
      const error = await rejection(store.append(record(`/topic/${uniqueName()}`, 0)));
      expect(error).to.be.instanceOf(BridgeError);
      expect((error as BridgeError).retriable).to.equal(false);
      expect(store.healthy).to.equal(false);
    });

    it('fails fast with a retriable BridgeError when no server answers', async () => {
      const store = new MongoHistoryStore({
        url: 'mongodb://127.0.0.1:9/?directConnection=true',
        retention: NO_LIMITS,
        serverSelectionTimeoutMs: 500,
      });
      opened.push(store);
      const t0 = Date.now();
      const error = await rejection(store.append(record(`/topic/${uniqueName()}`, 0)));
      expect(Date.now() - t0).to.be.below(3_000);
      expect(error).to.be.instanceOf(BridgeError);
      expect((error as BridgeError).retriable).to.equal(true);
      expect((error as BridgeError).code).to.equal('ERR_HISTORY_UNAVAILABLE');
      expect(store.healthy).to.equal(false);
    });
  });

  describe('CachedHistoryStore (Redis in front of MongoDB)', function () {
    before(() => {
      requireService('redis');
    });

    historyConformance('CachedHistoryStore(redis, mongo)', async (retention = NO_LIMITS) => cachedStore(mongoStore({ retention })), {
      persistent: true,
      resumesKafkaIds: true,
      prune: (store) =>
        store instanceof CachedHistoryStore && store.inner instanceof MongoHistoryStore ? store.inner.prune() : Promise.resolve(),
    });

    describe('cache behaviour', () => {
      const opened: HistoryStore[] = [];
      afterEach(async () => {
        await Promise.all(opened.splice(0).map((s) => s.close()));
      });
      const open = async (inner: HistoryStore, cacheSize = 8): Promise<CachedHistoryStore> => {
        const store = await cachedStore(inner, cacheSize);
        opened.push(store);
        return store;
      };

      it('answers last N up to the cache size from Redis, and everything else from the inner store', async () => {
        const inner = new CountingStore();
        const store = await open(inner, 8);
        const destination = `/topic/${uniqueName()}`;
        for (let p = 0; p < 12; p++) await store.append(record(destination, p));
        expect((await store.read('/', destination, { last: 8 }, 100)).map((r) => r.position)).to.deep.equal([4, 5, 6, 7, 8, 9, 10, 11]);
        expect((await store.read('/', destination, { last: 3 }, 100)).map((r) => r.position)).to.deep.equal([9, 10, 11]);
        expect((await store.read('/', destination, { last: 20 }, 2)).map((r) => r.position)).to.deep.equal([10, 11]);
        expect(inner.reads).to.equal(0);
        expect(await store.read('/', destination, { last: 9 }, 100)).to.have.length(9);
        expect(await store.read('/', destination, { all: true }, 100)).to.have.length(12);
        expect(await store.read('/', destination, { fromPosition: 10 }, 100)).to.have.length(2);
        expect(inner.reads).to.equal(3);
      });

      it('answers x-resume-after (afterId) from Redis while the cache holds that id, else from the inner store', async () => {
        const inner = new CountingStore();
        const store = await open(inner, 8);
        const destination = `/topic/${uniqueName()}`;
        const records = Array.from({ length: 12 }, (_, p) => record(destination, p));
        for (const r of records) await store.append(r);
        const idOf = (p: number): string => (records[p] as HistoryRecord).id;
        const after = async (p: number, limit = 100): Promise<number[]> =>
          (await store.read('/', destination, { afterId: idOf(p) }, limit)).map((r) => r.position);
        // The cache holds positions 4..11: resuming after any of them costs no inner read.
        expect(await after(6)).to.deep.equal([7, 8, 9, 10, 11]);
        expect(await after(4)).to.deep.equal([5, 6, 7, 8, 9, 10, 11]);
        expect(await after(11)).to.deep.equal([]);
        expect(await after(5, 2)).to.deep.equal([6, 7]);
        expect(inner.reads).to.equal(0);
        // Position 3 was trimmed from the cache, and an unknown id may be anything: both ask the inner store.
        expect(await after(3)).to.deep.equal([4, 5, 6, 7, 8, 9, 10, 11]);
        expect(inner.reads).to.equal(1);
        expect(await store.read('/', destination, { afterId: 'not-a-cached-id' }, 100)).to.have.length(12);
        expect(inner.reads).to.equal(2);
        // The answer is the inner store's, record for record.
        expect(await store.read('/', destination, { afterId: idOf(7) }, 100)).to.deep.equal(
          await inner.inner.read('/', destination, { afterId: idOf(7) }, 100),
        );
      });

      it('reads the cache from the position a Kafka message-id names, and checks that the id is really there', async () => {
        const inner = new CountingStore();
        const store = await open(inner, 8);
        const destination = `/topic/${uniqueName()}`;
        const topic = uniqueName('kt');
        // Kafka ids name their offset, the position: offsets 100, 102, ... 122 (other destinations took the odd ones).
        const records = Array.from({ length: 12 }, (_, i) => record(destination, 100 + 2 * i, { id: `${topic}-3-${100 + 2 * i}` }));
        for (const r of records) await store.append(r);
        const after = async (afterId: string): Promise<number[]> =>
          (await store.read('/', destination, { afterId }, 100)).map((r) => r.position);
        expect(await after(`${topic}-3-112`)).to.deep.equal([114, 116, 118, 120, 122]);
        expect(await after(`${topic}-3-122`)).to.deep.equal([]);
        expect(inner.reads).to.equal(0);
        // Not in the cache at that position (an odd offset, or one of another partition): the inner store answers.
        for (const id of [`${topic}-3-113`, `${topic}-4-114`]) {
          const answer = (await inner.inner.read('/', destination, { afterId: id }, 100)).map((r) => r.position);
          expect(await after(id), id).to.deep.equal(answer);
        }
        expect(inner.reads).to.equal(2);
      });

      it('fills the cache from the inner store on a miss, and then answers from Redis', async () => {
        const inner = new CountingStore();
        const destination = `/topic/${uniqueName()}`;
        for (let p = 0; p < 6; p++) await inner.append(record(destination, p));
        const store = await open(inner, 8);
        expect((await store.read('/', destination, { last: 4 }, 100)).map((r) => r.position)).to.deep.equal([2, 3, 4, 5]);
        expect(inner.reads).to.equal(1);
        expect((await store.read('/', destination, { last: 4 }, 100)).map((r) => r.position)).to.deep.equal([2, 3, 4, 5]);
        expect((await store.read('/', destination, { last: 8 }, 100)).map((r) => r.position)).to.deep.equal([0, 1, 2, 3, 4, 5]);
        expect(inner.reads).to.equal(2);
        // The second miss found fewer than it asked for, so the cache now knows it holds all there is.
        expect((await store.read('/', destination, { last: 8 }, 100)).map((r) => r.position)).to.deep.equal([0, 1, 2, 3, 4, 5]);
        const empty = `/topic/${uniqueName()}`;
        expect(await store.read('/', empty, { last: 5 }, 100)).to.deep.equal([]);
        await store.append(record(empty, 0));
        expect((await store.read('/', empty, { last: 5 }, 100)).map((r) => r.position)).to.deep.equal([0]);
        expect(inner.reads).to.equal(3);
      });

      it('never fails an append because of Redis, and repairs what Redis missed once it answers again', async () => {
        const inner = new CountingStore();
        const real = await connectRedis(REDIS_URL as string, silentLogger, 'spec');
        const client = flaky(real);
        try {
          const store = new CachedHistoryStore({ client, clusterName: CLUSTER, cacheSize: 8, inner });
          opened.push(store);
          const destination = `/topic/${uniqueName()}`;
          const key = `${CLUSTER}:recent:/:${destination}`;
          for (let p = 0; p < 3; p++) await store.append(record(destination, p));
          client.failing = true;
          for (let p = 3; p < 6; p++) await store.append(record(destination, p));
          expect(store.cacheHealthy).to.equal(false);
          expect(store.repairsPending).to.equal(1);
          // The cache lacks 3..5: reads of that destination come from the inner store, complete.
          expect((await store.read('/', destination, { last: 6 }, 100)).map((r) => r.position)).to.deep.equal([0, 1, 2, 3, 4, 5]);
          expect(inner.reads).to.equal(1);
          expect(await real.sendCommand(['ZCARD', key])).to.equal(3);

          client.failing = false;
          await store.append(record(destination, 6));
          expect(store.cacheHealthy).to.equal(true);
          await until(() => store.repairsPending === 0, 5_000, 'the cache to be repaired');
          const reads = inner.reads;
          expect((await store.read('/', destination, { last: 7 }, 100)).map((r) => r.position)).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
          expect((await store.read('/', destination, { last: 2 }, 100)).map((r) => r.position)).to.deep.equal([5, 6]);
          expect(inner.reads).to.equal(reads);
          // All 7 records, and the marker saying they are all there is.
          expect(await real.sendCommand(['ZCARD', key])).to.equal(8);
          expect(await real.sendCommand(['PTTL', key]))
            .to.be.a('number')
            .greaterThan(0);
        } finally {
          await real.close();
        }
      });

      it('repairs a destination appended to before Redis was reachable', async () => {
        const inner = new CountingStore();
        const real = await connectRedis(REDIS_URL as string, silentLogger, 'spec');
        const client = flaky(real);
        try {
          const store = new CachedHistoryStore({ client, clusterName: CLUSTER, cacheSize: 4, inner });
          opened.push(store);
          const destination = `/topic/${uniqueName()}`;
          client.failing = true;
          for (let p = 0; p < 6; p++) await store.append(record(destination, p));
          client.failing = false;
          // The first read repairs it from the inner store and answers from that repair.
          expect((await store.read('/', destination, { last: 3 }, 100)).map((r) => r.position)).to.deep.equal([3, 4, 5]);
          expect(inner.reads).to.equal(1);
          expect(store.repairsPending).to.equal(0);
          expect((await store.read('/', destination, { last: 4 }, 100)).map((r) => r.position)).to.deep.equal([2, 3, 4, 5]);
          expect(inner.reads).to.equal(1);
        } finally {
          await real.close();
        }
      });

      it('stages records in Redis ahead of the inner store: every read has them at once, on any node', async () => {
        const inner = new CountingStore();
        const store = await open(inner, 8);
        const reader = await open(inner, 8);
        const destination = `/topic/${uniqueName()}`;
        const topic = uniqueName('kt');
        const records = Array.from({ length: 14 }, (_, p) => record(destination, p, { id: `${topic}-0-${p}` }));
        const idOf = (p: number): string => (records[p] as HistoryRecord).id;
        for (const r of records.slice(0, 10)) await store.append(r);
        expect(await store.stageMany(records.slice(10))).to.deep.equal(['staged', 'staged', 'staged', 'staged']);
        expect(store.ahead, 'owed to the inner store').to.equal(4);
        expect(await inner.inner.read('/', destination, { all: true }, 100), 'not in the inner store yet').to.have.length(10);
        const positions = async (query: HistoryQuery, limit = 100): Promise<number[]> =>
          (await reader.read('/', destination, query, limit)).map((r) => r.position);
        const all = Array.from({ length: 14 }, (_, p) => p);
        expect(await positions({ last: 4 })).to.deep.equal([10, 11, 12, 13]);
        expect(await positions({ afterId: idOf(9) }), 'x-resume-after answered by the cache').to.deep.equal([10, 11, 12, 13]);
        expect(inner.reads).to.equal(0);
        // Read from the inner store (the cache no longer holds position 1, or holds too few), completed from the cache.
        expect(await positions({ afterId: idOf(1) }), 'x-resume-after answered by the inner store').to.deep.equal(all.slice(2));
        expect(await positions({ afterId: idOf(1) }, 3)).to.deep.equal([2, 3, 4]);
        expect(await positions({ last: 12 })).to.deep.equal(all.slice(2));
        expect(await positions({ last: 20 }, 5)).to.deep.equal([9, 10, 11, 12, 13]);
        expect(await positions({ fromPosition: 11 })).to.deep.equal([11, 12, 13]);
        expect(await positions({ all: true })).to.deep.equal(all);
        expect(await positions({ all: true }, 5)).to.deep.equal([0, 1, 2, 3, 4]);
        expect(await positions({ fromTime: 0 })).to.deep.equal(all);
        expect(inner.reads, 'every read but the last N the cache holds').to.equal(7);
        // The background append: stored, no longer owed.
        expect(await store.appendMany(records.slice(10))).to.equal(4);
        expect(store.ahead).to.equal(0);
        expect(await positions({ all: true })).to.deep.equal(all);
      });

      it('keeps staged records readable however far the inner store falls behind; the next owner clears them', async () => {
        const inner = new CountingStore();
        const crashed = await open(inner, 4);
        const next = await open(inner, 4);
        const destination = `/topic/${uniqueName()}`;
        const topic = uniqueName('kt');
        const records = Array.from({ length: 10 }, (_, p) => record(destination, p, { id: `${topic}-0-${p}` }));
        const idOf = (p: number): string => (records[p] as HistoryRecord).id;
        // More than the cache keeps (4), none in the inner store yet.
        expect(await crashed.stageMany(records)).to.deep.equal(Array(10).fill('staged'));
        const positions = async (query: HistoryQuery, limit = 100): Promise<number[]> =>
          (await next.read('/', destination, query, limit)).map((r) => r.position);
        expect(await positions({ all: true })).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(await positions({ afterId: idOf(1) })).to.deep.equal([2, 3, 4, 5, 6, 7, 8, 9]);
        expect(await positions({ last: 8 })).to.deep.equal([2, 3, 4, 5, 6, 7, 8, 9]);
        expect(await positions({ afterId: idOf(7) }), 'from the cache').to.deep.equal([8, 9]);
        // The partition's next owner reads the records again, stages them again, stores them: the set is cleared.
        expect(await next.stageMany(records), 'still owed: staged again').to.deep.equal(Array(10).fill('staged'));
        expect(next.ahead).to.equal(10);
        expect(await next.appendMany(records)).to.equal(10);
        expect(next.ahead).to.equal(0);
        const client = await connectRedis(REDIS_URL as string, silentLogger, 'spec');
        try {
          expect(await client.sendCommand(['ZCARD', `${CLUSTER}:ahead:/:${destination}`])).to.equal(0);
        } finally {
          await client.close();
        }
        expect(await positions({ all: true })).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        // Read once more (another rebalance): all stored already, also what the cache (4) no longer holds.
        const third = await open(inner, 4);
        expect(await third.stageMany(records)).to.deep.equal(Array(10).fill('stored'));
        expect(third.ahead).to.equal(0);
        // Stored by someone else than the stager (only the cache knows): the cache holds it, the ahead set does not.
        const late = record(destination, 10, { id: `${topic}-0-10` });
        await inner.append(late);
        await third.append(late);
        expect(await third.stageMany([late])).to.deep.equal(['stored']);
      });

      it('stages nothing while Redis fails (the consumer then writes the inner store first)', async () => {
        const real = await connectRedis(REDIS_URL as string, silentLogger, 'spec');
        const client = flaky(real);
        try {
          const store = new CachedHistoryStore({ client, clusterName: CLUSTER, cacheSize: 8, inner: new CountingStore() });
          opened.push(store);
          const destination = `/topic/${uniqueName()}`;
          const topic = uniqueName('kt');
          client.failing = true;
          expect(await store.stageMany([record(destination, 0, { id: `${topic}-0-0` })])).to.deep.equal([]);
          // Appended while the cache failed: the destination is repaired before it is staged into again.
          await store.append(record(destination, 1, { id: `${topic}-0-1` }));
          client.failing = false;
          expect(await store.stageMany([record(destination, 2, { id: `${topic}-0-2` })]), 'until Redis answers again').to.deep.equal([]);
          // The next command that reaches Redis (here a read, which repairs the destination) brings the cache back.
          expect((await store.read('/', destination, { last: 2 }, 100)).map((r) => r.position)).to.deep.equal([1]);
          await until(() => store.repairsPending === 0, 5_000, 'the cache to be repaired');
          expect(await store.stageMany([record(destination, 2, { id: `${topic}-0-2` })])).to.deep.equal(['staged']);
        } finally {
          await real.close();
        }
      });

      it('keeps at most cacheSize records per destination in Redis', async () => {
        const store = await open(new CountingStore(), 5);
        const destination = `/topic/${uniqueName()}`;
        for (let p = 0; p < 30; p++) await store.append(record(destination, p));
        const client = await connectRedis(REDIS_URL as string, silentLogger, 'spec');
        try {
          expect(await client.sendCommand(['ZCARD', `${CLUSTER}:recent:/:${destination}`])).to.equal(5);
        } finally {
          await client.close();
        }
      });

      it('rejects an append the inner store rejects, without caching it', async () => {
        const inner = new CountingStore();
        const store = await open(inner);
        const destination = `/topic/${uniqueName()}`;
        inner.append = () => Promise.reject(new BridgeError('ERR_TEST', 'inner down', true));
        const error = await rejection(store.append(record(destination, 0)));
        expect(error).to.be.instanceOf(BridgeError);
        const client = await connectRedis(REDIS_URL as string, silentLogger, 'spec');
        try {
          expect(await client.sendCommand(['EXISTS', `${CLUSTER}:recent:/:${destination}`])).to.equal(0);
        } finally {
          await client.close();
        }
      });
    });
  });

  describe('a broker with MongoDB history and no Kafka (issue #10)', function () {
    /** The broker's collection: `<clusterName>_history` in the database the URL names (else `stompede`). */
    const cluster = `lh${process.pid.toString(36)}${Date.now().toString(36)}`;
    after(async () => {
      if (MONGO_URL === undefined) return;
      const client = new MongoClient(MONGO_URL, { serverSelectionTimeoutMS: 5_000 });
      try {
        const db = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?#]+)/.exec(MONGO_URL)?.[1] ?? 'stompede';
        await client
          .db(decodeURIComponent(db))
          .collection(`${cluster}_history`)
          .drop()
          .catch(() => undefined);
      } finally {
        await client.close();
      }
    });

    it('stores local-route topic messages, replayed by x-history after a reconnect and after a restart', async () => {
      const topic = `/topic/${uniqueName('local')}`;
      /** What a new subscriber asking for the last 10 gets: `count` MESSAGEs, then nothing more (a RECEIPT asked after them comes next). */
      const replay = async (port: number, count: number): Promise<string[]> => {
        const sub = await connectedTcp(port);
        try {
          await subscribe(sub, topic, 's', [['x-history', '10']]);
          const texts: string[] = [];
          while (texts.length < count) texts.push((await nextMessage(sub)).text);
          await expectQuiet(sub);
          return texts;
        } finally {
          sub.close();
        }
      };
      let node = await startBroker({ mongo: MONGO_URL as string, clusterName: cluster });
      try {
        expect(node.broker.routes.route(topic).kind, 'no Kafka or Redis: the local route').to.equal('local');
        expect(node.broker.history.name).to.equal('mongo');
        const pub = await connectedTcp(node.tcpPort);
        // Each RECEIPT comes once the message is stored, so the replay below cannot race the writes.
        for (const text of ['m1', 'm2', 'm3']) await publish(pub, topic, text);
        pub.close();
        expect(await replay(node.tcpPort, 3)).to.deep.equal(['m1', 'm2', 'm3']);
        await node.close();
        // A new process on the same store numbers on after what is stored: the replay keeps the send order.
        node = await startBroker({ mongo: MONGO_URL as string, clusterName: cluster });
        const again = await connectedTcp(node.tcpPort);
        await publish(again, topic, 'm4');
        await publish(again, topic, 'm5');
        again.close();
        expect(await replay(node.tcpPort, 5)).to.deep.equal(['m1', 'm2', 'm3', 'm4', 'm5']);
      } finally {
        await node.close();
      }
    });
  });

  describe('while MongoDB is down', function () {
    this.timeout(120_000);
    const opened: HistoryStore[] = [];
    let killed = false;

    afterEach(async () => {
      if (killed) await services('start', 'mongo');
      killed = false;
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    async function kill(): Promise<void> {
      killed = true;
      await services('kill', 'mongo');
    }

    async function start(): Promise<void> {
      await services('start', 'mongo');
      killed = false;
    }

    it('rejects appends with a retriable BridgeError within a bounded time, turns unhealthy, and recovers after a restart', async () => {
      const store = mongoStore({ serverSelectionTimeoutMs: 1_500, heartbeatMs: 500 });
      opened.push(store);
      const destination = `/topic/${uniqueName()}`;
      await store.append(record(destination, 0));
      expect(store.healthy).to.equal(true);

      await kill();
      for (let p = 1; p <= 2; p++) {
        const t0 = Date.now();
        const error = await rejection(store.append(record(destination, p)));
        expect(Date.now() - t0, 'append rejected within').to.be.below(4_000);
        expect(error).to.be.instanceOf(BridgeError);
        expect((error as BridgeError).retriable, String(error)).to.equal(true);
        expect((error as BridgeError).code).to.equal('ERR_HISTORY_UNAVAILABLE');
      }
      const readError = await rejection(store.read('/', destination, { all: true }, 10));
      expect((readError as BridgeError).retriable).to.equal(true);
      expect(store.healthy).to.equal(false);

      await start();
      await eventually(() => store.append(record(destination, 3)), 20_000);
      expect(store.healthy).to.equal(true);
      // What was written before the crash survived it; nothing from the outage was stored.
      expect((await store.read('/', destination, { all: true }, 10)).map((r) => r.position)).to.deep.equal([0, 3]);
    });

    it('turns unhealthy from its own heartbeats, without an operation, and healthy again after a restart', async () => {
      const store = mongoStore({ serverSelectionTimeoutMs: 1_500, heartbeatMs: 300 });
      opened.push(store);
      await store.read('/', `/topic/${uniqueName()}`, { last: 1 }, 1);
      expect(store.healthy).to.equal(true);
      await kill();
      await until(() => !store.healthy, 5_000, 'healthy to turn false');
      await start();
      await until(() => store.healthy, 15_000, 'healthy to turn true');
    });

    it('lets the cache answer last reads while MongoDB is down', async function () {
      requireService('redis');
      const store = await cachedStore(mongoStore({ serverSelectionTimeoutMs: 1_500, heartbeatMs: 500 }), 8);
      opened.push(store);
      const destination = `/topic/${uniqueName()}`;
      for (let p = 0; p < 10; p++) await store.append(record(destination, p));

      await kill();
      expect((await store.read('/', destination, { last: 3 }, 100)).map((r) => r.position)).to.deep.equal([7, 8, 9]);
      expect((await store.read('/', destination, { last: 8 }, 100)).map((r) => r.position)).to.deep.equal([2, 3, 4, 5, 6, 7, 8, 9]);
      // More than the cache holds, or any other query, needs MongoDB.
      const error = await rejection(store.read('/', destination, { last: 9 }, 100));
      expect(error).to.be.instanceOf(BridgeError);
      expect((error as BridgeError).retriable).to.equal(true);
      expect(((await rejection(store.read('/', destination, { all: true }, 100))) as BridgeError).retriable).to.equal(true);
      const appendError = await rejection(store.append(record(destination, 10)));
      expect((appendError as BridgeError).retriable).to.equal(true);
      // A failed append reached neither store.
      expect((await store.read('/', destination, { last: 3 }, 100)).map((r) => r.position)).to.deep.equal([7, 8, 9]);
      expect(store.healthy).to.equal(false);

      await start();
      await eventually(() => store.append(record(destination, 10)), 20_000);
      expect((await store.read('/', destination, { last: 2 }, 100)).map((r) => r.position)).to.deep.equal([9, 10]);
      expect(await store.read('/', destination, { all: true }, 100)).to.have.length(11);
    });
  });
});
