import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { HistoryQuery, HistoryRecord, HistoryRetention, HistoryStore } from '../../broker/ports/history.js';
import { uniqueName } from '../support/broker.js';

/** Opens a store with the given retention (no limits when omitted); the suite closes every store it opens. */
export type MakeHistoryStore = (retention?: HistoryRetention) => Promise<HistoryStore>;

export interface HistoryCapabilities {
  /** A store opened later (on the same server) reads what an earlier, closed one wrote. */
  readonly persistent: boolean;
  /** An `afterId` of the Kafka form `<topic>-<partition>-<offset>` that is not stored resumes after that offset. */
  readonly resumesKafkaIds: boolean;
  /** Enforces retention in storage now, for stores that otherwise prune in the background. */
  readonly prune?: (store: HistoryStore) => Promise<void>;
}

const NO_LIMITS: HistoryRetention = { maxPerDestination: 0, maxAgeMs: 0 };
const BIG = 10_000;

/**
 * The HistoryStore contract, run against every backend (as aedes-persistence runs one suite per backend).
 * Every test uses destinations of its own, so stores may share a server and a collection.
 */
export function historyConformance(name: string, make: MakeHistoryStore, caps: HistoryCapabilities): void {
  describe(`HistoryStore conformance › ${name}`, function () {
    this.timeout(30_000);
    const opened: HistoryStore[] = [];
    const T0 = Date.now() - 60_000;

    async function open(retention: HistoryRetention = NO_LIMITS): Promise<HistoryStore> {
      const store = await make(retention);
      opened.push(store);
      return store;
    }

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    function record(destination: string, position: number, over: Partial<HistoryRecord> = {}): HistoryRecord {
      return {
        id: uniqueName('m'),
        origin: 'node-a',
        vhost: '/',
        destination,
        position,
        headers: [['n', String(position)]],
        body: Buffer.from(`body ${position}`),
        time: T0 + position * 1000,
        ...over,
      };
    }

    async function appendAll(store: HistoryStore, records: readonly HistoryRecord[]): Promise<void> {
      for (const r of records) await store.append(r);
    }

    /** `count` records at positions 0..count-1 on a fresh destination. */
    async function filled(store: HistoryStore, count: number): Promise<{ destination: string; records: HistoryRecord[] }> {
      const destination = `/topic/${uniqueName()}`;
      const records = Array.from({ length: count }, (_, i) => record(destination, i));
      await appendAll(store, records);
      return { destination, records };
    }

    async function read(store: HistoryStore, destination: string, query: HistoryQuery, limit = BIG, vhost = '/'): Promise<HistoryRecord[]> {
      return store.read(vhost, destination, query, limit);
    }

    const positions = (records: readonly HistoryRecord[]): number[] => records.map((r) => r.position);

    /** Records as plain data, bodies as hex: exact comparison of every field, with readable diffs. */
    const plain = (records: readonly HistoryRecord[]) =>
      records.map((r) => ({
        id: r.id,
        origin: r.origin,
        vhost: r.vhost,
        destination: r.destination,
        position: r.position,
        headers: r.headers.map(([k, v]) => [k, v]),
        body: r.body.toString('hex'),
        time: r.time,
      }));

    describe('append and read', () => {
      it('reads back every field of an appended record exactly', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const r = record(destination, 7, {
          origin: 'node-b',
          headers: [
            ['content-type', 'text/plain'],
            ['x', 'y'],
          ],
          time: T0 + 123,
        });
        await store.append(r);
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain([r]));
        expect(plain(await read(store, destination, { last: 1 }))).to.deep.equal(plain([r]));
        for (const got of await read(store, destination, { all: true })) expect(Buffer.isBuffer(got.body)).to.equal(true);
      });

      it('returns records in position order whatever order they were appended in', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        await appendAll(
          store,
          [4, 0, 3, 1, 2].map((p) => record(destination, p)),
        );
        expect(positions(await read(store, destination, { all: true }))).to.deep.equal([0, 1, 2, 3, 4]);
        expect(positions(await read(store, destination, { last: 3 }))).to.deep.equal([2, 3, 4]);
        expect(positions(await read(store, destination, { fromPosition: 2 }))).to.deep.equal([2, 3, 4]);
      });

      it('reads nothing for a destination never written, whatever the query', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        for (const q of [{ all: true }, { last: 5 }, { afterId: 'nope' }, { fromPosition: 0 }, { fromTime: 0 }] as const) {
          expect(await read(store, destination, q), JSON.stringify(q)).to.deep.equal([]);
        }
      });

      it('is healthy once it has answered', async () => {
        const store = await open();
        await filled(store, 1);
        expect(store.healthy).to.equal(true);
      });

      it('numbers positions on from the highest one appended, per destination', async () => {
        const store = await open();
        const { destination } = await filled(store, 5);
        // A store outside this process may look the highest position up first, answering with a Promise.
        expect(await store.nextPosition('/', destination)).to.equal(5);
        expect(await store.nextPosition('/', destination)).to.equal(6);
        expect(await store.nextPosition('/', `/topic/${uniqueName()}`)).to.equal(0);
      });

      it('numbers concurrent callers in call order, without gaps or repeats', async () => {
        const store = await open();
        const { destination } = await filled(store, 3);
        const got = await Promise.all([0, 1, 2, 3].map(async () => store.nextPosition('/', destination)));
        expect(got).to.deep.equal([3, 4, 5, 6]);
      });
    });

    describe('queries', () => {
      it('answers last N with the newest N, oldest first', async () => {
        const store = await open();
        const { destination } = await filled(store, 10);
        expect(positions(await read(store, destination, { last: 3 }))).to.deep.equal([7, 8, 9]);
        expect(positions(await read(store, destination, { last: 1 }))).to.deep.equal([9]);
        expect(await read(store, destination, { last: 0 })).to.deep.equal([]);
        expect(positions(await read(store, destination, { last: 50 }))).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      });

      it('caps last N at the limit, keeping the newest', async () => {
        const store = await open();
        const { destination } = await filled(store, 10);
        expect(positions(await read(store, destination, { last: 8 }, 3))).to.deep.equal([7, 8, 9]);
        expect(await read(store, destination, { last: 8 }, 0)).to.deep.equal([]);
      });

      it('answers afterId with the records after that one', async () => {
        const store = await open();
        const { destination, records } = await filled(store, 10);
        expect(positions(await read(store, destination, { afterId: (records[6] as HistoryRecord).id }))).to.deep.equal([7, 8, 9]);
        expect(positions(await read(store, destination, { afterId: (records[0] as HistoryRecord).id }))).to.deep.equal([
          1, 2, 3, 4, 5, 6, 7, 8, 9,
        ]);
        expect(await read(store, destination, { afterId: (records[9] as HistoryRecord).id })).to.deep.equal([]);
      });

      it('answers an afterId it does not hold with everything retained', async () => {
        const store = await open();
        const { destination } = await filled(store, 4);
        expect(positions(await read(store, destination, { afterId: `gone${uniqueName()}` }))).to.deep.equal([0, 1, 2, 3]);
      });

      it("answers afterId of another destination's record as an id it does not hold", async () => {
        const store = await open();
        const a = await filled(store, 4);
        const b = await filled(store, 3);
        expect(positions(await read(store, b.destination, { afterId: (a.records[2] as HistoryRecord).id }))).to.deep.equal([0, 1, 2]);
      });

      it(
        caps.resumesKafkaIds
          ? 'resumes after the offset of a Kafka id (<topic>-<partition>-<offset>) it no longer holds'
          : 'answers a Kafka id it does not hold with everything retained',
        async () => {
          const store = await open();
          const destination = `/topic/${uniqueName()}`;
          const topic = `stompede.${uniqueName()}`;
          await appendAll(
            store,
            [100, 102, 104, 106].map((p) => record(destination, p, { id: `${topic}-0-${p}` })),
          );
          expect(positions(await read(store, destination, { afterId: `${topic}-0-102` }))).to.deep.equal([104, 106]);
          const unknown = await read(store, destination, { afterId: `${topic}-0-103` });
          expect(positions(unknown)).to.deep.equal(caps.resumesKafkaIds ? [104, 106] : [100, 102, 104, 106]);
        },
      );

      it('answers fromPosition from that position on, inclusive', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        await appendAll(
          store,
          [0, 2, 4, 6].map((p) => record(destination, p)),
        );
        expect(positions(await read(store, destination, { fromPosition: 4 }))).to.deep.equal([4, 6]);
        expect(positions(await read(store, destination, { fromPosition: 3 }))).to.deep.equal([4, 6]);
        expect(positions(await read(store, destination, { fromPosition: 0 }))).to.deep.equal([0, 2, 4, 6]);
        expect(await read(store, destination, { fromPosition: 7 })).to.deep.equal([]);
      });

      it('answers fromTime from the first record accepted at or after that time', async () => {
        const store = await open();
        const { destination } = await filled(store, 10);
        expect(positions(await read(store, destination, { fromTime: T0 + 4000 }))).to.deep.equal([4, 5, 6, 7, 8, 9]);
        expect(positions(await read(store, destination, { fromTime: T0 + 4500 }))).to.deep.equal([5, 6, 7, 8, 9]);
        expect(positions(await read(store, destination, { fromTime: 0 }))).to.have.length(10);
        expect(await read(store, destination, { fromTime: T0 + 9001 })).to.deep.equal([]);
      });

      it('answers all with every record', async () => {
        const store = await open();
        const { destination, records } = await filled(store, 6);
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain(records));
      });

      it('applies the limit to every other query, keeping the oldest', async () => {
        const store = await open();
        const { destination, records } = await filled(store, 10);
        expect(positions(await read(store, destination, { all: true }, 3))).to.deep.equal([0, 1, 2]);
        expect(positions(await read(store, destination, { afterId: (records[2] as HistoryRecord).id }, 2))).to.deep.equal([3, 4]);
        expect(positions(await read(store, destination, { afterId: 'unknown' }, 2))).to.deep.equal([0, 1]);
        expect(positions(await read(store, destination, { fromPosition: 5 }, 2))).to.deep.equal([5, 6]);
        expect(positions(await read(store, destination, { fromTime: T0 + 6000 }, 1))).to.deep.equal([6]);
        expect(await read(store, destination, { all: true }, 0)).to.deep.equal([]);
      });
    });

    describe('idempotence', () => {
      it('stores a record appended twice once', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const a = record(destination, 0);
        const b = record(destination, 1);
        await store.append(a);
        await store.append(a);
        await store.append(b);
        await store.append(a);
        await Promise.all([store.append(b), store.append(b)]);
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain([a, b]));
        expect(plain(await read(store, destination, { last: 5 }))).to.deep.equal(plain([a, b]));
        expect(plain(await read(store, destination, { last: 2 }))).to.deep.equal(plain([a, b]));
      });

      it('keeps the first of two records with the same id', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const first = record(destination, 1, { body: Buffer.from('first') });
        await store.append(first);
        await store.append({ ...first, position: 2, body: Buffer.from('second'), time: first.time + 1 });
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain([first]));
        expect(plain(await read(store, destination, { last: 1 }))).to.deep.equal(plain([first]));
      });
    });

    describe('appendMany', () => {
      it('stores a batch across destinations in one call, in order, and says all of it is stored', async () => {
        const store = await open();
        const a = `/topic/${uniqueName()}`;
        const b = `/topic/${uniqueName()}`;
        const batch = [record(a, 0), record(b, 0), record(a, 1), record(b, 1), record(a, 2)];
        expect(await store.appendMany(batch)).to.equal(5);
        expect(positions(await read(store, a, { all: true }))).to.deep.equal([0, 1, 2]);
        expect(positions(await read(store, b, { last: 5 }))).to.deep.equal([0, 1]);
      });

      it('counts ids stored before as stored and stores the rest around them', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const records = [0, 1, 2, 3].map((p) => record(destination, p));
        await store.append(records[1] as HistoryRecord);
        await store.append(records[3] as HistoryRecord);
        expect(await store.appendMany(records)).to.equal(4);
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain(records));
        expect(await store.appendMany([])).to.equal(0);
      });

      it('takes a replayed batch (a run stored before, then new records, then a stored one) whole', async () => {
        // What a partition's new owner appends after a node died: it reads again from the last commit.
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const records = [0, 1, 2, 3, 4, 5, 6, 7].map((p) => record(destination, p));
        expect(await store.appendMany(records.slice(0, 4))).to.equal(4);
        await store.append(records[6] as HistoryRecord);
        expect(await store.appendMany(records)).to.equal(8);
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain(records));
        expect(await store.appendMany(records.slice(0, 5))).to.equal(5);
        expect(plain(await read(store, destination, { all: true }))).to.deep.equal(plain(records));
      });
    });

    describe('isolation', () => {
      it('keeps destinations apart, including ones whose names extend each other', async () => {
        const store = await open();
        const base = `/topic/${uniqueName()}`;
        const names = [base, `${base}.more`, `${base}x`, base.replace('/topic/', '/queue/')];
        for (let p = 0; p < 3; p++)
          for (const [i, d] of names.entries()) await store.append(record(d, p, { body: Buffer.from(`${i}:${p}`) }));
        for (const [i, d] of names.entries()) {
          const all = await read(store, d, { all: true });
          expect(
            all.map((r) => r.body.toString()),
            d,
          ).to.deep.equal([`${i}:0`, `${i}:1`, `${i}:2`]);
          expect(
            (await read(store, d, { last: 2 })).map((r) => r.body.toString()),
            d,
          ).to.deep.equal([`${i}:1`, `${i}:2`]);
        }
      });

      it('keeps virtual hosts apart', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const vhosts = ['/', 'tenant-a', 'tenant-b.example.com'];
        for (let p = 0; p < 3; p++)
          for (const v of vhosts) await store.append(record(destination, p, { vhost: v, body: Buffer.from(`${v}:${p}`) }));
        for (const v of vhosts) {
          const all = await read(store, destination, { all: true }, BIG, v);
          expect(
            all.map((r) => r.body.toString()),
            v,
          ).to.deep.equal([`${v}:0`, `${v}:1`, `${v}:2`]);
          expect(all.every((r) => r.vhost === v)).to.equal(true);
          expect((await read(store, destination, { last: 1 }, BIG, v)).map((r) => r.body.toString())).to.deep.equal([`${v}:2`]);
        }
        expect(await read(store, destination, { all: true }, BIG, 'tenant-c')).to.deep.equal([]);
      });
    });

    describe('retention', () => {
      for (const pruned of caps.prune === undefined ? [false] : [false, true]) {
        const when = pruned ? ', after a prune' : ', on reads at once';
        const prune = pruned ? caps.prune : undefined;

        it(`keeps only the newest maxPerDestination records of each destination${when}`, async () => {
          const store = await open({ maxPerDestination: 5, maxAgeMs: 0 });
          const { destination, records } = await filled(store, 20);
          const small = await filled(store, 3);
          await prune?.(store);
          const kept = [15, 16, 17, 18, 19];
          expect(positions(await read(store, destination, { all: true }))).to.deep.equal(kept);
          expect(positions(await read(store, destination, { last: 10 }))).to.deep.equal(kept);
          expect(positions(await read(store, destination, { last: 3 }))).to.deep.equal([17, 18, 19]);
          expect(positions(await read(store, destination, { fromPosition: 0 }))).to.deep.equal(kept);
          expect(positions(await read(store, destination, { fromTime: 0 }))).to.deep.equal(kept);
          expect(positions(await read(store, destination, { afterId: (records[3] as HistoryRecord).id }))).to.deep.equal(kept);
          expect(positions(await read(store, destination, { afterId: (records[16] as HistoryRecord).id }))).to.deep.equal([17, 18, 19]);
          expect(positions(await read(store, small.destination, { all: true }))).to.deep.equal([0, 1, 2]);
        });

        it(`drops records older than maxAgeMs${when}`, async () => {
          const store = await open({ maxPerDestination: 0, maxAgeMs: 60_000 });
          const destination = `/topic/${uniqueName()}`;
          const now = Date.now();
          await appendAll(
            store,
            [0, 1, 2].map((p) => record(destination, p, { time: now - 600_000 + p })),
          );
          await appendAll(
            store,
            [3, 4].map((p) => record(destination, p, { time: now + p })),
          );
          await prune?.(store);
          expect(positions(await read(store, destination, { all: true }))).to.deep.equal([3, 4]);
          expect(positions(await read(store, destination, { last: 5 }))).to.deep.equal([3, 4]);
          expect(positions(await read(store, destination, { last: 1 }))).to.deep.equal([4]);
          expect(positions(await read(store, destination, { fromPosition: 0 }))).to.deep.equal([3, 4]);
          expect(positions(await read(store, destination, { fromTime: 0 }))).to.deep.equal([3, 4]);
        });
      }
    });

    describe('content', () => {
      it('round-trips large bodies, NUL bytes and invalid UTF-8 exactly', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const large = randomBytes(1024 * 1024);
        large.fill(0, 1000, 5000);
        const bodies = [
          large,
          Buffer.alloc(0),
          Buffer.alloc(64),
          Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x00]),
          Buffer.from('\u0000end\u0000'),
        ];
        const records = bodies.map((body, p) => record(destination, p, { body }));
        await appendAll(store, records);
        for (const q of [{ all: true }, { last: 5 }, { fromPosition: 0 }] as const) {
          const got = await read(store, destination, q);
          expect(
            got.map((r) => r.body.length),
            JSON.stringify(q),
          ).to.deep.equal(bodies.map((b) => b.length));
          got.forEach((r, i) => expect(r.body.equals(bodies[i] as Buffer), `body ${i} of ${JSON.stringify(q)}`).to.equal(true));
        }
      });

      it('keeps header order, repeated names, empty values and any characters', async () => {
        const store = await open();
        const destination = `/topic/${uniqueName()}`;
        const headers: [string, string][] = [
          ['b', '1'],
          ['a', '2'],
          ['b', '3'],
          ['empty', ''],
          ['', 'empty-name'],
          ['colon:name', 'a:b'],
          ['unicode', 'ünï ☃ 💬'],
          ['newline', 'x\ny\\z'],
          ['nul', 'a\u0000b'],
          ['$dollar', 'v'],
          ['dot.ted', 'v'],
        ];
        await store.append(record(destination, 0, { headers }));
        await store.append(record(destination, 1, { headers: [] }));
        for (const q of [{ all: true }, { last: 2 }] as const) {
          const got = await read(store, destination, q);
          expect(
            got.map((r) => r.headers.map(([k, v]) => [k, v])),
            JSON.stringify(q),
          ).to.deep.equal([headers, []]);
        }
      });
    });

    describe('persistence', () => {
      it('lets a store opened later read what an earlier, closed one wrote', async function () {
        if (!caps.persistent) this.skip();
        const first = await open();
        const { destination, records } = await filled(first, 4);
        await first.close();
        const second = await open();
        expect(plain(await read(second, destination, { all: true }))).to.deep.equal(plain(records));
        expect(plain(await read(second, destination, { last: 2 }))).to.deep.equal(plain(records.slice(2)));
        expect(positions(await read(second, destination, { afterId: (records[1] as HistoryRecord).id }))).to.deep.equal([2, 3]);
        await second.append(records[0] as HistoryRecord);
        expect(positions(await read(second, destination, { all: true }))).to.deep.equal([0, 1, 2, 3]);
        // A restarted node numbers its local-route messages on after what is stored, never from 0 again.
        expect(await second.nextPosition('/', destination)).to.equal(4);
      });
    });
  });
}
