/**
 * The composition root (broker/server.ts, issue #10): one route table for the Broker and the engines, one node id
 * chosen for both, and a bad node id reported as a configuration problem. No engine is started: building a
 * KafkaBus connects to nothing, so these run without services.
 */
import { expect } from 'chai';
import { KafkaBus } from '../../bridge/kafka-bus.js';
import { ConfigError, loadConfig } from '../../broker/config.js';
import { createBroker } from '../../broker/server.js';
import type { Broker } from '../../broker/broker.js';

/** Nothing listens on the discard port: the bus is built, never started. */
const NO_KAFKA = '127.0.0.1:9';

describe('broker › composition root', () => {
  const built: Broker[] = [];
  afterEach(async () => {
    await Promise.all(built.splice(0).map((b) => b.close()));
  });

  async function build(...args: Parameters<typeof createBroker>): Promise<Broker> {
    const broker = await createBroker(...args);
    built.push(broker);
    return broker;
  }

  it('applies routes given in BrokerOptions to the Broker and to KafkaBus.topicFor alike', async () => {
    const broker = await build({
      config: { kafka: NO_KAFKA, nodeId: 'routes-a' },
      routes: [
        { pattern: '/topic/special.**', kind: 'kafka', target: 'special-topic' },
        { pattern: '/topic/**', kind: 'kafka', target: 'other-topic' },
        { pattern: '/queue/**', kind: 'local' },
      ],
    });
    const bus = broker.engines.log;
    expect(bus).to.be.instanceOf(KafkaBus);
    const kafka = bus as KafkaBus;
    expect(broker.routes.route('/topic/special.a').target).to.equal('special-topic');
    expect(kafka.topicFor('/topic/special.a')).to.equal('special-topic');
    expect(kafka.topicFor('/topic/chat')).to.equal('other-topic');
    expect([...kafka.topics].sort()).to.deep.equal(['other-topic', 'special-topic']);
    expect(broker.routes.route('/queue/q').kind).to.equal('local');
  });

  it('without routes anywhere, gives the Broker and KafkaBus the same default table', async () => {
    const broker = await build({ config: { kafka: NO_KAFKA, nodeId: 'routes-b' } });
    const kafka = broker.engines.log as KafkaBus;
    expect(broker.routes.route('/topic/x').target).to.equal('stompede.topics');
    expect(kafka.topicFor('/topic/x')).to.equal('stompede.topics');
    expect(kafka.topicFor('/queue/x')).to.equal('stompede.queues');
  });

  it('hands the Kafka session settings to the bus, and refuses a heartbeat interval not below the session', async () => {
    const broker = await build({
      config: { kafka: NO_KAFKA, nodeId: 'session-a', kafkaSessionTimeoutMs: 2500, kafkaHeartbeatIntervalMs: 400 },
    });
    expect((broker.engines.log as KafkaBus).session).to.deep.equal({ timeoutMs: 2500, heartbeatIntervalMs: 400 });
    const defaults = await build({ config: { kafka: NO_KAFKA, nodeId: 'session-b' } });
    expect((defaults.engines.log as KafkaBus).session).to.deep.equal({
      timeoutMs: defaults.config.kafkaSessionTimeoutMs,
      heartbeatIntervalMs: defaults.config.kafkaHeartbeatIntervalMs,
    });
    expect(() => loadConfig({ overrides: { kafkaSessionTimeoutMs: 1000, kafkaHeartbeatIntervalMs: 1000 } }))
      .to.throw(ConfigError)
      .with.property('problems')
      .that.deep.equals(['kafkaHeartbeatIntervalMs: must be below kafkaSessionTimeoutMs (1000); a third of it at most is advised']);
  });

  it('chooses one node id when none is configured, and the engines are named after it', async () => {
    const broker = await build({ config: { kafka: NO_KAFKA, clusterName: 'comp' } });
    expect(broker.nodeId).to.match(/^[0-9a-f]{8}$/);
    expect(broker.config.nodeId).to.equal(broker.nodeId);
    // Without a fan-out each node reads in a consumer group of its own, named after the node.
    expect((broker.engines.log as KafkaBus).groupId).to.equal(`comp-${broker.nodeId}`);
    const other = await build({ config: { kafka: NO_KAFKA, clusterName: 'comp' } });
    expect(other.nodeId, 'each unnamed node gets its own id').to.not.equal(broker.nodeId);
  });

  it('reports a bad node id as a configuration problem, together with the others', async () => {
    expect(() => loadConfig({ overrides: { nodeId: 'a b', port: -5 } }))
      .to.throw(ConfigError)
      .with.property('problems')
      .that.deep.equals(['port: -5 is not a port (-1..65535)', 'nodeId: "a b" may use only letters, digits, ".", "_" and "-", at most 64']);
    expect(() => loadConfig({ overrides: { nodeId: 'x'.repeat(65) } })).to.throw(ConfigError, 'at most 64');
    expect(loadConfig({ overrides: { nodeId: 'node_1.a-B' } }).nodeId).to.equal('node_1.a-B');
    const error: unknown = await createBroker({ config: { nodeId: 'a/b' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error, 'createBroker fails before building anything').to.be.instanceOf(ConfigError);
  });
});
