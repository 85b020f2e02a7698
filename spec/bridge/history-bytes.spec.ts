import { expect } from 'chai';
import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { recordBytes, type HistoryRecord } from '../../broker/ports/history.js';

/** A record of `size` body bytes at `position` of `destination`. */
function record(destination: string, position: number, size: number, vhost = '/'): HistoryRecord {
  return {
    id: `${destination}-${position}`,
    origin: 'node-a',
    vhost,
    destination,
    position,
    headers: [['n', String(position)]],
    body: Buffer.alloc(size, 0x61),
    time: Date.now(),
  };
}

const ALL = { all: true } as const;

describe('bridge › history › memory › byte retention', () => {
  it('keeps at most maxBytesPerDestination per destination, dropping the oldest first', async () => {
    const one = recordBytes(record('/topic/a', 0, 1000));
    const store = new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0, maxBytesPerDestination: one * 3 });
    for (let i = 0; i < 10; i++) store.appendNow(record('/topic/a', i, 1000));
    const kept = await store.read('/', '/topic/a', ALL, 100);
    expect(kept.map((r) => r.position)).to.deep.equal([7, 8, 9]);
    expect(store.bytes).to.equal(one * 3);
  });

  it('does not keep a record larger than the per-destination cap, and keeps what it had', async () => {
    const store = new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0, maxBytesPerDestination: 4096 });
    store.appendNow(record('/topic/b', 0, 100));
    store.appendNow(record('/topic/b', 1, 10_000));
    store.appendNow(record('/topic/b', 2, 100));
    expect((await store.read('/', '/topic/b', ALL, 100)).map((r) => r.position)).to.deep.equal([0, 2]);
  });

  it('evicts the oldest appends across destinations past the node-wide maxBytes', async () => {
    const one = recordBytes(record('/topic/c0', 0, 1000));
    const store = new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0, maxBytes: one * 5 });
    for (let i = 0; i < 8; i++) store.appendNow(record(`/topic/c${i % 4}`, Math.floor(i / 4), 1000));
    // Appended: c0#0 c1#0 c2#0 c3#0 c0#1 c1#1 c2#1 c3#1; the three oldest went.
    expect(store.bytes).to.equal(one * 5);
    expect((await store.read('/', '/topic/c0', ALL, 10)).map((r) => r.position)).to.deep.equal([1]);
    expect((await store.read('/', '/topic/c2', ALL, 10)).map((r) => r.position)).to.deep.equal([1]);
    expect((await store.read('/', '/topic/c3', ALL, 10)).map((r) => r.position)).to.deep.equal([0, 1]);
  });

  it('forgets a destination whose history was evicted entirely, and says so (the broker frees its count)', async () => {
    const one = recordBytes(record('/topic/d0', 0, 500));
    const store = new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0, maxBytes: one * 2 });
    const forgotten: string[] = [];
    store.onForgotten((vhost, destination) => forgotten.push(`${vhost} ${destination}`));
    for (let i = 0; i < 5; i++) store.appendNow(record(`/topic/d${i}`, 0, 500));
    expect(forgotten).to.deep.equal(['/ /topic/d0', '/ /topic/d1', '/ /topic/d2']);
    expect(store.destinations).to.equal(2);
    expect(store.has('/', '/topic/d0')).to.equal(false);
    expect(store.has('/', '/topic/d4')).to.equal(true);
  });

  it('stays within the node-wide cap over many destinations and appends, trims by count and by bytes mixed', async () => {
    const max = 200_000;
    const store = new InMemoryHistoryStore({ maxPerDestination: 5, maxAgeMs: 0, maxBytesPerDestination: 3000, maxBytes: max });
    for (let i = 0; i < 50_000; i++) {
      store.appendNow(record(`/topic/e${i % 997}`, Math.floor(i / 997), (i * 37) % 1500));
      if (store.bytes > max) throw new Error(`over the cap after append ${i}: ${store.bytes}`);
    }
    let total = 0;
    for (let d = 0; d < 997; d++) {
      const kept = await store.read('/', `/topic/e${d}`, ALL, 100);
      expect(kept.length).to.be.at.most(5);
      const bytes = kept.reduce((sum, r) => sum + recordBytes(r), 0);
      expect(bytes).to.be.at.most(3000);
      total += bytes;
      // Oldest go first: what is kept is the newest, contiguous, in order.
      for (let k = 1; k < kept.length; k++)
        expect((kept[k] as HistoryRecord).position).to.equal((kept[k - 1] as HistoryRecord).position + 1);
    }
    expect(total).to.equal(store.bytes);
  });

  it('numbers a forgotten destination on from where it stopped when it is written to again', async () => {
    const one = recordBytes(record('/topic/f0', 0, 500));
    const store = new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0, maxBytes: one });
    for (let i = 0; i < 3; i++) store.appendNow(record('/topic/f0', store.nextPosition('/', '/topic/f0'), 500));
    store.appendNow(record('/topic/f1', store.nextPosition('/', '/topic/f1'), 500));
    expect(store.has('/', '/topic/f0')).to.equal(false);
    expect(store.nextPosition('/', '/topic/f0')).to.equal(3);
  });
});
