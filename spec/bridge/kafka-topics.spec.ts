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
import { parseRoutes } from '../../broker/ports/routes.js';
import { startBroker } from '../support/broker.js';
import { connectedTcp, stompFrame } from '../support/raw.js';

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

  it('with creation off, a running node refuses a SEND to /kafka/<a missing topic> with an ERROR, and reads an existing one', async () => {
    const missing = `direct-missing-${run}`;
    const existing = `direct-existing-${run}`;
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const node = await startBroker({
      kafka: brokers.join(','),
      nodeId: `n-${run}`,
      kafkaAutoCreateTopics: false,
      routes: parseRoutes('/**=local'),
    });
    const clients = [await connectedTcp(node.tcpPort), await connectedTcp(node.tcpPort)];
    try {
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: existing, numPartitions: 1 }] });
      const [refused, reader] = clients as [(typeof clients)[0], (typeof clients)[0]];
      refused.send(stompFrame('SEND', { destination: `/kafka/${missing}`, receipt: 'r1' }, 'x'));
      const error = await refused.nextFrame(20_000);
      expect(error.command).to.equal('ERROR');
      expect(error.headers.get('message') ?? '').to.include(missing);
      expect(error.body.toString() + (error.headers.get('message') ?? '')).to.include('kafkaAutoCreateTopics');
      expect(await admin.listTopics()).to.not.include(missing);
      // The node goes on, and a topic that exists is read while running though creation is off.
      reader.send(stompFrame('SUBSCRIBE', { id: 's', destination: `/kafka/${existing}`, receipt: 'r2' }));
      expect((await reader.nextFrame(20_000)).command).to.equal('RECEIPT');
      reader.send(stompFrame('SEND', { destination: `/kafka/${existing}` }, 'through an existing topic'));
      const m = await reader.nextFrame(20_000);
      expect(m.command).to.equal('MESSAGE');
      expect(m.body.toString()).to.equal('through an existing topic');
    } finally {
      for (const c of clients) c.close();
      await node.close();
      await admin.disconnect();
    }
  });
});
