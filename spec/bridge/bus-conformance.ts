import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { BusCapabilities, BusEnvelope, ClusterBus, PublishInput } from '../../broker/ports/bus.js';
import { waitQuiet } from '../support/timing.js';

/**
 * The contract every ClusterBus backend passes (see bridge/bus.ts), as mocha tests. A backend spec calls
 * `busConformance(name, make, caps)`; `make` returns fresh, NOT yet started nodes of one cluster (the suite
 * starts them with its own recorders) and a `close` that stops them all. Nodes may be one shared object (a
 * MemoryBus started once per node) or one bus per node; they are what a broker would hold as its bus.
 */
export interface BusCluster {
  readonly nodes: readonly ClusterBus[];
  close(): Promise<void>;
}

export interface ConformanceOptions extends BusCapabilities {
  /**
   * `watch` narrows what a node receives (a Redis channel per destination). Buses that hand every node every
   * message (memory, Kafka consumed per node) leave the filtering to the broker's subscription table.
   */
  readonly filters?: boolean;
  /** `watch` accepts wildcard patterns (`/topic/chat.*`). Default: true. */
  readonly wildcards?: boolean;
  /** A bus of this kind pointed at `127.0.0.1:<port>`, where nothing listens. */
  readonly unreachable?: (port: number) => ClusterBus;
  /** Upper bound for one delivery in this engine, in ms (default 15 000). */
  readonly deliveryMs?: number;
}

/** Collects what one node is handed, as a broker's `#fromBus` would receive it. */
export class Recorder {
  readonly all: BusEnvelope[] = [];
  readonly deliver = (envelope: BusEnvelope): void => {
    this.all.push(envelope);
  };

  /** Everything for one destination, in arrival order, repeats included. */
  for(destination: string): BusEnvelope[] {
    return this.all.filter((e) => e.destination === destination);
  }

  /** First arrival of each id, in arrival order: what a broker passes on after dropping repeats. */
  unique(destination: string): BusEnvelope[] {
    const seen = new Set<string>();
    return this.for(destination).filter((e) => (seen.has(e.id) ? false : (seen.add(e.id), true)));
  }
}

/** Polls until `check` holds; fails with `what` and the last state after `ms`. */
export async function until(check: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A loopback port where nothing listens (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

let seq = 0;
/** A destination no other test (or run) uses. */
export function uniqueDestination(kind: 'topic' | 'queue', label: string): string {
  return `/${kind}/${label}-${process.pid.toString(36)}${randomBytes(3).toString('hex')}${(++seq).toString(36)}`;
}

export function envelope(destination: string, body: string | Buffer, extra: Partial<PublishInput> = {}): PublishInput {
  return {
    origin: 'conformance',
    vhost: '/',
    destination,
    headers: [],
    body: typeof body === 'string' ? Buffer.from(body) : body,
    time: Date.now(),
    ...extra,
  };
}

/** The least silence that counts as "nothing more comes" from a bus; waitQuiet stretches it on a busy machine. */
const SETTLE_MS = 300;
const ID = /^[^:\\\s]+$/;

export function busConformance(name: string, make: () => Promise<BusCluster>, caps: ConformanceOptions): void {
  const deliveryMs = caps.deliveryMs ?? 15_000;

  describe(`ClusterBus conformance: ${name}`, function () {
    this.timeout(deliveryMs * 3);
    let cluster: BusCluster;
    let nodes: readonly ClusterBus[];
    let recorders: Recorder[];

    before(async function () {
      cluster = await make();
      nodes = cluster.nodes;
      expect(nodes.length, 'a cluster of at least two nodes').to.be.at.least(2);
      recorders = nodes.map(() => new Recorder());
      await Promise.all(nodes.map((node, i) => node.start((recorders[i] as Recorder).deliver)));
    });

    after(async function () {
      await cluster?.close();
    });

    const node = (i: number): ClusterBus => nodes[i] as ClusterBus;
    const recorder = (i: number): Recorder => recorders[i] as Recorder;
    const watchAll = (destination: string, vhost = '/'): Promise<void[]> => Promise.all(nodes.map((n) => n.watch(vhost, destination)));
    const unwatchAll = (destination: string, vhost = '/'): void => nodes.forEach((n) => n.unwatch(vhost, destination));
    const everyNodeHas = (destination: string, count: number): Promise<void> =>
      until(
        () => recorders.every((r) => r.unique(destination).length >= count),
        deliveryMs,
        () => `${count} message(s) on ${destination} at every node; have ${recorders.map((r) => r.unique(destination).length).join(', ')}`,
      );

    it('declares its capabilities and is healthy once started', async function () {
      for (const n of nodes) {
        expect(n.name).to.be.a('string').and.not.equal('');
        expect({ ...n.capabilities }).to.deep.equal({ ordered: caps.ordered, durable: caps.durable, crossNode: caps.crossNode });
      }
      await until(
        () => nodes.every((n) => n.healthy),
        deliveryMs,
        () => 'every node healthy',
      );
    });

    it('delivers a publish to every watching node, once', async function () {
      const d = uniqueDestination('topic', 'once');
      await watchAll(d);
      await node(0).publish(envelope(d, 'hello'));
      await everyNodeHas(d, 1);
      if (caps.ordered) {
        // A repeat of 'hello' would arrive before a later publish on the same destination: wait for that instead.
        await node(0).publish(envelope(d, 'marker'));
        await everyNodeHas(d, 2);
        for (const r of recorders) expect(r.for(d).map((e) => e.body.toString())).to.deep.equal(['hello', 'marker']);
      } else {
        await waitQuiet(SETTLE_MS);
        for (const r of recorders) expect(r.for(d).map((e) => e.body.toString())).to.deep.equal(['hello']);
      }
      unwatchAll(d);
    });

    it('delivers what any node publishes to every node', async function () {
      const d = uniqueDestination('topic', 'every');
      await watchAll(d);
      await Promise.all(nodes.map((n, i) => n.publish(envelope(d, `from ${i}`))));
      await everyNodeHas(d, nodes.length);
      for (const r of recorders) {
        expect(
          r
            .unique(d)
            .map((e) => e.body.toString())
            .sort(),
        ).to.deep.equal(nodes.map((_, i) => `from ${i}`).sort());
      }
      unwatchAll(d);
    });

    it('keeps the envelope: origin, vhost, destination, headers in order, body bytes, time', async function () {
      const d = uniqueDestination('topic', 'fields');
      await watchAll(d, 'tenant-a');
      const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const headers: [string, string][] = [
        ['x-b', '2'],
        ['x-a', '1'],
        ['x-a', 'again'],
        ['123', 'numeric name'],
        ['colon', 'a:b\\c'],
        ['empty', ''],
        ['ünï', '✓ 😀'],
      ];
      const time = Date.now() - 5_000;
      await node(0).publish(envelope(d, everyByte, { origin: 'node-zero', vhost: 'tenant-a', headers, time }));
      await node(0).publish(envelope(d, Buffer.alloc(0), { vhost: 'tenant-a' }));
      await everyNodeHas(d, 2);
      for (const r of recorders) {
        const [first, second] = r.unique(d);
        expect(first?.origin).to.equal('node-zero');
        expect(first?.vhost).to.equal('tenant-a');
        expect(first?.destination).to.equal(d);
        expect(first?.headers.map((h) => [...h])).to.deep.equal(headers);
        expect(first?.body.equals(everyByte)).to.equal(true);
        expect(first?.time).to.equal(time);
        expect(second?.body.length).to.equal(0);
        expect(second?.headers).to.deep.equal([]);
      }
      unwatchAll(d, 'tenant-a');
    });

    it('gives each message one id, the same on every node, without ":", "\\" or whitespace', async function () {
      const d = uniqueDestination('topic', 'ids');
      await watchAll(d);
      await Promise.all(Array.from({ length: 20 }, (_, i) => node(i % nodes.length).publish(envelope(d, `m${i}`))));
      await everyNodeHas(d, 20);
      const idsOf = (r: Recorder): Map<string, string> => new Map(r.unique(d).map((e) => [e.body.toString(), e.id]));
      const reference = idsOf(recorder(0));
      expect(new Set(reference.values()).size).to.equal(20);
      for (const id of reference.values()) expect(id).to.match(ID);
      for (const r of recorders) expect(idsOf(r)).to.deep.equal(reference);
      unwatchAll(d);
    });

    if (caps.wildcards !== false) {
      it('delivers to a wildcard watch (/topic/<name>.*)', async function () {
        const base = uniqueDestination('topic', 'wild');
        await watchAll(`${base}.*`);
        await node(0).publish(envelope(`${base}.a`, 'a'));
        await node(1).publish(envelope(`${base}.b`, 'b'));
        await everyNodeHas(`${base}.a`, 1);
        await everyNodeHas(`${base}.b`, 1);
        unwatchAll(`${base}.*`);
      });
    }

    if (caps.filters === true) {
      it('does not deliver destinations that no node watches', async function () {
        const watched = uniqueDestination('topic', 'watched');
        const unwatched = uniqueDestination('topic', 'unwatched');
        await watchAll(watched);
        await node(0).publish(envelope(unwatched, 'nobody'));
        await node(0).publish(envelope(watched, 'somebody'));
        await everyNodeHas(watched, 1);
        await waitQuiet(SETTLE_MS);
        for (const r of recorders) expect(r.for(unwatched)).to.deep.equal([]);
        unwatchAll(watched);
      });

      it('counts watches: one unwatch of two keeps delivering, the last one stops', async function () {
        const d = uniqueDestination('topic', 'refcount');
        await node(1).watch('/', d);
        await node(1).watch('/', d);
        node(1).unwatch('/', d);
        await node(0).publish(envelope(d, 'still'));
        await until(
          () => recorder(1).for(d).length === 1,
          deliveryMs,
          () => 'delivery while one watch remains',
        );
        node(1).unwatch('/', d);
        await waitQuiet(SETTLE_MS);
        await node(0).publish(envelope(d, 'gone'));
        await waitQuiet(SETTLE_MS);
        expect(
          recorder(1)
            .for(d)
            .map((e) => e.body.toString()),
        ).to.deep.equal(['still']);
      });
    }

    if (caps.filters === false) {
      // The declared opposite, checked too: a bus that claims not to filter hands every node everything, and the
      // broker's subscription table does the filtering. (A bus that did filter would have to declare it, and
      // pass the cases above.)
      it('hands a destination no node watches to every node all the same (filters: false)', async function () {
        const unwatched = uniqueDestination('topic', 'unfiltered');
        await node(0).publish(envelope(unwatched, 'everyone'));
        await everyNodeHas(unwatched, 1);
      });
    }

    if (caps.ordered) {
      it('keeps per-destination order on every node (500 messages over 5 destinations, 2 publishers)', async function () {
        const dests = Array.from({ length: 5 }, (_, i) => uniqueDestination('topic', `order${i}`));
        await Promise.all(dests.map((d) => watchAll(d)));
        const last = nodes.length - 1;
        const sends: Promise<void>[] = [];
        for (let i = 0; i < 250; i++) {
          for (const publisher of [0, last]) {
            const d = dests[i % dests.length] as string;
            sends.push(node(publisher).publish(envelope(d, `${publisher}:${i}`, { origin: `p${publisher}` })));
          }
        }
        await Promise.all(sends);
        for (const d of dests) await everyNodeHas(d, 100);
        for (const d of dests) {
          const reference = recorder(0)
            .unique(d)
            .map((e) => e.id);
          for (const r of recorders) {
            const got = r.unique(d);
            // Every node sees one order per destination...
            expect(got.map((e) => e.id)).to.deep.equal(reference);
            // ...which keeps each publisher's own order.
            for (const publisher of [0, last]) {
              const seqs = got.filter((e) => e.origin === `p${publisher}`).map((e) => Number(e.body.toString().split(':')[1]));
              expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
              expect(seqs.length).to.equal(50);
            }
          }
        }
        for (const d of dests) unwatchAll(d);
      });
    }

    if (caps.unreachable !== undefined) {
      const unreachable = caps.unreachable;
      it('rejects publishes, within a bounded time, when its engine is unreachable', async function () {
        this.timeout(60_000);
        const bus = unreachable(await closedPort());
        const started = Date.now();
        try {
          const start = await bus
            .start(() => {})
            .then(
              () => undefined,
              (error: unknown) => error,
            );
          if (start !== undefined) expect(start).to.be.instanceOf(Error);
          const outcome = await Promise.race([
            bus.publish(envelope(uniqueDestination('topic', 'void'), 'x')).then(
              () => 'resolved',
              (error: unknown) => error,
            ),
            new Promise((resolve) => setTimeout(() => resolve('hung'), 30_000)),
          ]);
          expect(outcome).to.be.instanceOf(Error);
          expect((outcome as Error).message)
            .to.be.a('string')
            .and.not.equal('');
          expect(bus.healthy).to.equal(false);
          expect(Date.now() - started).to.be.below(45_000);
        } finally {
          await bus.close();
        }
      });
    }

    if (caps.durable) {
      it('delivers a queue message accepted before a cluster started consuming', async function () {
        const d = uniqueDestination('queue', 'durable');
        await node(0).publish(envelope(d, 'kept'));
        const later = await make();
        const laterRecorders = later.nodes.map(() => new Recorder());
        try {
          await Promise.all(later.nodes.map((n, i) => n.start((laterRecorders[i] as Recorder).deliver)));
          await until(
            () => laterRecorders.some((r) => r.for(d).length > 0),
            deliveryMs * 2,
            () => `${d} at a node of the later cluster`,
          );
          const got = laterRecorders.flatMap((r) => r.unique(d)).map((e) => e.body.toString());
          expect(new Set(got)).to.deep.equal(new Set(['kept']));
        } finally {
          await later.close();
        }
      });
    }
  });
}
