/**
 * Topic creation as the production settings drive it (`kafkaAutoCreateTopics`, `kafkaTopicPartitions`,
 * `kafkaReplicationFactor`, `kafkaClientId`), against the real Kafka of the test services.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Kafka, logLevel } from 'kafkajs';
import { InMemoryHistoryStore } from '../../bridge/memory-history.js';
import { KafkaBus, type KafkaBusOptions } from '../../bridge/kafka-bus.js';
import { requireService } from '../support/services.js';

describe('bridge › kafka › topic creation settings', function () {
  this.timeout(60_000);
  let brokers: string[];
  const run = randomBytes(4).toString('hex');
  const buses: KafkaBus[] = [];

  before(() => {
    brokers = requireService('kafka').split(',');
  });
  after(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
  });

  function bus(topic: string, more: Partial<KafkaBusOptions>): KafkaBus {
    const b = new KafkaBus({
      brokers,
      clusterName: `topics-${run}`,
      nodeId: 'n1',
      topics: [topic],
      topicFor: () => topic,
      history: new InMemoryHistoryStore({ maxPerDestination: 0, maxAgeMs: 0 }),
      ...more,
    });
    buses.push(b);
    return b;
  }

  it('with creation off, a missing topic stops the start, named along with the setting', async () => {
    const topic = `missing-${run}`;
    const failed = await bus(topic, { autoCreateTopics: false })
      .start(() => {})
      .then(
        () => 'started',
        (error: unknown) => String(error),
      );
    expect(failed).to.include(topic).and.include('kafkaAutoCreateTopics');
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      expect(await admin.listTopics()).to.not.include(topic);
    } finally {
      await admin.disconnect();
    }
  });

  it('creates a missing topic with the partitions asked for and replication min(3, brokers), under its client id', async () => {
    const topic = `created-${run}`;
    await bus(topic, { partitions: 3, clientId: `spec-client-${run}` }).start(() => {});
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const brokerCount = (await admin.describeCluster()).brokers.length;
      const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
      expect(meta?.partitions.length).to.equal(3);
      for (const p of meta?.partitions ?? []) expect(p.replicas.length).to.equal(Math.min(3, brokerCount));
      const groups = await admin.describeGroups([`topics-${run}-n1`]);
      const clients = groups.groups.flatMap((g) => g.members.map((m) => m.clientId));
      expect(clients).to.include(`spec-client-${run}`);
    } finally {
      await admin.disconnect();
    }
  });
});
