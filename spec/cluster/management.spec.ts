/**
 * Issue #9, "Done when": `stompede ctl list queues` against ONE node shows a shared queue's depth, consumers and
 * unacknowledged messages across a 3-node cluster on the redis route (queues as Redis lists). The nodes run in this
 * process on real Redis; ctl runs as its own process, as an operator would run it.
 */
import { expect } from 'chai';
import { requireService } from '../support/services.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { connectedTcp, stompFrame, type TcpRawClient } from '../support/raw.js';
import { expectQuiet } from '../broker/harness.js';
import { runCli } from '../ops/cli.js';
import { until } from '../support/cluster.js';

type Row = Record<string, unknown>;

describe('cluster › stompede ctl list queues across 3 nodes (redis shared queues)', function () {
  this.timeout(90_000);
  const nodes: TestBroker[] = [];
  const clients: TcpRawClient[] = [];
  const clusterName = uniqueName('mgmt');

  before(async () => {
    const redis = requireService('redis');
    for (let i = 0; i < 3; i++) {
      // No users file: the management API answers because the nodes listen on loopback only.
      nodes.push(
        await startBroker({
          opsPort: 0,
          redis,
          clusterName,
          nodeId: `${clusterName}-n${i + 1}`,
          maxDeliveries: 1,
          routes: [{ pattern: '/**', kind: 'redis' }],
        }),
      );
    }
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.close()));
  });

  async function client(node: number): Promise<TcpRawClient> {
    const c = await connectedTcp((nodes[node] as TestBroker).tcpPort);
    clients.push(c);
    return c;
  }

  const ctl = (...args: string[]): ReturnType<typeof runCli> =>
    runCli(['ctl', ...args, '--url', `http://127.0.0.1:${nodes[0]?.addresses.ops?.port ?? 0}`]);

  it('node 1, with no consumer of its own, shows the depth, consumers and unacked of the whole cluster', async () => {
    const name = uniqueName('q');
    const queue = `/queue/${name}`;
    // Two consumers on node 2, one on node 3, each holding one unacknowledged message (prefetch-count 1).
    const consumers = [await client(1), await client(1), await client(2)];
    for (const [i, c] of consumers.entries()) {
      c.send(
        stompFrame('SUBSCRIBE', { id: `c${i}`, destination: queue, ack: 'client-individual', 'prefetch-count': '1', receipt: `s${i}` }),
      );
      expect((await c.nextFrame(10_000)).command).to.equal('RECEIPT');
    }
    const producer = await client(0);
    for (let i = 0; i < 10; i++) {
      producer.send(stompFrame('SEND', { destination: queue, receipt: `m${i}` }, `m${i}`));
      expect((await producer.nextFrame(10_000)).command).to.equal('RECEIPT');
    }
    for (const c of consumers) expect((await c.nextFrame(10_000)).command).to.equal('MESSAGE');
    for (const c of consumers) await expectQuiet(c);

    // Consumer counts reach Redis with each node's liveness refresh (every second): poll the real CLI until they show.
    let row: Row | undefined;
    await until(
      async () => {
        const r = await ctl('list', 'queues', '--json');
        expect(r.code, r.stderr).to.equal(0);
        row = (JSON.parse(r.stdout) as Row[]).find((q) => q.destination === queue);
        return row?.consumers === 3;
      },
      15_000,
      'three consumers reported cluster-wide',
    );
    expect(row).to.include({ vhost: '/', depth: 7, consumers: 3, unacked: 3, shared: true });

    const table = await ctl('list', 'queues');
    expect(table.code, table.stderr).to.equal(0);
    const line = table.stdout.split('\n').find((l) => l.includes(queue));
    expect(line).to.match(new RegExp(`^/\\s+${queue}\\s+7\\s+\\d+\\s+3\\s+3\\s+0\\s+true$`));
  });

  it('purge and dlq move act on the shared queue in Redis, whichever node is asked', async () => {
    const name = uniqueName('p');
    const queue = `/queue/${name}`;
    const producer = await client(1);
    for (let i = 0; i < 3; i++) {
      producer.send(stompFrame('SEND', { destination: queue, receipt: `m${i}` }, `m${i}`));
      expect((await producer.nextFrame(10_000)).command).to.equal('RECEIPT');
    }
    const purge = await ctl('purge', name);
    expect(purge.code, purge.stderr).to.equal(0);
    expect(purge.stdout).to.equal(`purged 3 messages from ${queue}\n`);

    // maxDeliveries 1: a NACK on node 3 dead-letters the message into the shared `<queue>.dlq`.
    producer.send(stompFrame('SEND', { destination: queue, receipt: 'poison' }, 'poison'));
    expect((await producer.nextFrame(10_000)).command).to.equal('RECEIPT');
    const consumer = await client(2);
    consumer.send(stompFrame('SUBSCRIBE', { id: 'c', destination: queue, ack: 'client-individual' }));
    const first = await consumer.nextFrame(10_000);
    expect(first.command).to.equal('MESSAGE');
    consumer.send(stompFrame('NACK', { id: first.headers.get('ack') ?? '', receipt: 'nack' }));
    expect((await consumer.nextFrame(10_000)).command).to.equal('RECEIPT');
    await until(
      async () => {
        const r = await ctl('list', 'queues', '--json');
        return (JSON.parse(r.stdout) as Row[]).find((q) => q.destination === queue)?.dlqDepth === 1;
      },
      15_000,
      'the dead-lettered message in the shared DLQ',
    );
    const move = await ctl('dlq', 'move', name);
    expect(move.code, move.stderr).to.equal(0);
    expect(move.stdout).to.equal(`moved 1 messages from ${queue}.dlq to ${queue}\n`);
    const back = await consumer.nextFrame(10_000);
    expect(back.command).to.equal('MESSAGE');
    expect(back.body.toString()).to.equal('poison');
    expect(back.headers.get('destination')).to.equal(queue);
    expect(back.headers.get('x-death-reason')).to.equal(undefined);
    expect(back.headers.get('redelivered')).to.equal(undefined);
  });
});
