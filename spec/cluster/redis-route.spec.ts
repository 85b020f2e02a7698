/**
 * Three Stompede node processes on the redis route (`/topic/**=redis,/queue/**=redis`): topics through Redis
 * pub/sub, queues as Redis lists shared by the cluster. Real clients: stompit over TCP, stompjs over WebSocket.
 */
import { expect } from 'chai';
import { services, until, withServiceFault } from '../support/cluster.js';
import type { Subscription } from './clients.js';
import { seqOf, Publisher } from './flow.js';
import { waitQuiet } from '../support/timing.js';
import { chatScenarios, dest, loadScenario, queueScenarios, shutdownScenario, useCluster } from './scenarios.js';

describe('cluster › redis route (3 node processes)', function () {
  this.timeout(60_000);
  const ctx = useCluster('redis', ['redis']);

  describe('chat', () => chatScenarios(ctx));
  describe('load', () => loadScenario(ctx));
  describe('queues', () => queueScenarios(ctx));

  describe('faults', () => {
    it('Redis restarted mid-stream: every SEND is receipted, and delivery resumes on every node after the restart', async function () {
      this.timeout(120_000);
      const topic = dest('topic', 'redis-restart');
      const subs: { label: string; sub: Subscription }[] = [];
      for (const n of ctx.cluster().nodes) {
        const client = await ctx.pool.stompit(n);
        subs.push({ label: client.label, sub: await client.subscribe(topic) });
      }
      const ws = await ctx.pool.stompjs(ctx.node(2));
      subs.push({ label: ws.label, sub: await ws.subscribe(topic) });
      const publisher = new Publisher({
        connect: () => ctx.pool.stompit(ctx.node(0)),
        destination: topic,
        prefix: 'm',
        intervalMs: 5,
      }).start();
      try {
        await until(() => publisher.count('receipt') >= 100, 20_000, '100 receipts before the restart');
        const before = publisher.receipted();
        await Promise.all(
          subs.map(({ label, sub }) =>
            sub.inbox.until(() => before.every((b) => sub.inbox.bodies().includes(b)), 20_000, `${label}: messages before the restart`),
          ),
        );
        const restartAt = Date.now();
        let restartedAt = 0;
        let resumedAt = 0;
        let from = 0;
        await withServiceFault(
          'redis',
          async () => {
            await services('restart', 'redis');
            restartedAt = Date.now();
          },
          async () => {
            // Resumed: a message sent after the restart reaches every subscriber (node-redis reconnects, resubscribes).
            const mark = publisher.records.length;
            await until(
              () => subs.every(({ sub }) => sub.inbox.messages.some((m) => seqOf(m.body) >= mark)),
              30_000,
              'delivery on every node after the restart',
              () => subs.map(({ label, sub }) => `${label} last ${sub.inbox.messages.at(-1)?.body}`).join('; '),
            );
            resumedAt = Date.now();
            from = publisher.records.length;
            await until(() => publisher.records.length >= from + 200, 20_000, '200 more SENDs');
          },
        );
        await publisher.stop();
        const after = publisher.records
          .slice(from)
          .filter((r) => r.outcome === 'receipt')
          .map((r) => r.body);
        await Promise.all(
          subs.map(({ label, sub }) =>
            sub.inbox.until(() => after.every((b) => sub.inbox.bodies().includes(b)), 20_000, `${label}: messages after the restart`),
          ),
        );
        await waitQuiet(300);
        const lost = subs.map(({ label, sub }) => {
          const got = new Set(sub.inbox.bodies());
          return `${label} ${publisher.records.filter((r) => !got.has(r.body)).length}`;
        });
        console.log(
          `      restart took ${restartedAt - restartAt} ms; delivery resumed ${resumedAt - restartedAt} ms later; ${publisher.summary()}; not delivered (outage, not durable): ${lost.join(', ')}`,
        );
        // The redis route acknowledges a SEND even while Redis is away (delivered on the accepting node only).
        expect(publisher.records.filter((r) => r.outcome !== 'receipt').map((r) => `${r.body} ${r.outcome}`)).to.deep.equal([]);
        for (const { label, sub } of subs) {
          const bodies = sub.inbox.bodies();
          expect(new Set(bodies).size, `${label}: no duplicates`).to.equal(bodies.length);
          const seqs = bodies.map(seqOf);
          expect(
            seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)),
            `${label}: in order`,
          ).to.equal(true);
          const got = new Set(bodies);
          expect(
            before.filter((b) => !got.has(b)),
            `${label}: lost from before the restart`,
          ).to.deep.equal([]);
          expect(
            after.filter((b) => !got.has(b)),
            `${label}: lost after delivery resumed`,
          ).to.deep.equal([]);
        }
        // Not asserted (reported): while Redis is away the accepting node delivers its SENDs locally, but in the few
        // ms between its publishing connection coming back and its subscribing one having resubscribed, PUBLISH
        // succeeds and the echo never comes, so even the accepting node's subscribers miss those (receipted) SENDs.
      } finally {
        await publisher.stop();
      }
      const ready = await Promise.all(ctx.cluster().nodes.map((n) => n.readiness()));
      expect(
        ready.map((r) => r.status),
        'every node ready again',
      ).to.deep.equal([200, 200, 200]);
    });
  });

  describe('shutdown', () => shutdownScenario(ctx));
});
