import { expect } from 'chai';
import type { BusEnvelope } from '../../broker/ports/bus.js';
import type { SharedQueueMessage, SharedQueues } from '../../broker/ports/queues.js';
import { closedPort, uniqueDestination, until } from './bus-conformance.js';

/**
 * The contract every SharedQueues backend passes (see bridge/queues.ts): each message reaches exactly one node,
 * oldest first; ACK removes it; requeue puts it back at the head; a repeated id is stored once. `make` returns
 * fresh, NOT yet started nodes of one cluster, and a factory for one more node of that same cluster.
 */
export interface QueuesCluster {
  readonly nodes: readonly SharedQueues[];
  /** Another node of the same cluster (for the case where a node vanishes). */
  make(nodeId: string): SharedQueues;
}

export interface QueuesConformanceOptions {
  /** The in-flight messages of a node that closes without acknowledging go back to their queue, counted. */
  readonly recovers?: boolean;
  /** A backend of this kind pointed at `127.0.0.1:<port>`, where nothing listens. */
  readonly unreachable?: (port: number) => SharedQueues;
  /** Upper bound for one step in this engine, in ms (default 15 000). */
  readonly deliveryMs?: number;
}

let seq = 0;
function message(queue: string, body: string, vhost = '/'): BusEnvelope {
  return {
    id: `q${process.pid.toString(36)}-${Date.now().toString(36)}-${(++seq).toString(36)}`,
    origin: 'conformance',
    vhost,
    destination: queue,
    headers: [['x-n', body]],
    body: Buffer.from(body),
    time: Date.now(),
  };
}

const bodies = (ms: readonly SharedQueueMessage[]): string[] => ms.map((m) => m.envelope.body.toString());

export function sharedQueuesConformance(name: string, make: () => Promise<QueuesCluster>, caps: QueuesConformanceOptions): void {
  const deliveryMs = caps.deliveryMs ?? 15_000;

  describe(`SharedQueues conformance: ${name}`, function () {
    this.timeout(deliveryMs * 3);
    let cluster: QueuesCluster;
    const started: SharedQueues[] = [];
    const node = (i: number): SharedQueues => cluster.nodes[i] as SharedQueues;
    /** The queue name the backend keys by (`/queue/<name>` → `<name>`), as the broker passes it. */
    const nameOf = (destination: string): string => destination.slice('/queue/'.length);

    before(async function () {
      cluster = await make();
      expect(cluster.nodes.length, 'a cluster of at least two nodes').to.be.at.least(2);
      for (const n of cluster.nodes) {
        await n.start();
        started.push(n);
      }
    });

    after(async function () {
      await Promise.allSettled(started.map((n) => n.close()));
    });

    it('is named and healthy once started', async function () {
      for (const n of cluster.nodes) expect(n.name).to.be.a('string').and.not.equal('');
      await until(
        () => cluster.nodes.every((n) => n.healthy),
        deliveryMs,
        () => 'every node healthy',
      );
    });

    it('hands out messages oldest first, envelope intact, never delivered before (deliveries 0)', async function () {
      const q = uniqueDestination('queue', 'fifo');
      const pushed = ['m0', 'm1', 'm2', 'm3'].map((b) => message(q, b));
      for (const m of pushed) await node(0).push(m);
      const first = await node(1).take('/', nameOf(q), 3);
      const rest = await node(1).take('/', nameOf(q), 3);
      expect(bodies(first)).to.deep.equal(['m0', 'm1', 'm2']);
      expect(bodies(rest)).to.deep.equal(['m3']);
      const got = first[0] as SharedQueueMessage;
      expect(got.deliveries).to.equal(0);
      expect(got.envelope).to.include({ id: pushed[0]?.id, origin: 'conformance', vhost: '/', destination: q, time: pushed[0]?.time });
      expect(got.envelope.headers.map((h) => [...h])).to.deep.equal([['x-n', 'm0']]);
      for (const m of [...first, ...rest]) await node(1).ack('/', nameOf(q), m.envelope.id);
      expect(await node(0).take('/', nameOf(q), 10)).to.deep.equal([]);
    });

    it('gives each of 60 messages to exactly one of two nodes taking at once; none lost', async function () {
      const q = uniqueDestination('queue', 'once');
      const total = 60;
      await Promise.all(Array.from({ length: total }, (_, i) => node(i % 2).push(message(q, `job-${i}`))));
      const perNode: string[][] = [[], []];
      const drain = async (i: number): Promise<void> => {
        for (;;) {
          const batch = await node(i).take('/', nameOf(q), 3);
          if (batch.length === 0) return;
          for (const m of batch) {
            perNode[i]?.push(m.envelope.body.toString());
            await node(i).ack('/', nameOf(q), m.envelope.id);
          }
        }
      };
      await Promise.all([drain(0), drain(1)]);
      const all = perNode.flat();
      expect(all.length, `taken: ${perNode.map((p) => p.length).join(' + ')}`).to.equal(total);
      expect(new Set(all).size, 'no message taken twice').to.equal(total);
      expect(new Set(all)).to.deep.equal(new Set(Array.from({ length: total }, (_, i) => `job-${i}`)));
    });

    it('stores a repeated id once', async function () {
      const q = uniqueDestination('queue', 'dedupe');
      const m = message(q, 'once');
      await node(0).push(m);
      await node(1).push(m);
      const got = await node(0).take('/', nameOf(q), 10);
      expect(bodies(got)).to.deep.equal(['once']);
      await node(0).ack('/', nameOf(q), m.id);
    });

    it('requeue puts a message back at the head with the delivery count it is given', async function () {
      const q = uniqueDestination('queue', 'requeue');
      for (const b of ['a', 'b', 'c']) await node(0).push(message(q, b));
      const [a, b] = await node(0).take('/', nameOf(q), 2);
      if (a === undefined || b === undefined) throw new Error('expected two messages');
      await node(0).requeue('/', nameOf(q), { envelope: a.envelope, deliveries: a.deliveries + 1 });
      const next = await node(1).take('/', nameOf(q), 10);
      expect(next.map((m) => [m.envelope.body.toString(), m.deliveries])).to.deep.equal([
        ['a', 1],
        ['c', 0],
      ]);
      await node(0).ack('/', nameOf(q), b.envelope.id);
      for (const m of next) await node(1).ack('/', nameOf(q), m.envelope.id);
    });

    it('keeps queues and vhosts apart', async function () {
      const q = uniqueDestination('queue', 'apart');
      const other = uniqueDestination('queue', 'apart-other');
      await node(0).push(message(q, 'in-q'));
      await node(0).push(message(q, 'in-tenant', 'tenant-a'));
      expect(await node(1).take('/', nameOf(other), 10)).to.deep.equal([]);
      const tenant = await node(1).take('tenant-a', nameOf(q), 10);
      const root = await node(1).take('/', nameOf(q), 10);
      expect([bodies(tenant), bodies(root)]).to.deep.equal([['in-tenant'], ['in-q']]);
      for (const m of tenant) await node(1).ack('tenant-a', nameOf(q), m.envelope.id);
      for (const m of root) await node(1).ack('/', nameOf(q), m.envelope.id);
    });

    it('tells an attached node when messages may be waiting (a push from another node)', async function () {
      const q = uniqueDestination('queue', 'notify');
      let calls = 0;
      node(1).attach('/', nameOf(q), () => calls++);
      try {
        // attach itself looks once (messages may already be there); a push must cause at least one more call.
        await until(
          () => calls >= 1,
          deliveryMs,
          () => 'the first look after attach',
        );
        const before = calls;
        await node(0).push(message(q, 'ping'));
        await until(
          () => calls > before,
          deliveryMs,
          () => 'a call after the push',
        );
        const got = await node(1).take('/', nameOf(q), 10);
        expect(bodies(got)).to.deep.equal(['ping']);
        for (const m of got) await node(1).ack('/', nameOf(q), m.envelope.id);
      } finally {
        node(1).detach('/', nameOf(q));
      }
    });

    if (caps.recovers === true) {
      it('returns the in-flight messages of a node that leaves without acknowledging, delivery count raised', async function () {
        const q = uniqueDestination('queue', 'recover');
        const leaving = cluster.make(`leaving-${seq}`);
        await leaving.start();
        try {
          for (const b of ['x', 'y']) await node(0).push(message(q, b));
          const held = await leaving.take('/', nameOf(q), 10);
          expect(bodies(held)).to.deep.equal(['x', 'y']);
        } finally {
          await leaving.close();
        }
        // A survivor notices the missing node (its liveness key gone) on its next sweep.
        const back: SharedQueueMessage[] = [];
        const deadline = Date.now() + deliveryMs;
        while (back.length < 2 && Date.now() < deadline) {
          back.push(...(await node(0).take('/', nameOf(q), 10)));
          if (back.length < 2) await new Promise((resolve) => setTimeout(resolve, 100));
        }
        // Order among the returned ones is not part of the contract (Redis hands a hash back in no set order).
        expect(back.map((m) => [m.envelope.body.toString(), m.deliveries]).sort()).to.deep.equal([
          ['x', 1],
          ['y', 1],
        ]);
        for (const m of back) await node(0).ack('/', nameOf(q), m.envelope.id);
      });
    }

    if (caps.unreachable !== undefined) {
      const unreachable = caps.unreachable;
      it('fails, within a bounded time, when its engine is unreachable', async function () {
        this.timeout(60_000);
        const queues = unreachable(await closedPort());
        const t0 = Date.now();
        try {
          const start = await queues.start().then(
            () => undefined,
            (error: unknown) => error,
          );
          const take = await queues.take('/', 'void', 1).then(
            () => undefined,
            (error: unknown) => error,
          );
          expect(start ?? take, 'start or take rejects').to.be.instanceOf(Error);
          expect(take).to.be.instanceOf(Error);
          expect(queues.healthy).to.equal(false);
          expect(Date.now() - t0).to.be.below(45_000);
        } finally {
          await queues.close();
        }
      });
    }
  });
}
