/**
 * The history cache (CachedHistoryStore) on the Redis Cluster of the test services (`--redis-mode cluster`):
 * each command touches one destination's key, so the keys spread over the masters and no command crosses slots.
 * Reads of the last N come from the cache: the inner store is emptied behind its back to prove it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { HistoryRecord } from '../../broker/ports/history.js';
import { CachedHistoryStore } from '../../bridge/cached-history.js';
import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { requireService } from '../support/services.js';
import { until } from '../support/cluster.js';

const run = promisify(execFile);

describe('bridge › history cache on a Redis Cluster', function () {
  this.timeout(30_000);

  it('appends and reads the last N of many destinations, their keys spread over the masters', async () => {
    const seeds = requireService('redis-cluster');
    const clusterName = `hist-${randomBytes(4).toString('hex')}`;
    const retention = { maxPerDestination: 0, maxAgeMs: 0 };
    let inner = new InMemoryHistoryStore(retention);
    const store = new CachedHistoryStore({
      url: { url: seeds, mode: 'cluster' },
      clusterName,
      cacheSize: 10,
      // The inner store is swapped below: reads the cache cannot answer would then come back empty.
      inner: {
        get name() {
          return inner.name;
        },
        get healthy() {
          return true;
        },
        append: (r) => inner.append(r),
        appendMany: (rs) => inner.appendMany(rs),
        read: (v, d, q, l) => inner.read(v, d, q, l),
        nextPosition: (v, d) => inner.nextPosition(v, d),
        close: () => inner.close(),
      },
      retention,
    });
    try {
      await until(() => store.cacheHealthy, 10_000, 'the cache connected to the cluster');
      const destinations = Array.from({ length: 12 }, (_, i) => `/topic/h${i}`);
      const records: HistoryRecord[] = [];
      for (const [d, destination] of destinations.entries())
        for (let p = 0; p < 3; p++)
          records.push({
            id: `m-${d}-${p}`,
            origin: 'n1',
            vhost: '/',
            destination,
            headers: [],
            body: Buffer.from(`${d}.${p}`),
            time: Date.now(),
            position: p,
          });
      await store.appendMany(records);
      inner = new InMemoryHistoryStore(retention);
      for (const [d, destination] of destinations.entries()) {
        const got = await store.read('/', destination, { last: 3 }, 3);
        expect(
          got.map((r) => r.body.toString()),
          destination,
        ).to.deep.equal([0, 1, 2].map((p) => `${d}.${p}`));
      }
      expect(store.cacheHealthy).to.equal(true);
      // One key per destination, on the master of its slot: more than one master holds some.
      const holders = new Set<string>();
      for (const u of seeds.split(',')) {
        const port = new URL(u).port;
        const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', port, '--scan', '--pattern', `${clusterName}:recent:*`]);
        if (stdout.trim() !== '') holders.add(port);
      }
      expect(holders.size).to.be.greaterThan(1);
    } finally {
      await store.close();
    }
  });
});
