/**
 * The redis engines through Redis Sentinel (`redisMode: sentinel`): this spec starts its own primary, replica and
 * sentinel (from the redis-server on PATH, the binary the test services use, on free loopback ports), so the
 * shared services are never touched. Pub/sub and the shared queues work through the sentinel, and keep working
 * after the sentinel promotes the replica (the nodes follow the new primary).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { BusEnvelope } from '../../broker/ports/bus.js';
import { RedisBus } from '../../bridge/redis-bus.js';
import { RedisSharedQueues } from '../../bridge/redis-queues.js';
import type { RedisTarget } from '../../bridge/redis-client.js';
import { freePort } from '../ops/cli.js';
import { until } from '../support/cluster.js';
import { startRedisDaemon } from '../support/redis-daemon.js';

async function cli(port: number, ...args: string[]): Promise<string> {
  const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise((done) => child.once('close', done));
  return out.trim();
}

function envelope(id: string, destination: string, body: string): BusEnvelope {
  return { id, origin: 'spec', vhost: '/', destination, headers: [], body: Buffer.from(body), time: Date.now() };
}

describe('bridge › redis engines through Redis Sentinel', function () {
  this.timeout(60_000);
  let dir: string;
  const ports = { primary: 0, replica: 0, sentinel: 0 };
  let target: RedisTarget;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stompede-sentinel-'));
    ports.primary = await freePort();
    ports.replica = await freePort();
    ports.sentinel = await freePort();
    await startRedisDaemon(dir, 'primary', ['--port', String(ports.primary)]);
    await startRedisDaemon(dir, 'replica', ['--port', String(ports.replica), '--replicaof', '127.0.0.1', String(ports.primary)]);
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `sentinel monitor spec 127.0.0.1 ${ports.primary} 1`,
        'sentinel down-after-milliseconds spec 1000',
        'sentinel failover-timeout spec 5000',
      ].join('\n') + '\n',
    );
    await startRedisDaemon(dir, 'sentinel', ['--port', String(ports.sentinel)], [conf, '--sentinel']);
    await until(
      async () => (await cli(ports.replica, 'INFO', 'replication')).includes('master_link_status:up'),
      10_000,
      'the replica in sync',
    );
    target = { url: `redis://127.0.0.1:${ports.sentinel}`, mode: 'sentinel', sentinelMaster: 'spec' };
  });

  after(async () => {
    for (const port of [ports.sentinel, ports.replica, ports.primary]) if (port > 0) await cli(port, 'SHUTDOWN', 'NOSAVE');
    rmSync(dir, { recursive: true, force: true });
  });

  it('pub/sub and the shared queues work through the sentinel, and follow a failover to the replica', async () => {
    const got: BusEnvelope[] = [];
    const bus = new RedisBus({ url: target, clusterName: 'sentinel-spec', nodeId: 'n1' });
    const queues = new RedisSharedQueues({ url: target, clusterName: 'sentinel-spec', nodeId: 'n1' });
    try {
      await bus.start((e) => got.push(e));
      await queues.start();
      await bus.watch('/', '/topic/a');
      await bus.publish(envelope('p1', '/topic/a', 'before'));
      await until(() => got.length === 1, 5_000, 'the message through the primary');
      await queues.push(envelope('q1', '/queue/q', 'queued'));
      expect((await queues.take('/', 'q', 5)).map((m) => m.envelope.body.toString())).to.deep.equal(['queued']);

      await cli(ports.sentinel, 'SENTINEL', 'FAILOVER', 'spec');
      await until(
        async () => (await cli(ports.sentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'spec')).endsWith(String(ports.replica)),
        20_000,
        'the replica promoted',
      );
      // The clients follow: a message published now arrives, and a queue push lands on the new primary.
      let n = 0;
      await until(
        async () => {
          await bus.publish(envelope(`p-after-${n++}`, '/topic/a', 'after')).catch(() => {});
          await new Promise((r) => setTimeout(r, 200));
          return got.some((e) => e.body.toString() === 'after');
        },
        30_000,
        'delivery after the failover',
      );
      await until(
        () =>
          queues.push(envelope('q2', '/queue/q', 'after failover')).then(
            () => true,
            () => false,
          ),
        20_000,
        'a queue push after the failover',
      );
      expect(await cli(ports.replica, 'LLEN', 'sentinel-spec:q:/:q')).to.equal('1');
    } finally {
      await queues.close();
      await bus.close();
    }
  });
});
