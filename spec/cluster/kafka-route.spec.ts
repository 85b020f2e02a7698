/**
 * Three Stompede node processes on the kafka route (`/topic/**=kafka:<run>.t,/queue/**=kafka:<run>.q`), with
 * Redis (fan-out, shared queues, history cache) and MongoDB (history). Real clients: stompit over TCP, stompjs over
 * WebSocket. The fault tests stop, kill and restart the services through infra/services.sh and always bring them
 * back (and wait until they are ready) before the test ends.
 */
import { expect } from 'chai';
import { services, sleep, until, withServiceFault } from '../support/cluster.js';
import { sequenceProblems, type StompClient, type Subscription } from './clients.js';
import { seqOf, Publisher } from './flow.js';
import { waitQuiet } from '../support/timing.js';
import { chatScenarios, dest, loadScenario, queueScenarios, shutdownScenario, useCluster, waitForFlow } from './scenarios.js';

describe('cluster › kafka route (3 node processes, Redis fan-out, MongoDB history)', function () {
  this.timeout(60_000);
  const ctx = useCluster('kafka', ['redis', 'kafka', 'mongo']);

  describe('chat', () => chatScenarios(ctx));
  describe('queues', () => queueScenarios(ctx));

  describe('faults', () => {
    it('kill -9 of a node while messages flow: its client resumes on another node with x-resume-after, every message once and in order', async function () {
      this.timeout(120_000);
      const topic = dest('topic', 'resume');
      const victim = ctx.node(2);
      const publisher = new Publisher({ connect: () => ctx.pool.stompit(ctx.node(0)), destination: topic, prefix: 'r', intervalMs: 2 });
      // A watcher on a surviving node sees the whole stream live, as a reference.
      const watcher = await (await ctx.pool.stompit(ctx.node(1))).subscribe(topic);
      const reader = await ctx.pool.stompjs(victim, 'reader@n3');
      const first = await reader.subscribe(topic);
      publisher.start();
      let second: Subscription | undefined;
      try {
        await first.inbox.count(150, 20_000, 'messages on n3 before the crash');
        await ctx.cluster().kill9(victim);
        await reader.ended;
        const last = first.inbox.messages.at(-1);
        const lastId = last?.headers['message-id'] as string;
        // The client notices, and reconnects to another node, asking for everything after what it got.
        const again = await ctx.pool.stompjs(ctx.node(1), 'reader@n2');
        second = await again.subscribe(topic, { 'x-resume-after': lastId });
        await sleep(2_000);
        await publisher.stop();
        const sent = publisher.receipted();
        expect(
          publisher.records.filter((r) => r.outcome !== 'receipt').map((r) => `${r.body} ${r.outcome}`),
          'publisher on a surviving node',
        ).to.deep.equal([]);
        const resumed = second;
        await resumed.inbox.until(
          () => resumed.inbox.messages.some((m) => m.body === sent.at(-1)),
          60_000,
          'the last message on the resumed subscription',
        );
        await waitQuiet(500);
        const got = [...first.inbox.bodies(), ...resumed.inbox.bodies()];
        console.log(
          `      ${sent.length} sent; ${first.inbox.length} on n3 before kill -9 (last ${last?.body} ${lastId}), ${resumed.inbox.length} after resuming on n2`,
        );
        expect(sequenceProblems(got, sent, 'reader'), 'one stream across the crash').to.deep.equal([]);
        expect(sequenceProblems(watcher.inbox.bodies(), sent, 'watcher on n2')).to.deep.equal([]);
        // Replayed and live messages carry the same ids as the live stream on the other node.
        const ids = new Map(watcher.inbox.messages.map((m) => [m.body, m.headers['message-id']]));
        expect(resumed.inbox.messages.filter((m) => ids.get(m.body) !== m.headers['message-id']).map((m) => m.body)).to.deep.equal([]);
      } finally {
        await publisher.stop();
        await ctx.heal();
      }
    });

    it('x-resume-after while messages flow: resumptions at random moments on every node each get the rest of the stream once, in order', async function () {
      this.timeout(90_000);
      const topic = dest('topic', 'resume-flow');
      const watcher = await (await ctx.pool.stompit(ctx.node(1))).subscribe(topic);
      const readers = await Promise.all(ctx.cluster().nodes.map((n) => ctx.pool.stompit(n)));
      const publisher = new Publisher({
        connect: () => ctx.pool.stompit(ctx.node(0)),
        destination: topic,
        prefix: 'f',
        intervalMs: 5,
      }).start();
      const resumed: { from: string; at: number; sub: Subscription }[] = [];
      const latencies: number[] = [];
      try {
        await watcher.inbox.count(20, 20_000);
        for (let i = 0; i < 15; i++) {
          const last = watcher.inbox.messages.at(-1);
          const reader = readers[i % readers.length] as StompClient;
          const started = Date.now();
          resumed.push({
            from: last?.body ?? '',
            at: watcher.inbox.length,
            sub: await reader.subscribe(topic, { 'x-resume-after': last?.headers['message-id'] ?? '' }),
          });
          latencies.push(Date.now() - started);
          await sleep(20 + Math.floor(Math.random() * 80));
        }
      } finally {
        await publisher.stop();
      }
      const sent = publisher.receipted();
      await Promise.all(
        resumed.map(({ sub }, i) =>
          sub.inbox.until(() => sub.inbox.bodies().includes(sent.at(-1) as string), 30_000, `resumption ${i}: the last message`),
        ),
      );
      await waitQuiet(500);
      const problems: string[] = [];
      for (const [i, r] of resumed.entries()) {
        const rest = sent.slice(sent.indexOf(r.from) + 1);
        const found = sequenceProblems(
          r.sub.inbox.bodies(),
          rest,
          `resumption ${i} on ${r.sub.inbox.messages[0]?.node ?? '?'} after "${r.from}"`,
        );
        if (found.length > 0 && problems.length === 0) {
          // The first broken stream, compactly: seq@offset (ms since the first message), where it goes wrong.
          const t0 = r.sub.inbox.messages[0]?.at ?? 0;
          const trace = r.sub.inbox.messages.map((m) => `${seqOf(m.body)}@${m.headers['x-stream-offset']}+${m.at - t0}`);
          const bad = r.sub.inbox.messages.findIndex((m, k) => k > 0 && seqOf(m.body) <= seqOf(r.sub.inbox.messages[k - 1]?.body ?? ''));
          found.push(`trace around the first break: ${trace.slice(Math.max(0, bad - 8), bad + 8).join(' ')}`);
        }
        problems.push(...found);
      }
      latencies.sort((a, b) => a - b);
      console.log(
        `      ${sent.length} sent; ${resumed.length} resumptions; SUBSCRIBE→RECEIPT median ${latencies[latencies.length >> 1]} ms, max ${latencies.at(-1)} ms`,
      );
      expect(problems).to.deep.equal([]);
    });

    it('Redis restarted mid-stream: no message that got a RECEIPT is lost, on any node', async function () {
      this.timeout(120_000);
      const topic = dest('topic', 'redis-restart');
      const subs = await subscribersOnEveryNode(topic);
      const publisher = new Publisher({
        connect: () => ctx.pool.stompit(ctx.node(0)),
        destination: topic,
        prefix: 'k',
        intervalMs: 5,
      }).start();
      try {
        await until(() => publisher.count('receipt') >= 50, 20_000, '50 receipts before the restart');
        await withServiceFault(
          'redis',
          () => services('restart', 'redis').then(() => undefined),
          async () => {
            const mark = publisher.records.length;
            await until(() => publisher.records.length >= mark + 100, 30_000, '100 SENDs after the restart');
          },
        );
        await publisher.stop();
        const sent = publisher.receipted();
        console.log(`      ${publisher.summary()}`);
        await Promise.all(
          subs.map(({ label, sub }) =>
            sub.inbox
              .until(() => sent.every((b) => sub.inbox.bodies().includes(b)), 30_000, `${label}: every receipted message`)
              .catch((error: unknown) => {
                const got = new Set(sub.inbox.bodies());
                // Known cause when a few around the restart are missing: a partition owner's PUBLISH reached the new Redis
                // before this node's subscribing connection had resubscribed (pub/sub keeps nothing for absent subscribers).
                throw new Error(
                  `${String(error)}; missing ${sent.filter((b) => !got.has(b)).join(', ')} (receipted, so in Kafka and history, but never delivered live)`,
                );
              }),
          ),
        );
        await waitQuiet(500);
        for (const { label, sub } of subs) {
          const bodies = sub.inbox.bodies();
          expect(new Set(bodies).size, `${label}: no duplicates`).to.equal(bodies.length);
        }
      } finally {
        await publisher.stop();
      }
      await waitForFlow(ctx);
    });

    it('Kafka restarted mid-stream: each SEND gets exactly one RECEIPT or ERROR, and every receipted one is delivered on every node', async function () {
      this.timeout(180_000);
      const base = dest('topic', 'kafka-restart').slice('/topic/'.length);
      const subs = await subscribersOnEveryNode(`/topic/${base}.*`);
      const c = ctx.cluster();
      const publishers = c.nodes.map((n, i) =>
        new Publisher({
          connect: (): Promise<StompClient> => (i === 1 ? ctx.pool.stompjs(n) : ctx.pool.stompit(n)),
          destination: `/topic/${base}.p${i}`,
          prefix: `p${i}`,
          intervalMs: 10,
          receiptTimeoutMs: 60_000,
        }).start(),
      );
      let outage = 0;
      try {
        await until(() => publishers.every((p) => p.count('receipt') >= 20), 20_000, '20 receipts per publisher before the restart');
        await withServiceFault(
          'kafka',
          async () => {
            const t0 = Date.now();
            await services('restart', 'kafka');
            outage = Date.now() - t0;
          },
          async () => {
            const marks = publishers.map((p) => p.records.length);
            await until(
              () =>
                publishers.every(
                  (p, i) => p.count('receipt') > 0 && p.records.slice(marks[i]).filter((r) => r.outcome === 'receipt').length >= 30,
                ),
              90_000,
              '30 receipts per publisher after the restart',
              () => publishers.map((p) => p.summary()).join('; '),
            );
          },
        );
      } finally {
        await Promise.all(publishers.map((p) => p.stop()));
      }
      for (const p of publishers) console.log(`      ${p.summary()}`);
      console.log(`      kafka restart took ${outage} ms`);
      // Every node consumes again (a node whose consumer gave up stays unready: /readyz 503 forever).
      await until(
        async () => (await Promise.all(c.nodes.map((n) => n.readiness()))).every((r) => r.status === 200),
        60_000,
        'every node ready after the Kafka restart',
        () => 'see /readyz of each node',
      );
      for (const p of publishers) {
        expect(
          p.records.filter((r) => r.outcome !== 'receipt' && r.outcome !== 'error').map((r) => `${r.body}: ${r.outcome}`),
          `${p.destination}: silence`,
        ).to.deep.equal([]);
      }
      const sent = publishers.flatMap((p) => p.receipted());
      await Promise.all(
        subs.map(({ label, sub }) =>
          sub.inbox
            .until(() => sent.every((b) => sub.inbox.bodies().includes(b)), 90_000, `${label}: every receipted message`)
            .catch((error: unknown) => {
              const got = new Set(sub.inbox.bodies());
              throw new Error(
                `${String(error)}; missing ${sent
                  .filter((b) => !got.has(b))
                  .slice(0, 20)
                  .join(', ')}`,
              );
            }),
        ),
      );
      await waitQuiet(500);
      for (const { label, sub } of subs) {
        const bodies = sub.inbox.bodies();
        expect(new Set(bodies).size, `${label}: no duplicates`).to.equal(bodies.length);
        // Receipted messages of one publisher keep their order (ERRORed ones may or may not have been stored).
        for (const p of publishers) {
          const receipted = new Set(p.receipted());
          const seqs = bodies.filter((b) => receipted.has(b)).map(seqOf);
          expect(
            seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)),
            `${label}: ${p.destination} in order`,
          ).to.equal(true);
        }
      }
      await waitForFlow(ctx);
    });

    it('MongoDB killed: live delivery goes on, and once it is back the history holds the messages sent meanwhile', async function () {
      this.timeout(150_000);
      const topic = dest('topic', 'history');
      const live = await (await ctx.pool.stompit(ctx.node(1))).subscribe(topic);
      const liveWs = await (await ctx.pool.stompjs(ctx.node(2))).subscribe(topic);
      const publisher = await ctx.pool.stompit(ctx.node(0));
      const sent: string[] = [];
      const send = async (label: string, n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const body = `${label} ${sent.length}`;
          await publisher.send(topic, body);
          sent.push(body);
        }
      };
      await send('before', 20);
      let during: string[] = [];
      await withServiceFault(
        'mongo',
        () => services('kill', 'mongo').then(() => undefined),
        async () => {
          await send('during', 30);
          during = sent.filter((b) => b.startsWith('during'));
          // Live delivery does not wait for the history store.
          await live.inbox.until(() => during.every((b) => live.inbox.bodies().includes(b)), 20_000, 'live delivery during the outage');
          await liveWs.inbox.until(
            () => during.every((b) => liveWs.inbox.bodies().includes(b)),
            20_000,
            'live delivery during the outage (WebSocket)',
          );
          await services('start', 'mongo');
        },
      );
      await send('after', 20);
      await live.inbox.until(() => live.inbox.length >= sent.length, 20_000, 'live delivery after the outage');
      await liveWs.inbox.until(() => liveWs.inbox.length >= sent.length, 20_000, 'live delivery after the outage (WebSocket)');
      await waitQuiet(200);
      expect(sequenceProblems(live.inbox.bodies(), sent, 'live on n2')).to.deep.equal([]);
      expect(sequenceProblems(liveWs.inbox.bodies(), sent, 'live on n3 (WebSocket)')).to.deep.equal([]);
      // History catches up in the background once MongoDB answers: new subscriptions see it, in order, no gap.
      const started = Date.now();
      const reader = await ctx.pool.stompit(ctx.node(2));
      let lastProblems: string[];
      let attempts = 0;
      for (;;) {
        attempts++;
        // x-history beyond the Redis cache size (100) is read from MongoDB; 70 is answered by the cache.
        const fromMongo = await reader.subscribe(topic, { 'x-history': '1000' });
        const fromCache = await reader.subscribe(topic, { 'x-history': String(sent.length) });
        await sleep(300);
        await fromMongo.unsubscribe();
        await fromCache.unsubscribe();
        lastProblems = [
          ...sequenceProblems(fromMongo.inbox.bodies(), sent, 'x-history:1000'),
          ...sequenceProblems(fromCache.inbox.bodies(), sent, `x-history:${sent.length}`),
        ];
        if (lastProblems.length === 0 || Date.now() - started > 60_000) break;
        await sleep(1_000);
      }
      console.log(`      history complete ${Date.now() - started} ms after MongoDB returned (${attempts} reads)`);
      expect(lastProblems).to.deep.equal([]);
      expect(ctx.pool.errors()).to.deep.equal([]);
    });
  });

  // Last: FerretDB (the MongoDB stand-in) needs about a minute to store the history of 10,000 messages, and history
  // reads queue behind those writes; tests that read history must not run in that wake.
  describe('load', () => loadScenario(ctx));
  describe('shutdown', () => shutdownScenario(ctx));

  async function subscribersOnEveryNode(destination: string): Promise<{ label: string; sub: Subscription }[]> {
    const subs: { label: string; sub: Subscription }[] = [];
    for (const n of ctx.cluster().nodes) {
      const client = await ctx.pool.stompit(n);
      subs.push({ label: client.label, sub: await client.subscribe(destination) });
    }
    const ws = await ctx.pool.stompjs(ctx.node(1));
    subs.push({ label: ws.label, sub: await ws.subscribe(destination) });
    return subs;
  }
});
