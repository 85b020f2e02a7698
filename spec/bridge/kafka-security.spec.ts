/**
 * Kafka SASL and TLS against the real test Kafka (issue #7 item 7): its SASL_PLAINTEXT and SASL_SSL listeners
 * take PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for one user (infra/services.sh). A node logs in with each
 * mechanism, and a STOMP SEND reaches a STOMP subscriber through a Kafka topic: an outside admin on the plain
 * listener sees the record on that topic. A wrong password fails the start, naming the mechanism, never the
 * password.
 */
import { expect } from 'chai';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { BridgeError } from '../../broker/ports/bus.js';
import { KAFKA_ERRORS } from '../../bridge/kafka-bus.js';
import { parseRoutes } from '../../broker/ports/routes.js';
import type { ConfigInput } from '../../broker/config.js';
import { runCli } from '../ops/cli.js';
import { startBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { connectedTcp, stompFrame, type TcpRawClient } from '../support/raw.js';
import { requireKafkaSasl, requireService } from '../support/services.js';

type Mechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

describe('bridge › Kafka SASL and TLS (real listeners)', function () {
  this.timeout(90_000);
  const plainBrokers = requireService('kafka').split(',');
  const sasl = requireKafkaSasl();
  const run = uniqueName('sec');
  let admin: Admin;
  const nodes: TestBroker[] = [];
  const clients: TcpRawClient[] = [];

  before(async () => {
    admin = new Kafka({ clientId: `outside-${run}`, brokers: plainBrokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const n of nodes.splice(0)) await n.close();
  });

  after(async () => {
    await admin?.disconnect();
  });

  /** Starts a node whose only route sends `/topic/<name>.**` through Kafka topic `<name>`. */
  async function node(name: string, config: ConfigInput): Promise<TestBroker> {
    const n = await startBroker({ nodeId: `n-${name}`, ...config }, { routes: parseRoutes(`/topic/${name}.**=kafka:${name}`) });
    nodes.push(n);
    return n;
  }

  /** SUBSCRIBE, then SEND from another connection; resolves with the body the subscriber got. */
  async function roundTrip(n: TestBroker, name: string, body: string): Promise<string> {
    const destination = `/topic/${name}.room`;
    const subscriber = await connectedTcp(n.tcpPort);
    const sender = await connectedTcp(n.tcpPort);
    clients.push(subscriber, sender);
    subscriber.send(stompFrame('SUBSCRIBE', { id: 's1', destination, receipt: 'sub' }));
    expect((await subscriber.nextFrame(20_000)).command).to.equal('RECEIPT');
    sender.send(stompFrame('SEND', { destination, receipt: 'sent', 'content-type': 'text/plain' }, body));
    const receipt = await sender.nextFrame(20_000);
    expect(receipt.command, receipt.body.toString()).to.equal('RECEIPT');
    const message = await subscriber.nextFrame(20_000);
    expect(message.command, message.body.toString()).to.equal('MESSAGE');
    expect(message.headers.get('destination')).to.equal(destination);
    return message.body.toString();
  }

  /** Records on the topic, as an outside admin on the plain listener counts them. */
  async function recordsOn(topic: string): Promise<number> {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  }

  const login = (mechanism: Mechanism, password = sasl.password): ConfigInput => ({
    kafkaSaslMechanism: mechanism,
    kafkaSaslUsername: sasl.username,
    kafkaSaslPassword: password,
  });

  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
    it(`SASL_PLAINTEXT with ${mechanism}: a SEND reaches the subscriber through Kafka`, async () => {
      const name = `${run}-${mechanism}`;
      const n = await node(name, { kafka: sasl.sasl, ...login(mechanism) });
      expect(await roundTrip(n, name, `hello over ${mechanism}`)).to.equal(`hello over ${mechanism}`);
      expect(await recordsOn(name)).to.equal(1);
    });
  }

  for (const mechanism of ['plain', 'scram-sha-512'] as const) {
    it(`SASL_SSL with ${mechanism}, trusting the test CA: a SEND reaches the subscriber through Kafka`, async () => {
      const name = `${run}-tls-${mechanism}`;
      const n = await node(name, { kafka: sasl.saslSsl, kafkaSslCaFile: sasl.caFile, ...login(mechanism) });
      expect(await roundTrip(n, name, `hello over TLS and ${mechanism}`)).to.equal(`hello over TLS and ${mechanism}`);
      expect(await recordsOn(name)).to.equal(1);
    });
  }

  for (const mechanism of ['plain', 'scram-sha-256'] as const) {
    it(`a wrong ${mechanism} password fails the start at once, naming the login and masking the password`, async () => {
      const wrong = `wrong-${run}-pw`;
      const t0 = Date.now();
      let error: unknown;
      try {
        nodes.push(await node(`${run}-bad-${mechanism}`, { kafka: sasl.sasl, ...login(mechanism, wrong) }));
      } catch (e) {
        error = e;
      }
      expect(error, 'the start must fail')
        .to.be.instanceOf(BridgeError)
        .and.include({ code: KAFKA_ERRORS.ERR_KAFKA_AUTH, retriable: false });
      const message = (error as Error).message;
      expect(message).to.include(`refused the SASL login of user "${sasl.username}" (mechanism ${mechanism})`);
      expect(message).to.include('kafkaSaslPassword');
      expect(message).to.match(/authentication failed/i);
      const text = describeError(error);
      expect(text).not.to.include(wrong);
      expect(text).not.to.include(sasl.password);
      // A refused login is not retried until the start-up deadline (connectTimeoutMs, 15 s).
      expect(Date.now() - t0).to.be.below(15_000);
    });
  }

  it('the CLI started with a wrong SCRAM-SHA-512 password exits 1, printing the refusal but never the password', async () => {
    // Characters that URL masking must also cope with, as production passwords have.
    const wrong = `wr0ng/${run}?password=x`;
    const result = await runCli([], {
      STOMPEDE_HOST: '127.0.0.1',
      STOMPEDE_PORT: '0',
      STOMPEDE_WS_PORT: '0',
      STOMPEDE_NODE_ID: `n-${run}-cli`,
      STOMPEDE_KAFKA: sasl.sasl,
      STOMPEDE_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      STOMPEDE_KAFKA_SASL_USERNAME: sasl.username,
      STOMPEDE_KAFKA_SASL_PASSWORD: wrong,
    });
    expect(result.code, result.stderr).to.equal(1);
    expect(result.stderr).to.include(`refused the SASL login of user "${sasl.username}" (mechanism scram-sha-512)`);
    for (const output of [result.stdout, result.stderr]) {
      expect(output).not.to.include(wrong);
      expect(output).not.to.include(`wr0ng/${run}`);
    }
  });

  it('without the test CA, the SASL_SSL listener refuses the start (the certificate is not trusted)', async () => {
    let error: unknown;
    try {
      nodes.push(await node(`${run}-untrusted`, { kafka: sasl.saslSsl, kafkaSsl: true, ...login('plain') }));
    } catch (e) {
      error = e;
    }
    expect(error, 'the start must fail').to.be.instanceOf(BridgeError).and.include({ code: KAFKA_ERRORS.ERR_KAFKA_AUTH, retriable: false });
    expect((error as Error).message).to.match(/TLS certificate of Kafka at .* was not accepted .*kafkaSslCaFile/);
    expect(describeError(error)).not.to.include(sasl.password);
  });
});

/** The message of an error and of every cause below it, as a log line or startup error would show them. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 10; e = e.cause) parts.push(`${e.name}: ${e.message}`);
  return parts.join(' <- ');
}
