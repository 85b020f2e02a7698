/**
 * Template-route topics that appear while a cluster runs (issue #7 item 1, multi-node), over real node processes
 * sharing one consumer group with Redis fan-out. The other side is an outside application: a plain kafkajs admin
 * and producer that create a topic and write records with no key or business keys, knowing nothing of Stompede.
 *
 * Two ways a topic appears: a client names it on one node (only that node starts reading it), or an outside
 * producer creates it and no client names it at all (wildcard subscribers wait for it on every node).
 */
import { expect } from 'chai';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { requireService } from '../support/services.js';
import { waitQuiet } from '../support/timing.js';
import { type Subscription } from './clients.js';
import { useCluster } from './scenarios.js';

/** The routes of both clusters: a literal topic every node reads (so each is a group member), a template. */
function routes(name: string): string {
  return [`/topic/chat.**=kafka:${name}-chat`, `/topic/orders.*=kafka:${name}-orders.{1}`, '/topic/**=redis', '/queue/**=redis'].join(',');
}

/** `n` records, a third with no key and the rest with business keys, so that they land on every partition. */
function records(prefix: string, n: number): { key?: string; value: string }[] {
  return Array.from({ length: n }, (_, i) => (i % 3 === 0 ? { value: `${prefix} ${i}` } : { key: `order-${i}`, value: `${prefix} ${i}` }));
}

async function expectAll(subs: readonly { label: string; sub: Subscription }[], sent: readonly string[]): Promise<void> {
  await Promise.all(subs.map(({ label, sub }) => sub.inbox.count(sent.length, 30_000, `${label}: every record`)));
  await waitQuiet(500);
  for (const { label, sub } of subs) {
    // Exactly once each; the order holds per partition only (records without a key spread over all of them).
    expect([...sub.inbox.bodies()].sort(), label).to.deep.equal([...sent].sort());
  }
}

describe('cluster › template-route topics that appear while the cluster runs', function () {
  this.timeout(90_000);
  const brokers = requireService('kafka').split(',');
  const kafka = new Kafka({ clientId: 'outside-templates', brokers, logLevel: logLevel.NOTHING });
  let admin: Admin;
  let producer: Producer;

  before(async function () {
    admin = kafka.admin();
    await admin.connect();
    // Idempotent, as a producer that must not write a record twice is: kafkajs resends a whole request when one
    // partition of it failed (a topic created a moment ago has partitions whose leader it does not know yet), and
    // without sequence numbers the partitions that had succeeded get every record a second time.
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
  });

  after(async () => {
    await producer?.disconnect();
    await admin?.disconnect();
  });

  describe('no discovery (kafkaTopicDiscoveryMs 0), 3 nodes', () => {
    const ctx = useCluster(routes, ['redis', 'kafka'], { name: 'spec-ktpl', args: ['--kafka-topic-discovery-ms', '0'] });

    it('a topic a client names on one node is read whole, by that node alone, whichever node leads the group', async () => {
      // kafkajs's own assignment gave the new topic's partitions to every member (those without it never read
      // them), or to none when the leader lacked it: most or all of these records never arrived.
      const cluster = ctx.cluster();
      const topic = `${cluster.name}-orders.eu`;
      const subs: { label: string; sub: Subscription }[] = [];
      const namer = await ctx.pool.stompit(cluster.node(0));
      subs.push({ label: `${namer.label} (names the topic)`, sub: await namer.subscribe('/topic/orders.eu') });
      for (const i of [1, 2]) {
        // A wildcard subscription names no topic: these nodes do not read it.
        const client = await ctx.pool.stompjs(cluster.node(i));
        subs.push({ label: `${client.label} (wildcard)`, sub: await client.subscribe('/topic/orders.*') });
      }
      const sent = records('eu', 40);
      await producer.send({ topic, messages: sent });
      await expectAll(
        subs,
        sent.map((r) => r.value),
      );
      for (const m of subs[0]?.sub.inbox.messages ?? []) expect(m.headers.destination).to.equal('/topic/orders.eu');
    });
  });

  describe('discovery every second, 2 nodes', () => {
    const ctx = useCluster(routes, ['redis', 'kafka'], { name: 'spec-ktpl-disc', size: 2, args: ['--kafka-topic-discovery-ms', '1000'] });

    it('a topic an outside producer creates reaches wildcard subscribers on every node, its first records included', async () => {
      const cluster = ctx.cluster();
      const topic = `${cluster.name}-orders.us`;
      const subs: { label: string; sub: Subscription }[] = [];
      for (const node of cluster.nodes) {
        const client = await ctx.pool.stompit(node);
        subs.push({ label: client.label, sub: await client.subscribe('/topic/orders.*') });
      }
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 4 }] });
      // Written at once, before any node can have found the topic: they are newer than the nodes, so live.
      const sent = records('us', 24);
      await producer.send({ topic, messages: sent });
      await expectAll(
        subs,
        sent.map((r) => r.value),
      );
      for (const { sub } of subs) for (const m of sub.inbox.messages) expect(m.headers.destination).to.equal('/topic/orders.us');
    });
  });
});
