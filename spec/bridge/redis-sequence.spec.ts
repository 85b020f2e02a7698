import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { RedisBus } from '../../bridge/redis-bus.js';
import { connectRedis } from '../../bridge/redis-client.js';
import { silentLogger } from '../../broker/ports/logger.js';
import { requireService } from '../support/services.js';

describe('bridge › redis bus › sequence (positions of redis-route history)', () => {
  const name = `spec-seq-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
  let nodes: RedisBus[] = [];

  before(async () => {
    const url = requireService('redis');
    nodes = ['a', 'b'].map((nodeId) => new RedisBus({ url, clusterName: name, nodeId }));
    await Promise.all(nodes.map((n) => n.start(() => {})));
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
  });

  const [a, b] = [(): RedisBus => nodes[0] as RedisBus, (): RedisBus => nodes[1] as RedisBus];

  it('numbers a destination 1, 2, 3 … across nodes, each destination and vhost on its own', async () => {
    expect(await a().sequence('/', '/topic/s.one', 0)).to.equal(1);
    expect(await b().sequence('/', '/topic/s.one', 0)).to.equal(2);
    expect(await a().sequence('/', '/topic/s.one', 0)).to.equal(3);
    expect(await b().sequence('/', '/topic/s.two', 0)).to.equal(1);
    expect(await b().sequence('tenant', '/topic/s.one', 0)).to.equal(1);
  });

  it('concurrent requests from several nodes get distinct positions, each node in the order it asked', async () => {
    const asked = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a() : b()).sequence('/', '/topic/s.busy', 0));
    const got = await Promise.all(asked);
    expect(new Set(got).size).to.equal(100);
    expect([...got].sort((x, y) => x - y)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
    for (const parity of [0, 1]) {
      const mine = got.filter((_, i) => i % 2 === parity);
      expect(mine.every((p, i) => i === 0 || p > (mine[i - 1] as number))).to.equal(true);
    }
  });

  it('a counter that Redis lost starts again at the floor, never below what is stored', async () => {
    expect(await a().sequence('/', '/topic/s.lost', 0)).to.equal(1);
    expect(await a().sequence('/', '/topic/s.lost', 0)).to.equal(2);
    const client = await connectRedis(requireService('redis'), silentLogger, 'spec');
    try {
      expect(await client.sendCommand(['DEL', `${name}:seq:/:/topic/s.lost`])).to.equal(1);
    } finally {
      await client.close();
    }
    // The caller's floor is its history store's next position: 3 here.
    expect(await b().sequence('/', '/topic/s.lost', 3)).to.equal(3);
    expect(await a().sequence('/', '/topic/s.lost', 0)).to.equal(4);
    // A floor below the counter changes nothing.
    expect(await a().sequence('/', '/topic/s.lost', 2)).to.equal(5);
  });

  it('rejects while not started', async () => {
    const idle = new RedisBus({ url: requireService('redis'), clusterName: name, nodeId: 'c' });
    const error = await idle.sequence('/', '/topic/s.one', 0).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.have.property('code', 'ERR_BUS_NOT_STARTED');
  });
});
